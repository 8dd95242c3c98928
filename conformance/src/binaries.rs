//! The binaries backend: the release `lambda-cell` under cargo-lambda's Lambda Runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`), and `azure-cell` over loopback HTTP, started as the
//! Functions host starts it. Every (case, envelope) gets a freshly started process in deterministic
//! mode (`PARACELL_DETERMINISTIC=1`), so responses compare byte for byte with the in-process run.
//! State parity is not checked here (the processes' stores are not inspectable).
//!
//! By default both binaries keep their state in memory. [`Binaries::with_stores`] runs them on real
//! databases instead ([`Store`]): every process then gets a table or container of its own, created at
//! start-up, so each (case, envelope) still starts from an empty cell.

use crate::envelopes::{Envelope, Exchange, aws, azure};
use crate::request::ClientRequest;
use crate::wire;
use paracell_domain::{CellConfig, TenantScope};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a binary keeps its state during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Store {
    /// In process memory (the default).
    #[default]
    Memory,
    /// DynamoDB (`lambda-cell` built with `--features dynamodb`). Endpoint, region and credentials
    /// are taken from this process's `PARACELL_DYNAMODB_ENDPOINT` and `AWS_*` variables.
    DynamoDb,
    /// Cosmos DB (`azure-cell` built with `--features cosmos`). Account and database are taken from
    /// this process's `PARACELL_COSMOS_*` and `AZURE_COSMOS_*` variables.
    Cosmos,
}

impl Store {
    /// `memory`, `dynamodb` or `cosmos`.
    ///
    /// ```
    /// use paracell_conformance::binaries::Store;
    /// assert_eq!(Store::parse("dynamodb"), Some(Store::DynamoDb));
    /// assert_eq!(Store::parse("postgres"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "memory" => Some(Self::Memory),
            "dynamodb" => Some(Self::DynamoDb),
            "cosmos" => Some(Self::Cosmos),
            _ => None,
        }
    }

    /// The variables a freshly started binary needs for this store, with a table or container of its own.
    fn env(self) -> Vec<(String, String)> {
        static FRESH: AtomicUsize = AtomicUsize::new(0);
        let fresh = || {
            format!(
                "conformance-{}-{}",
                std::process::id(),
                FRESH.fetch_add(1, Ordering::Relaxed)
            )
        };
        let forward = |prefixes: &[&str]| -> Vec<(String, String)> {
            std::env::vars()
                .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
                .collect()
        };
        let mut env = match self {
            Self::Memory => return Vec::new(),
            Self::DynamoDb => {
                let mut env = forward(&["AWS_", "PARACELL_DYNAMODB_"]);
                env.push(("PARACELL_STORE".into(), "dynamodb".into()));
                env.push(("PARACELL_DYNAMODB_TABLE".into(), fresh()));
                env
            }
            Self::Cosmos => {
                let mut env = forward(&["AZURE_COSMOS_", "PARACELL_COSMOS_"]);
                env.push(("PARACELL_STORE".into(), "cosmos".into()));
                env.push(("PARACELL_COSMOS_CONTAINER".into(), fresh()));
                env
            }
        };
        env.push(("PARACELL_STORE_PROVISION".into(), "1".into()));
        env
    }
}

/// The binaries and the runtime emulator.
pub struct Binaries {
    workspace: PathBuf,
    bootstrap: PathBuf,
    azure_cell: PathBuf,
    emulator_port: u16,
    lambda_store: Store,
    azure_store: Store,
    _emulator: Running,
}

fn wait_for(port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "nothing listens on 127.0.0.1:{port} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Where a child's stderr goes: a file per cell under `$PARACELL_BINARIES_LOGS` when that is set
/// (to see why a process misbehaved), nowhere otherwise.
pub(crate) fn log_file(name: &str) -> Stdio {
    static N: AtomicUsize = AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("PARACELL_BINARIES_LOGS") else {
        return Stdio::null();
    };
    let path = PathBuf::from(dir).join(format!(
        "{name}-{}-{}.log",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

fn cell_env(command: &mut Command, config: &CellConfig) {
    let tenants = match &config.tenants {
        TenantScope::All => "*".to_owned(),
        TenantScope::Set(set) => set.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
    };
    command
        .env_clear()
        .env("PARACELL_CELL_ID", config.cell_id.as_str())
        .env("PARACELL_TENANTS", tenants)
        .env(
            "PARACELL_MAX_BODY_BYTES",
            config.limits.max_body_bytes.to_string(),
        )
        .env("PARACELL_DETERMINISTIC", "1")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(log_file(config.cell_id.as_str()));
}

/// `cargo lambda watch --only-lambda-apis` on a free port: the Lambda Runtime API emulator.
fn start_emulator(workspace: &Path) -> Result<(Running, u16), String> {
    let emulator_port = wire::free_port().map_err(|e| e.to_string())?;
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &emulator_port.to_string(),
        ])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("cannot start `cargo lambda watch` (pip install cargo-lambda): {e}")
        })?;
    let mut emulator = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", emulator_port)).is_err() {
        if let Ok(Some(status)) = emulator.0.try_wait() {
            return Err(format!(
                "`cargo lambda watch` exited ({status}): is cargo-lambda installed (pip install cargo-lambda)?"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "`cargo lambda watch` did not listen on 127.0.0.1:{emulator_port} within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((emulator, emulator_port))
}

/// Another Lambda function (a consumer, say) built from `bootstrap`, under an emulator of its own
/// (one emulator serves one function), with `env` as its whole environment besides Lambda's.
pub fn start_function(
    workspace: &Path,
    bootstrap: &Path,
    env: &[(String, String)],
) -> Result<LambdaProcess, String> {
    if !bootstrap.is_file() {
        return Err(format!(
            "{} is missing: build it first",
            bootstrap.display()
        ));
    }
    let (emulator, port) = start_emulator(workspace)?;
    let child = Command::new(bootstrap)
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(log_file("function"))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bootstrap.display()))?;
    Ok(LambdaProcess {
        _processes: vec![Running(child)],
        port,
        _emulator: Some(emulator),
    })
}

/// Where the drills find the binaries they start: `$PARACELL_BIN_DIR`, else the workspace's
/// `target/release`. CI points it at `target/debug` for the phases on the database stand-ins: its
/// test step has already built every binary there with every feature, and a release build of the
/// store-enabled set (both SDKs, LTO) would cost a quarter of an hour for runs the stand-ins dominate.
pub fn bin_dir(workspace: &std::path::Path) -> PathBuf {
    std::env::var_os("PARACELL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release"))
}

impl Binaries {
    /// Starts the emulator. `bootstrap` defaults to `target/lambda/lambda-cell/bootstrap`,
    /// `azure_cell` to `azure-cell` in [`bin_dir`] (override with `PARACELL_LAMBDA_BOOTSTRAP`,
    /// `PARACELL_AZURE_CELL`). cargo-lambda must be on `PATH`.
    pub fn start(workspace: PathBuf) -> Result<Self, String> {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join(default))
        };
        let bootstrap = pick(
            "PARACELL_LAMBDA_BOOTSTRAP",
            "target/lambda/lambda-cell/bootstrap",
        );
        let azure_cell = std::env::var_os("PARACELL_AZURE_CELL")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin_dir(&workspace).join("azure-cell"));
        for (path, how) in [
            (&bootstrap, "cargo lambda build --release --bin lambda-cell"),
            (
                &azure_cell,
                "cargo build --release -p paracell-examples --bin azure-cell",
            ),
        ] {
            if !path.is_file() {
                return Err(format!(
                    "{} is missing: build it with `{how}`",
                    path.display()
                ));
            }
        }
        let (emulator, emulator_port) = start_emulator(&workspace)?;
        Ok(Self {
            workspace,
            bootstrap,
            azure_cell,
            emulator_port,
            lambda_store: Store::Memory,
            azure_store: Store::Memory,
            _emulator: emulator,
        })
    }

    /// Runs `lambda-cell` on `lambda` and `azure-cell` on `azure` instead of memory.
    pub fn with_stores(mut self, lambda: Store, azure: Store) -> Self {
        self.lambda_store = lambda;
        self.azure_store = azure;
        self
    }

    /// A fresh `lambda-cell` connected to the emulator.
    pub fn start_lambda(&self, config: &CellConfig) -> Result<LambdaProcess, String> {
        self.start_lambda_with(config, &[])
    }

    /// A fresh `lambda-cell` with `extra` variables set last (they win over the suite's own).
    pub fn start_lambda_with(
        &self,
        config: &CellConfig,
        extra: &[(String, String)],
    ) -> Result<LambdaProcess, String> {
        Ok(LambdaProcess {
            _processes: vec![self.spawn_lambda(config, extra, self.emulator_port)?],
            port: self.emulator_port,
            _emulator: None,
        })
    }

    /// `lambda-cell` attached to the emulator on `port`, with `extra` variables set last.
    fn spawn_lambda(
        &self,
        config: &CellConfig,
        extra: &[(String, String)],
        port: u16,
    ) -> Result<Running, String> {
        let mut command = Command::new(&self.bootstrap);
        cell_env(&mut command, config);
        command
            .envs(self.lambda_store.env())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .envs(extra.iter().cloned());
        command
            .spawn()
            .map(Running)
            .map_err(|e| format!("cannot start {}: {e}", self.bootstrap.display()))
    }

    /// A fresh `lambda-cell` under an emulator of its own (dropped with it), so a process that
    /// outlives its run cannot take the next run's invocations; `extra` as in
    /// [`Self::start_lambda_with`]. `sandboxes` processes poll that emulator, each taking one
    /// invocation at a time: Lambda's concurrent execution environments of one function, so a stream
    /// batch that waits on a cut peer does not hold up the HTTP invocations (as on Lambda, and unlike
    /// one sandbox, where they queue behind it).
    pub fn start_lambda_alone(
        &self,
        config: &CellConfig,
        extra: &[(String, String)],
        sandboxes: usize,
    ) -> Result<LambdaProcess, String> {
        let (emulator, port) = start_emulator(&self.workspace)?;
        let processes = (0..sandboxes.max(1))
            .map(|_| self.spawn_lambda(config, extra, port))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LambdaProcess {
            _processes: processes,
            port,
            _emulator: Some(emulator),
        })
    }

    /// A fresh `azure-cell`, started and probed as the Functions host does.
    pub fn start_azure(&self, config: &CellConfig, mode: &str) -> Result<AzureProcess, String> {
        self.start_azure_with(config, mode, &[])
    }

    /// A fresh `azure-cell` with `extra` variables set last (they win over the suite's own).
    pub fn start_azure_with(
        &self,
        config: &CellConfig,
        mode: &str,
        extra: &[(String, String)],
    ) -> Result<AzureProcess, String> {
        let port = wire::free_port().map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.azure_cell);
        cell_env(&mut command, config);
        command
            .envs(self.azure_store.env())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("PARACELL_AZURE_MODE", mode)
            .env("PARACELL_ROUTE_PREFIX", azure::ROUTE_PREFIX)
            .env("WEBSITE_AUTH_ENABLED", "true")
            .envs(extra.iter().cloned());
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.azure_cell.display()))?;
        let process = AzureProcess {
            _process: Running(child),
            port,
        };
        wait_for(port, Duration::from_secs(60))?;
        match wire::send(port, "GET", "/", &[], b"", false) {
            Ok(_) => Ok(process),
            Err(e) => Err(format!("readiness probe failed: {e}")),
        }
    }
}

/// One `lambda-cell` process.
pub struct LambdaProcess {
    /// Its execution environments (one unless [`Binaries::start_lambda_alone`] asked for more).
    _processes: Vec<Running>,
    port: u16,
    /// Its own emulator, when it has one ([`start_function`]); dropped after the process.
    _emulator: Option<Running>,
}

impl LambdaProcess {
    /// Invokes the function with the envelope's event through the emulator.
    pub fn exchange(&self, envelope: Envelope, request: &ClientRequest) -> Exchange {
        match self.invoke(&aws::event(envelope, request)) {
            Ok(json) => match aws::client_view(envelope, &request.method, &json) {
                Ok(response) => Exchange::Response(response),
                Err(e) => Exchange::Failed(e),
            },
            Err(e) => Exchange::Failed(e),
        }
    }

    /// Invokes the function with any event (a stream batch, say) and returns its JSON answer.
    pub fn invoke(&self, event: &serde_json::Value) -> Result<serde_json::Value, String> {
        let event = serde_json::to_vec(event).unwrap_or_default();
        match wire::send(
            self.port,
            "POST",
            "/2015-03-31/functions/_/invocations",
            &[("Content-Type", "application/json")],
            &event,
            false,
        ) {
            Ok(reply) if reply.status == 200 => serde_json::from_slice(&reply.body)
                .map_err(|e| format!("the function's response is not JSON: {e}")),
            Ok(reply) => Err(format!(
                "the invocation failed ({}): {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )),
            Err(e) => Err(format!("the emulator did not answer: {e}")),
        }
    }
}

/// One `azure-cell` process.
pub struct AzureProcess {
    _process: Running,
    port: u16,
}

impl AzureProcess {
    /// The loopback port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends the host's request over loopback and models the client's view of the reply.
    pub fn exchange(&self, envelope: Envelope, request: &ClientRequest, step: usize) -> Exchange {
        let host = azure::host_request(envelope, request, &format!("inv-{step}"));
        let headers: Vec<(&str, &str)> = host
            .headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("content-length")
                    && !n.eq_ignore_ascii_case("transfer-encoding")
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // Payload mode: the host posts the envelope chunked. Forwarding: the body with its length.
        let chunked = envelope == Envelope::AzurePayload;
        match wire::send(
            self.port,
            &host.method,
            &host.path,
            &headers,
            &host.body,
            chunked,
        ) {
            Ok(reply) => {
                let reply = paracell_azure::HandlerReply {
                    status: reply.status,
                    headers: reply.headers,
                    body: reply.body,
                };
                Exchange::Response(azure::client_view(envelope, &request.method, &reply))
            }
            Err(e) => Exchange::Failed(format!("azure-cell did not answer: {e}")),
        }
    }
}
