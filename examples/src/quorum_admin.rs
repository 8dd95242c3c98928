//! `paracell-admin`'s quorum commands: moving from the one-table registry, reading and reinstating
//! a cell lease, and the failover controller's loop for local runs.
//!
//! ```text
//! paracell-admin quorum import TENANT... [--json]   # copy PARACELL_REGISTRY's records into PARACELL_QUORUM
//! paracell-admin quorum lease CELL [--json]         # the cell lease, as a majority reads it
//! paracell-admin quorum reinstate CELL --tenure N   # a new tenure for a revoked cell
//! paracell-admin watch CELL --observer DOMAIN --cell-domain DOMAIN --health URL
//!                 --standby CELL --tenants T1,T2 [--every-ms N] [--ticks N]
//!                                                   # probe, vote, decide, fail over; one JSON line per tick
//! ```
//! Exit status 0 on success, 1 when something could not be done, 2 on usage or set-up errors.

use crate::quorum::{lease_timing_from_lookup, quorum_from_lookup};
use paracell_domain::placement::quorum::QuorumRegistry;
use paracell_domain::placement::quorum::controller::{
    Controller, ControllerPolicy, Decision, Protected, TickReport, Watched,
};
use paracell_domain::placement::quorum::import::{Imported, import};
use paracell_domain::placement::quorum::lease::{self, LeaseChange};
use paracell_domain::placement::registry::Placement;
use paracell_domain::{CellId, TenantId};
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The usage lines of these commands.
pub const USAGE: &str = "       paracell-admin quorum import TENANT... [--json]\n       paracell-admin quorum lease CELL [--json]\n       paracell-admin quorum reinstate CELL --tenure N\n       paracell-admin watch CELL --observer DOMAIN --cell-domain DOMAIN --health URL --standby CELL --tenants T1,T2 [--every-ms N] [--ticks N]";

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
    let read = quorum
        .change(&lease::lease_key(&cell), |_| {
            Ok::<_, std::convert::Infallible>(None)
        })
        .await;
    let text = match read {
        Ok(Ok(text)) => text,
        Ok(Err(never)) => match never {},
        Err(e) => return fail("quorum lease", e),
    };
    let value = match text.as_deref().map(lease::CellLease::parse).transpose() {
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

/// What `watch` needs from its arguments.
struct WatchArgs<'a> {
    cell: &'a str,
    observer: &'a str,
    cell_domain: &'a str,
    health: &'a str,
    standby: &'a str,
    tenants: &'a str,
    every: Duration,
    ticks: Option<u64>,
}

fn watch_args<'a>(words: &[&'a str]) -> Option<WatchArgs<'a>> {
    let (cell, rest) = words.split_first()?;
    let mut args = WatchArgs {
        cell,
        observer: "",
        cell_domain: "",
        health: "",
        standby: "",
        tenants: "",
        every: ControllerPolicy::default().probe_every,
        ticks: None,
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next()?;
        match *flag {
            "--observer" => args.observer = value,
            "--cell-domain" => args.cell_domain = value,
            "--health" => args.health = value,
            "--standby" => args.standby = value,
            "--tenants" => args.tenants = value,
            "--every-ms" => args.every = Duration::from_millis(value.parse().ok()?),
            "--ticks" => args.ticks = Some(value.parse().ok()?),
            _ => return None,
        }
    }
    [
        args.observer,
        args.cell_domain,
        args.health,
        args.standby,
        args.tenants,
    ]
    .iter()
    .all(|v| !v.is_empty())
    .then_some(args)
}

fn report_json(r: &TickReport) -> Value {
    json!({
        "event": "failover-controller-tick",
        "observer": r.observer,
        "cell": r.cell.as_str(),
        "probe_ok": r.probe_ok,
        "lease": r.lease.as_ref().map(|l| json!({ "tenure": l.tenure, "seq": l.seq, "revoked": l.revoked })),
        "votes": r.votes.iter().map(|(d, v)| (d.clone(), json!({ "down": v.down, "lease_seq": v.lease_seq }))).collect::<serde_json::Map<_, _>>(),
        "decision": r.decision.as_ref().map(|d| match d {
            Decision::Hold(h) => format!("hold: {h:?}"),
            Decision::Promote { seq } => format!("promote (revoke at seq {seq})"),
            Decision::Finish => "finish the promotion".to_owned(),
            Decision::Page(why) => format!("page: {why}"),
        }),
        "failovers": r.failovers.iter().map(|f| match f {
            Ok(f) => json!({ "tenant": f.tenant.as_str(), "from": f.from.as_str(), "to": f.to.as_str(),
                "epoch_after": f.epochs.1, "promoted_at_seq": f.promoted_at.seq, "lost_entries": f.lost_entries }),
            Err(e) => json!({ "error": e }),
        }).collect::<Vec<_>>(),
        "problems": r.problems,
    })
}

/// `paracell-admin watch …` (the words after `watch`): the failover controller's loop.
pub async fn watch_command(words: &[&str]) -> ExitCode {
    let Some(args) = watch_args(words) else {
        return usage();
    };
    let quorum = match quorum().await {
        Ok(q) => q,
        Err(code) => return code,
    };
    let timing = match lease_timing_from_lookup(env) {
        Ok(t) => t,
        Err(e) => return fail("configuration", e),
    };
    let cells = match crate::operator::cells_from_lookup(env).await {
        Ok(c) => c,
        Err(e) => return fail("configuration", e),
    };
    let find = |id: &str| cells.iter().find(|c| c.id.as_str() == id).cloned();
    let Some(standby) = find(args.standby) else {
        return fail(
            "watch",
            format!("{} is not in PARACELL_ADMIN_CELLS", args.standby),
        );
    };
    let Ok(cell) = CellId::parse(args.cell) else {
        return fail("watch", format!("{:?} is not a cell id", args.cell));
    };
    let mut tenants = Vec::new();
    for t in args.tenants.split(',').filter(|t| !t.is_empty()) {
        let Ok(tenant) = TenantId::parse(t) else {
            return fail("watch", format!("{t:?} is not a tenant id"));
        };
        tenants.push(Protected {
            tenant,
            standby: standby.clone(),
        });
    }
    let policy = ControllerPolicy {
        probe_every: args.every,
        ..ControllerPolicy::default()
    };
    let controller = Controller::new(
        Watched {
            observer: args.observer.to_owned(),
            cell,
            cell_domain: args.cell_domain.to_owned(),
            health_url: args.health.to_owned(),
            tenants,
            old: find(args.cell),
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
    let mut done = 0;
    loop {
        let report = controller.tick().await;
        // One JSON line per tick on stdout: the evidence of every decision.
        println!("{}", report_json(&report));
        done += 1;
        if args.ticks.is_some_and(|n| done >= n) {
            return ExitCode::SUCCESS;
        }
        tokio::time::sleep(policy.probe_every).await;
    }
}
