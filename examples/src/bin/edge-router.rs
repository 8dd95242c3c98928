//! The edge router: reads each request's tenant, looks its cell up in the placement registry, and
//! forwards the request there ([`paracell_domain::edge`]). One binary, three hosts, chosen by the
//! environment it starts in:
//!
//! - **standalone** (a container, a VM, a neutral edge): HTTP/1.1 and HTTP/2 (cleartext) on
//!   `$PARACELL_EDGE_BIND:$PORT` (default `127.0.0.1:8080`, like `local-cell`);
//! - **AWS Lambda** (`AWS_LAMBDA_RUNTIME_API` is set): behind a Function URL, API Gateway or an ALB;
//! - **Azure Functions custom handler** (`FUNCTIONS_CUSTOMHANDLER_PORT` is set): an HTTP-triggered
//!   function app, forwarding or payload mode as `host.json` says.
//!
//! ```sh
//! PARACELL_REGISTRY=file:registry.json cargo run -p paracell-examples --bin edge-router
//! ```
//!
//! Configuration: [`paracell_examples::edge`]. HTTPS to cells needs the `tls` feature (the
//! `dynamodb` and `cosmos` features include it).

use paracell_azure::listener::ServerLimits;
use paracell_azure::{AzureConfig, AzureHandler, Front, Mode, RoutePrefix, server};
use paracell_domain::http::HttpService;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_azure();
    let lookup = |n: &str| std::env::var(n).ok();
    let edge = match paracell_examples::edge::edge_from_lookup(lookup).await {
        Ok(edge) => edge,
        Err(e) => return paracell_examples::logs::exit("edge-router", e, 2),
    };
    paracell_examples::telemetry::spawn_otlp_export(edge.config().edge_id.as_str());
    let probe_secs = match lookup("PARACELL_EDGE_PROBE_SECS").map(|s| s.parse::<u64>()) {
        None => 10,
        Some(Ok(secs)) => secs,
        Some(Err(_)) => {
            return paracell_examples::logs::exit(
                "edge-router",
                "PARACELL_EDGE_PROBE_SECS must be a number of seconds",
                2,
            );
        }
    };
    let service: Arc<dyn HttpService> = Arc::new(edge.clone());
    if lookup("AWS_LAMBDA_RUNTIME_API").is_some() {
        // One invocation at a time per instance: probes would only wake a frozen sandbox.
        return match paracell_aws::LambdaHttp::new(service).run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => paracell_examples::logs::exit("edge-router", e, 1),
        };
    }
    paracell_examples::edge::spawn_probes(edge.clone(), Duration::from_secs(probe_secs));
    let (host, port, config, limits) = if lookup("FUNCTIONS_CUSTOMHANDLER_PORT").is_some() {
        let config = match AzureConfig::from_env() {
            Ok(config) => config,
            Err(e) => return paracell_examples::logs::exit("edge-router", e, 2),
        };
        match server::port_from_env() {
            Ok(port) => (
                "127.0.0.1".to_owned(),
                port,
                config,
                ServerLimits::behind_functions_host(),
            ),
            Err(e) => return paracell_examples::logs::exit("edge-router", e, 2),
        }
    } else {
        let port = match lookup("PORT").map(|p| p.parse::<u16>()) {
            None => 8080,
            Some(Ok(port)) => port,
            Some(Err(_)) => {
                return paracell_examples::logs::exit(
                    "edge-router",
                    "PORT must be a port number",
                    2,
                );
            }
        };
        let host = lookup("PARACELL_EDGE_BIND").unwrap_or_else(|| "127.0.0.1".to_owned());
        // Standalone, the request reaches the router as a client sent it: the forwarding mode with
        // no route prefix, exactly like local-cell.
        let config = AzureConfig {
            mode: Mode::Forwarding,
            route_prefix: RoutePrefix::new(""),
            trust_client_principal: false,
            front: Front::Direct,
            ..AzureConfig::default()
        };
        let limits = ServerLimits {
            http2: true,
            ..ServerLimits::default()
        };
        (host, port, config, limits)
    };
    let limits = match ServerLimits::from_lookup(limits, lookup) {
        Ok(limits) => limits,
        Err(e) => return paracell_examples::logs::exit("edge-router", e, 2),
    };
    let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot listen on {host}:{port}: {e}");
            return paracell_examples::logs::exit("edge-router", why, 1);
        }
    };
    tracing::info!(
        edge = edge.config().edge_id.as_str(),
        url = format!("http://{host}:{port}").as_str(),
        "edge-router listening"
    );
    let handler = AzureHandler::for_service(service, config).with_limits(limits);
    match server::serve(listener, handler, server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("edge-router", e, 1),
    }
}
