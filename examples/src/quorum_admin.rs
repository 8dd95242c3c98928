//! `paracell-admin`'s quorum commands: moving from the one-table registry, reading and reinstating
//! a cell lease, and the failover controller's loop for local runs.
//!
//! ```text
//! paracell-admin quorum import TENANT... [--json]   # copy PARACELL_REGISTRY's records into PARACELL_QUORUM
//! paracell-admin quorum lease CELL [--json]         # the cell lease, as a majority reads it
//! paracell-admin quorum revoke CELL [--json]        # wait out the cell lease, revoke it if it did not renew
//! paracell-admin quorum reinstate CELL --tenure N   # a new tenure for a revoked cell
//! paracell-admin watch CELL --observer DOMAIN --cell-domain DOMAIN --health URL
//!                 --standby CELL --tenants T1,T2 [--every-ms N] [--ticks N]
//!                                                   # probe, vote, decide, fail over; one JSON line per tick
//! ```
//! Exit status 0 on success, 1 when something could not be done, 2 on usage or set-up errors.

use crate::quorum::{lease_timing_from_lookup, quorum_from_lookup};
use paracell_domain::placement::quorum::QuorumRegistry;
use paracell_domain::placement::quorum::controller::{
    Controller, ControllerPolicy, Protected, Watched,
};
use paracell_domain::placement::quorum::events::{DecisionEvents, evidence};
use paracell_domain::placement::quorum::import::{Imported, import};
use paracell_domain::placement::quorum::lease::{self, LeaseChange};
use paracell_domain::placement::registry::Placement;
use paracell_domain::{CellId, TenantId};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The usage lines of these commands.
pub const USAGE: &str = "       paracell-admin quorum import TENANT... [--json]\n       paracell-admin quorum lease CELL [--json]\n       paracell-admin quorum revoke CELL [--json]\n       paracell-admin quorum reinstate CELL --tenure N\n       paracell-admin watch CELL --observer DOMAIN --cell-domain DOMAIN --health URL --standby CELL --tenants T1,T2 [--every-ms N] [--ticks N]";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    // Diagnostics are JSON log lines on stderr, like every binary's.
    tracing::error!(command = what, error = %e, "paracell-admin failed");
    ExitCode::FAILURE
}

fn usage() -> ExitCode {
    eprintln!("usage:\n{USAGE}");
    ExitCode::from(2)
}

async fn quorum() -> Result<Arc<QuorumRegistry>, ExitCode> {
    match quorum_from_lookup(env).await {
        Ok(Some(q)) => Ok(q),
        Ok(None) => Err(fail("configuration", "PARACELL_QUORUM is not set")),
        Err(e) => Err(fail("configuration", e)),
    }
}

fn placement_json(p: &Placement) -> Value {
    json!({
        "primary": p.primary.as_str(), "epoch": p.epoch, "version": p.version,
        "standbys": p.standbys.iter().map(CellId::as_str).collect::<Vec<_>>(),
        "state": p.state.to_string(),
    })
}

/// `paracell-admin quorum …` (the words after `quorum`).
pub async fn quorum_command(words: &[&str]) -> ExitCode {
    let json = words.contains(&"--json");
    let words: Vec<&str> = words.iter().copied().filter(|w| *w != "--json").collect();
    match words.as_slice() {
        ["import", tenants @ ..] if !tenants.is_empty() => import_tenants(tenants, json).await,
        ["lease", cell] => show_lease(cell, json).await,
        ["revoke", cell] => revoke(cell, json).await,
        ["reinstate", cell, "--tenure", n] => match n.parse() {
            Ok(n) => reinstate(cell, n).await,
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

async fn import_tenants(tenants: &[&str], json: bool) -> ExitCode {
    let source = match crate::operator::registry_from_lookup(env).await {
        Ok(r) => r,
        Err(e) => return fail("configuration", e),
    };
    if env("PARACELL_REGISTRY").as_deref() == Some("quorum") {
        return fail(
            "quorum import",
            "PARACELL_REGISTRY must name the one-table registry to import from, not the quorum",
        );
    }
    let quorum = match quorum().await {
        Ok(q) => q,
        Err(code) => return code,
    };
    let mut failed = false;
    for tenant in tenants {
        let Ok(tenant) = TenantId::parse(tenant) else {
            return fail("quorum import", format!("{tenant:?} is not a tenant id"));
        };
        let (outcome, line) = match import(source.as_ref(), quorum.as_ref(), &tenant).await {
            Ok(Imported::Copied(p)) => ("copied", placement_json(&p)),
            Ok(Imported::AlreadyThere(p)) => ("already-there", placement_json(&p)),
            Ok(Imported::Differs { source, quorum }) => {
                failed = true;
                (
                    "differs",
                    json!({ "source": placement_json(&source), "quorum": placement_json(&quorum) }),
                )
            }
            Ok(Imported::NotRegistered) => ("not-registered", Value::Null),
            Err(e) => {
                failed = true;
                ("error", json!(e.to_string()))
            }
        };
        if json {
            println!(
                "{}",
                json!({ "tenant": tenant.as_str(), "outcome": outcome, "placement": line })
            );
        } else {
            println!("{tenant}: {outcome} {line}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn show_lease(cell: &str, json: bool) -> ExitCode {
    let Ok(cell) = CellId::parse(cell) else {
        return fail("quorum lease", format!("{cell:?} is not a cell id"));
    };
    let quorum = match quorum().await {
        Ok(q) => q,
        Err(code) => return code,
    };
    let value = match lease::read(&quorum, &cell).await {
        Ok(Some(l)) => {
            json!({ "cell": l.cell.as_str(), "tenure": l.tenure, "seq": l.seq, "revoked": l.revoked })
        }
        Ok(None) => json!({ "cell": cell.as_str(), "lease": null }),
        Err(e) => return fail("quorum lease", e),
    };
    if json {
        println!("{value}");
    } else {
        println!("{value:#}");
    }
    ExitCode::SUCCESS
}

/// `quorum revoke CELL`: a person's promoter. Watches the cell lease's counter for the promoter's
/// wait (`LeaseTiming::promoter_wait`) and revokes it only if it stood still — the same rule the
/// controllers apply. A cell that renewed meanwhile is alive at a majority: refused (move its tenants
/// with `migrate`). After a revocation, `failover` may promote its tenants elsewhere.
async fn revoke(cell: &str, json: bool) -> ExitCode {
    use paracell_domain::placement::quorum::LeaseWatch;
    use paracell_domain::ports::MonotonicClock;
    let Ok(cell) = CellId::parse(cell) else {
        return fail("quorum revoke", format!("{cell:?} is not a cell id"));
    };
    let quorum = match quorum().await {
        Ok(q) => q,
        Err(code) => return code,
    };
    let timing = match lease_timing_from_lookup(env) {
        Ok(t) => t,
        Err(e) => return fail("configuration", e),
    };
    let clock = paracell_domain::ports::ProcessClock::new();
    let mut watch = LeaseWatch::new(timing);
    if !json {
        eprintln!(
            "watching the lease of {cell} for {:.1} s: revoked only if it does not renew meanwhile",
            timing.promoter_wait().as_secs_f64()
        );
    }
    let seq = loop {
        match lease::read(&quorum, &cell).await {
            Ok(Some(l)) if l.revoked => {
                return fail(
                    "quorum revoke",
                    format!("{cell}'s lease is already revoked: {l:?}"),
                );
            }
            Ok(Some(l)) => watch.observe(&l, clock.now()),
            Ok(None) => return fail("quorum revoke", format!("{cell} has no cell lease")),
            Err(e) => return fail("quorum revoke", e),
        }
        if let Some(seq) = watch.expired(clock.now()) {
            break seq;
        }
        tokio::time::sleep(timing.renew_every() / 2).await;
    };
    match lease::revoke(&quorum, &cell, seq).await {
        Ok(LeaseChange::Applied(l)) => {
            println!(
                "{}",
                json!({ "cell": l.cell.as_str(), "tenure": l.tenure, "seq": l.seq, "revoked": true })
            );
            ExitCode::SUCCESS
        }
        Ok(LeaseChange::Refused { current, reason }) => fail(
            "quorum revoke",
            format!(
                "refused ({reason:?}): the cell renewed at a majority, it is alive — move its tenants with migrate; the lease is {current:?}"
            ),
        ),
        Err(e) => fail("quorum revoke", e),
    }
}

/// Whether `failover` may promote away from `cell` on the quorum: only once its cell lease is
/// revoked (or it never had one: a cell on per-tenant leases), since a cell that still renews keeps
/// booking for every tenant it confirmed in its tenure.
pub async fn failover_allowed(cell: &CellId) -> Result<(), String> {
    if env("PARACELL_REGISTRY").as_deref() != Some("quorum") {
        return Ok(());
    }
    let quorum = quorum_from_lookup(env)
        .await?
        .ok_or("PARACELL_QUORUM is not set")?;
    match lease::read(&quorum, cell)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(l) if !l.revoked => Err(format!(
            "{cell} holds a cell lease (tenure {}, seq {}) that is not revoked: while it renews it keeps booking, so a failover now would make two primaries. Run `paracell-admin quorum revoke {cell}` first (it refuses if the cell is alive: then use migrate)",
            l.tenure, l.seq
        )),
        _ => Ok(()),
    }
}

async fn reinstate(cell: &str, tenure: u64) -> ExitCode {
    let Ok(cell) = CellId::parse(cell) else {
        return fail("quorum reinstate", format!("{cell:?} is not a cell id"));
    };
    let quorum = match quorum().await {
        Ok(q) => q,
        Err(code) => return code,
    };
    match lease::reinstate(&quorum, &cell, tenure).await {
        Ok(LeaseChange::Applied(l)) => {
            println!(
                "{}",
                json!({ "cell": l.cell.as_str(), "tenure": l.tenure, "reinstated": true })
            );
            ExitCode::SUCCESS
        }
        Ok(LeaseChange::Refused { current, reason }) => fail(
            "quorum reinstate",
            format!("refused ({reason:?}); the lease is {current:?}"),
        ),
        Err(e) => fail("quorum reinstate", e),
    }
}

/// What a failover controller watches and how often: from `paracell-admin watch`'s arguments, or
/// from the environment of the scheduled controllers (`lambda-controller`, `azure-controller`).
///
/// | variable | argument | meaning |
/// |---|---|---|
/// | `PARACELL_WATCH_CELL` | `CELL` | the primary cell watched |
/// | `PARACELL_WATCH_OBSERVER` | `--observer` | this observer's failure domain (`aws`, `azure`, `gcp`) |
/// | `PARACELL_WATCH_CELL_DOMAIN` | `--cell-domain` | the watched cell's domain (its own votes do not count) |
/// | `PARACELL_WATCH_HEALTH` | `--health` | the cell's health URL |
/// | `PARACELL_WATCH_STANDBY` | `--standby` | the cell its tenants fail over to (in `PARACELL_ADMIN_CELLS`) |
/// | `PARACELL_WATCH_TENANTS` | `--tenants` | the tenants, comma-separated |
/// | `PARACELL_WATCH_EVERY_MS` | `--every-ms` | between two ticks (default 2000) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// The primary cell watched.
    pub cell: String,
    /// This observer's failure domain.
    pub observer: String,
    /// The watched cell's domain.
    pub cell_domain: String,
    /// The cell's health URL.
    pub health: String,
    /// The cell its tenants fail over to.
    pub standby: String,
    /// The tenants, comma-separated.
    pub tenants: String,
    /// Between two ticks.
    pub every: Duration,
}

impl WatchConfig {
    /// From `PARACELL_WATCH_*`, read through `lookup`.
    ///
    /// ```
    /// use paracell_examples::quorum_admin::WatchConfig;
    /// let env = |n: &str| match n {
    ///     "PARACELL_WATCH_EVERY_MS" => Some("500".to_owned()),
    ///     other => other.strip_prefix("PARACELL_WATCH_").map(|v| v.to_lowercase()),
    /// };
    /// let config = WatchConfig::from_lookup(env).unwrap();
    /// assert_eq!((config.observer.as_str(), config.every.as_millis()), ("observer", 500));
    /// assert!(WatchConfig::from_lookup(|_| None).unwrap_err().contains("PARACELL_WATCH_CELL"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let every = match lookup("PARACELL_WATCH_EVERY_MS") {
            None => ControllerPolicy::default().probe_every,
            Some(v) => {
                Duration::from_millis(v.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    format!("PARACELL_WATCH_EVERY_MS={v:?} is not a positive number")
                })?)
            }
        };
        Ok(Self {
            cell: required("PARACELL_WATCH_CELL")?,
            observer: required("PARACELL_WATCH_OBSERVER")?,
            cell_domain: required("PARACELL_WATCH_CELL_DOMAIN")?,
            health: required("PARACELL_WATCH_HEALTH")?,
            standby: required("PARACELL_WATCH_STANDBY")?,
            tenants: required("PARACELL_WATCH_TENANTS")?,
            every,
        })
    }

    /// From `paracell-admin watch`'s words (after `watch`), and the number of ticks to run.
    fn from_words(words: &[&str]) -> Option<(Self, Option<u64>)> {
        let (cell, rest) = words.split_first()?;
        let mut values = std::collections::BTreeMap::new();
        values.insert("PARACELL_WATCH_CELL", (*cell).to_owned());
        let mut ticks = None;
        let mut rest = rest.iter();
        while let Some(flag) = rest.next() {
            let value = (*rest.next()?).to_owned();
            let name = match *flag {
                "--observer" => "PARACELL_WATCH_OBSERVER",
                "--cell-domain" => "PARACELL_WATCH_CELL_DOMAIN",
                "--health" => "PARACELL_WATCH_HEALTH",
                "--standby" => "PARACELL_WATCH_STANDBY",
                "--tenants" => "PARACELL_WATCH_TENANTS",
                "--every-ms" => "PARACELL_WATCH_EVERY_MS",
                "--ticks" => {
                    ticks = Some(value.parse().ok()?);
                    continue;
                }
                _ => return None,
            };
            values.insert(name, value);
        }
        let config = Self::from_lookup(|n| values.get(n).cloned()).ok()?;
        Some((config, ticks))
    }
}

/// The failover controller `config` describes, on the quorum `PARACELL_QUORUM` names and the cells
/// `PARACELL_ADMIN_CELLS` names (the standby's store, and the watched cell's when reachable).
pub async fn controller_from(
    config: &WatchConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Controller, ControllerPolicy), String> {
    let quorum = quorum_from_lookup(&lookup)
        .await?
        .ok_or("PARACELL_QUORUM is not set")?;
    let timing = lease_timing_from_lookup(&lookup)?;
    let cells = crate::operator::cells_from_lookup(&lookup).await?;
    let find = |id: &str| cells.iter().find(|c| c.id.as_str() == id).cloned();
    let standby = find(&config.standby)
        .ok_or_else(|| format!("{} is not in PARACELL_ADMIN_CELLS", config.standby))?;
    let cell = CellId::parse(&config.cell).map_err(|e| format!("{:?}: {e}", config.cell))?;
    let mut tenants = Vec::new();
    for t in config.tenants.split(',').filter(|t| !t.is_empty()) {
        tenants.push(Protected {
            tenant: TenantId::parse(t).map_err(|e| format!("{t:?}: {e}"))?,
            standby: standby.clone(),
        });
    }
    let policy = ControllerPolicy {
        probe_every: config.every,
        ..ControllerPolicy::default()
    };
    let controller = Controller::new(
        Watched {
            observer: config.observer.clone(),
            cell,
            cell_domain: config.cell_domain.clone(),
            health_url: config.health.clone(),
            tenants,
            old: find(&config.cell),
        },
        Arc::new(crate::http_client::HyperClient::new()),
        Arc::clone(&quorum),
        paracell_domain::placement::migrate::MovePorts {
            registry: quorum,
            clock: Arc::new(paracell_domain::ports::SystemClock),
            sleep: Arc::new(crate::http_client::TokioSleep),
        },
        Arc::new(paracell_domain::ports::ProcessClock::new()),
        policy,
        timing,
    );
    Ok((controller, policy))
}

/// A scheduled controller's set-up from the environment (`lambda-controller`, `azure-controller`).
pub struct Scheduled {
    /// The controller ([`WatchConfig`] from `PARACELL_WATCH_*`).
    pub controller: Controller,
    /// Its policy.
    pub policy: ControllerPolicy,
    /// How long each invocation ticks (`PARACELL_CONTROLLER_RUN_SECS`, default 50: under both
    /// platforms' 60 s timeouts).
    pub run_for: Duration,
    /// Where its decisions are published ([`crate::decision_events_from_lookup`]), if anywhere.
    pub events: Option<DecisionEvents>,
}

impl Scheduled {
    /// One invocation: ticks until `run_for` has passed (logging and publishing as [`run_ticks`]
    /// does); the ticks' evidence.
    pub async fn invocation(&self) -> Vec<Value> {
        run_ticks(
            &self.controller,
            &self.policy,
            self.events.as_ref(),
            None,
            Some(std::time::Instant::now() + self.run_for),
        )
        .await
    }
}

/// [`Scheduled`] from the process environment.
pub async fn scheduled_from_env() -> Result<Scheduled, String> {
    let config = WatchConfig::from_lookup(env)?;
    let run_for = match env("PARACELL_CONTROLLER_RUN_SECS").map(|v| v.parse::<u64>()) {
        None => Duration::from_secs(50),
        Some(Ok(secs)) if secs > 0 => Duration::from_secs(secs),
        Some(_) => {
            return Err("PARACELL_CONTROLLER_RUN_SECS must be a positive number of seconds".into());
        }
    };
    let (controller, policy) = controller_from(&config, env).await?;
    let events = decision_events(env).await?;
    Ok(Scheduled {
        controller,
        policy,
        run_for,
        events,
    })
}

async fn decision_events(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<DecisionEvents>, String> {
    crate::decision_events_from_lookup(lookup, Arc::new(crate::http_client::HyperClient::new()))
        .await
}

/// Runs `controller` for `ticks` ticks (`None`: until `until` has passed), one tick every
/// `policy.probe_every`, printing each tick's evidence as one JSON line on stdout and publishing
/// the ticks that decide something new to `events` (a line `failover-controller-events` says what
/// the bus took, and what it did not); returns the ticks' evidence.
pub async fn run_ticks(
    controller: &Controller,
    policy: &ControllerPolicy,
    events: Option<&DecisionEvents>,
    ticks: Option<u64>,
    until: Option<std::time::Instant>,
) -> Vec<Value> {
    let mut reports = Vec::new();
    loop {
        let tick = controller.tick().await;
        let mut report = evidence(&tick);
        // When the tick ended, so a log read later lines its decisions up with other processes'.
        report["time"] = json!(
            paracell_domain::ports::Clock::now(&paracell_domain::ports::SystemClock).to_string()
        );
        // One JSON line per tick: the evidence of every decision, for the logs.
        println!("{report}");
        reports.push(report);
        if let Some(events) = events {
            let out = events.observe(&tick).await;
            let quiet = out.published.is_empty()
                && out.failed.is_none()
                && out.rejected.is_empty()
                && out.overflowed == 0;
            if !quiet {
                println!(
                    "{}",
                    json!({
                        "event": "failover-controller-events",
                        "bus": events.bus(),
                        "published": out.published,
                        "pending": out.pending,
                        "failed": out.failed.map(|e| e.to_string()),
                        "rejected": out.rejected,
                        "overflowed": out.overflowed,
                    })
                );
            }
        }
        let done = ticks.is_some_and(|n| reports.len() as u64 >= n)
            || until.is_some_and(|t| std::time::Instant::now() + policy.probe_every >= t);
        if done {
            return reports;
        }
        tokio::time::sleep(policy.probe_every).await;
    }
}

/// `paracell-admin watch …` (the words after `watch`): the failover controller's loop.
pub async fn watch_command(words: &[&str]) -> ExitCode {
    let Some((config, ticks)) = WatchConfig::from_words(words) else {
        return usage();
    };
    let (controller, policy) = match controller_from(&config, env).await {
        Ok(c) => c,
        Err(e) => return fail("watch", e),
    };
    let events = match decision_events(env).await {
        Ok(events) => events,
        Err(e) => return fail("watch", e),
    };
    run_ticks(&controller, &policy, events.as_ref(), ticks, None).await;
    ExitCode::SUCCESS
}
