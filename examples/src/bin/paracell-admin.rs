//! `paracell-admin`: the operator's tool. It reads the same configuration as the cell it operates
//! (`PARACELL_*`, the store and dead-letter settings), so it runs wherever the cell's settings are.
//!
//! ```text
//! paracell-admin dead-letters list [--json]          # what the relay could not deliver, and why
//! paracell-admin dead-letters replay [--limit N]     # deliver them again; remove those delivered
//! paracell-admin status TENANT [--json]              # the registry's placement, each cell's role, epoch and lag
//! paracell-admin migrate TENANT --to CELL [--json] [--timeout-secs N]
//!                                                    # planned move: freeze, catch up, fence, promote, switch
//! paracell-admin failover TENANT --to CELL --allow-data-loss [--json] [--lease-secs N]
//!                     [--skew-secs N] [--invocation-secs N]
//!                                                    # unplanned: wait out the old primary's lease, promote
//! paracell-admin reconcile TENANT [--json] [--report FILE]
//!                                                    # fence a returning primary, classify what it kept
//! paracell-admin verify TENANT [--json]              # the primary and each standby: chains, state vs log
//! paracell-admin quorum import|lease|reinstate …     # the placement quorum (paracell_examples::quorum_admin)
//! paracell-admin watch CELL …                        # the failover controller's loop
//! ```
//! The placement commands reach the cells' stores and the registry named by `PARACELL_ADMIN_CELLS` and
//! `PARACELL_REGISTRY` ([`paracell_examples::operator`]).
//! Exit status 0 on success, 1 when something could not be done, 2 on usage or set-up errors.

use std::process::ExitCode;

const USAGE: &str = "usage: paracell-admin dead-letters list [--json]\n       paracell-admin dead-letters replay [--limit N]\n       paracell-admin status TENANT [--json]\n       paracell-admin migrate TENANT --to CELL [--json] [--timeout-secs N]\n       paracell-admin failover TENANT --to CELL --allow-data-loss [--json] [--lease-secs N] [--skew-secs N] [--invocation-secs N]\n       paracell-admin reconcile TENANT [--json] [--report FILE]\n       paracell-admin verify TENANT [--json]\n";

#[tokio::main]
async fn main() -> ExitCode {
    // Results go to stdout (`--json` for machines); diagnostics are JSON log lines on stderr, like
    // every binary's.
    paracell_examples::logs::init_azure();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["dead-letters", "list", rest @ ..] => list(rest.contains(&"--json")).await,
        ["dead-letters", "replay", rest @ ..] => {
            let limit = match rest {
                [] => 100,
                ["--limit", n] => match n.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => return usage(),
                },
                _ => return usage(),
            };
            replay(limit).await
        }
        ["status", tenant, rest @ ..] if rest.iter().all(|a| *a == "--json") => {
            status(tenant, rest.contains(&"--json")).await
        }
        ["verify", tenant, rest @ ..] if rest.iter().all(|a| *a == "--json") => {
            verify(tenant, rest.contains(&"--json")).await
        }
        ["migrate", tenant, rest @ ..] => {
            let mut to = None;
            let mut json = false;
            let mut timeout = 60;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match *arg {
                    "--to" => to = rest.next().copied(),
                    "--json" => json = true,
                    "--timeout-secs" => match rest.next().and_then(|n| n.parse().ok()) {
                        Some(n) => timeout = n,
                        None => return usage(),
                    },
                    _ => return usage(),
                }
            }
            match to {
                Some(to) => migrate(tenant, to, json, timeout).await,
                None => usage(),
            }
        }
        ["failover", tenant, rest @ ..] => {
            let mut to = None;
            let (mut json, mut allowed) = (false, false);
            let mut policy = paracell_domain::placement::failover::FailoverPolicy::default();
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                let mut secs = || {
                    rest.next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .map(std::time::Duration::from_secs)
                };
                match *arg {
                    "--to" => to = rest.next().copied(),
                    "--json" => json = true,
                    "--allow-data-loss" => allowed = true,
                    "--lease-secs" => match secs() {
                        Some(d) => policy.lease_ttl = d,
                        None => return usage(),
                    },
                    "--skew-secs" => match secs() {
                        Some(d) => policy.clock_skew = d,
                        None => return usage(),
                    },
                    "--invocation-secs" => match secs() {
                        Some(d) => policy.invocation_timeout = d,
                        None => return usage(),
                    },
                    _ => return usage(),
                }
            }
            if !allowed {
                return fail(
                    "failover",
                    "an unplanned failover may lose what the primary did not replicate: say --allow-data-loss (or use migrate)",
                );
            }
            match to {
                Some(to) => failover(tenant, to, json, policy).await,
                None => usage(),
            }
        }
        ["quorum", rest @ ..] => paracell_examples::quorum_admin::quorum_command(rest).await,
        ["watch", rest @ ..] => paracell_examples::quorum_admin::watch_command(rest).await,
        ["reconcile", tenant, rest @ ..] => {
            let mut json = false;
            let mut report = None;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match *arg {
                    "--json" => json = true,
                    "--report" => report = rest.next().copied(),
                    _ => return usage(),
                }
            }
            reconcile(tenant, json, report).await
        }
        _ => usage(),
    }
}

async fn failover(
    tenant: &str,
    to: &str,
    json: bool,
    policy: paracell_domain::placement::failover::FailoverPolicy,
) -> ExitCode {
    use paracell_domain::placement::failover::failover;
    use paracell_domain::placement::migrate::MovePorts;
    let Ok(tenant) = paracell_domain::TenantId::parse(tenant) else {
        return fail("failover", format!("{tenant:?} is not a tenant id"));
    };
    let (cells, registry) = match placement_ports().await {
        Ok(p) => p,
        Err(e) => return fail("configuration", e),
    };
    let replica =
        match paracell_examples::operator::replica_from_lookup(|n| std::env::var(n).ok()).await {
            Ok(r) => r,
            Err(e) => return fail("configuration", e),
        };
    let Some(target) = cells.iter().find(|c| c.id.as_str() == to).cloned() else {
        return fail("failover", format!("{to} is not in PARACELL_ADMIN_CELLS"));
    };
    // The old primary: the registry's, else the one the target follows.
    let from = match registry.get(&tenant).await {
        Ok(Some(p)) if p.primary != target.id => p.primary,
        _ => match target.store.head(&tenant).await {
            Ok(Some(h)) => h.primary,
            _ => {
                return fail(
                    "failover",
                    format!("{to} does not follow a primary of {tenant}"),
                );
            }
        },
    };
    if let Err(e) = paracell_examples::quorum_admin::failover_allowed(&from).await {
        return fail("failover", e);
    }
    let old = cells.iter().find(|c| c.id == from).cloned();
    let ports = MovePorts {
        registry,
        clock: std::sync::Arc::new(paracell_domain::ports::SystemClock),
        sleep: std::sync::Arc::new(paracell_examples::http_client::TokioSleep),
    };
    if !json {
        println!(
            "failing {tenant} over from {from} to {to}: waiting out the old primary's lease ({} s)…",
            policy.wait().as_secs()
        );
    }
    match failover(
        &tenant,
        &from,
        old.as_ref(),
        &target,
        &ports,
        replica.as_deref(),
        policy,
    )
    .await
    {
        Ok(r) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "tenant": r.tenant.as_str(), "from": r.from.as_str(), "to": r.to.as_str(),
                        "epoch_before": r.epochs.0, "epoch_after": r.epochs.1,
                        "promoted_at_seq": r.promoted_at.seq, "promoted_at_digest": r.promoted_at.digest.to_string(),
                        "old_primary_seq": r.old_position.map(|p| p.seq),
                        "lost_entries": r.lost_entries, "waited_ms": r.waited_millis, "steps": r.steps,
                    })
                );
            } else {
                for step in &r.steps {
                    println!("  {step}");
                }
                match r.lost_entries {
                    Some(n) => println!(
                        "{} is primary at epoch {}; {n} entries of {} were not replicated (run reconcile)",
                        r.to, r.epochs.1, r.from
                    ),
                    None => println!(
                        "{} is primary at epoch {} from {}; what {} committed after it is unknown until it is back (run reconcile then)",
                        r.to, r.epochs.1, r.promoted_at, r.from
                    ),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "tenant": tenant.as_str(), "error": e.to_string() })
                );
            }
            tracing::error!(command = "failover", error = %e, "paracell-admin failed");
            ExitCode::FAILURE
        }
    }
}

async fn reconcile(tenant: &str, json: bool, report_file: Option<&str>) -> ExitCode {
    use paracell_domain::placement::reconcile::{TailClass, reconcile};
    use paracell_domain::placement::registry::PlacementState;
    let Ok(tenant) = paracell_domain::TenantId::parse(tenant) else {
        return fail("reconcile", format!("{tenant:?} is not a tenant id"));
    };
    let (cells, registry) = match placement_ports().await {
        Ok(p) => p,
        Err(e) => return fail("configuration", e),
    };
    let (old_id, new_id) = match registry.get(&tenant).await {
        Ok(Some(p)) => match p.state {
            PlacementState::FailedOver { from } => (from, p.primary),
            other => {
                return fail(
                    "reconcile",
                    format!("{tenant} is {other}: nothing to reconcile"),
                );
            }
        },
        Ok(None) => return fail("reconcile", format!("{tenant} has no registry record")),
        Err(e) => return fail("registry", e),
    };
    let find = |id: &paracell_domain::CellId| cells.iter().find(|c| c.id == *id).cloned();
    let (Some(old), Some(new)) = (find(&old_id), find(&new_id)) else {
        return fail(
            "reconcile",
            format!("{old_id} and {new_id} must both be in PARACELL_ADMIN_CELLS"),
        );
    };
    let rec = match reconcile(&tenant, &old, &new, registry.as_ref()).await {
        Ok(r) => r,
        Err(e) => return fail("reconcile", e),
    };
    let document = serde_json::json!({
        "tenant": rec.tenant.as_str(), "old": rec.old.as_str(), "new": rec.new.as_str(),
        "epoch": rec.epoch, "from_seq": rec.from_seq,
        // Every class, by name (`retried_other_outcome` included): a count never leaves one out.
        "counts": TailClass::ALL
            .iter()
            .map(|c| (c.as_str().replace('-', "_"), serde_json::json!(rec.count(*c))))
            .collect::<serde_json::Map<String, serde_json::Value>>(),
        "entries": rec.entries.iter().map(|e| serde_json::json!({
            "seq": e.seq, "key": e.key, "class": e.class.as_str(), "status": e.status,
            "response": serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or(serde_json::Value::String(e.body.clone())),
        })).collect::<Vec<_>>(),
        "steps": rec.steps,
    });
    if let Some(path) = report_file
        && let Err(e) = std::fs::write(path, format!("{document:#}\n"))
    {
        return fail("writing the report", e);
    }
    if json {
        println!("{document}");
    } else {
        for step in &rec.steps {
            println!("  {step}");
        }
        for e in &rec.entries {
            println!("  seq {:>6}  {:<13} key {}", e.seq, e.class.as_str(), e.key);
        }
        println!(
            "{} retried, {} retried with another outcome (decide), {} conflicting (decide), {} lost (re-submit), {} lost refusals{}",
            rec.count(TailClass::Retried),
            rec.count(TailClass::RetriedOtherOutcome),
            rec.count(TailClass::Conflicting),
            rec.count(TailClass::Lost),
            rec.count(TailClass::LostRefusal),
            report_file
                .map(|p| format!("; report in {p}"))
                .unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

/// `verify TENANT`: the primary and each standby the registry names, compared (exit 0: they agree;
/// 1: a difference, or a cell that kept writing too fast to follow).
async fn verify(tenant: &str, json: bool) -> ExitCode {
    use paracell_domain::replication::verify::{CellAudit, verify};
    let Ok(tenant) = paracell_domain::TenantId::parse(tenant) else {
        return fail("verify", format!("{tenant:?} is not a tenant id"));
    };
    let (cells, registry) = match placement_ports().await {
        Ok(p) => p,
        Err(e) => return fail("configuration", e),
    };
    let placement = match registry.get(&tenant).await {
        Ok(Some(p)) => p,
        Ok(None) => return fail("verify", format!("{tenant} has no registry record")),
        Err(e) => return fail("registry", e),
    };
    let find = |id: &paracell_domain::CellId| cells.iter().find(|c| c.id == *id).cloned();
    let Some(primary) = find(&placement.primary) else {
        return fail(
            "verify",
            format!("{} is not in PARACELL_ADMIN_CELLS", placement.primary),
        );
    };
    let mut standbys = Vec::new();
    for id in &placement.standbys {
        match find(id) {
            Some(cell) => standbys.push(cell),
            None => return fail("verify", format!("{id} is not in PARACELL_ADMIN_CELLS")),
        }
    }
    let v = match verify(&tenant, &primary, &standbys).await {
        Ok(v) => v,
        Err(e) => return fail("verify", e),
    };
    let audit_json = |a: &CellAudit| {
        serde_json::json!({
            "cell": a.cell.as_str(), "seq": a.seq, "digest": a.digest.to_string(),
            "balances": a.balances, "records": a.records,
            "checksum": a.checksum, "unsettled": a.unsettled,
            "difference": a.difference.as_ref().map(ToString::to_string),
        })
    };
    let first = v
        .first_difference()
        .map(|(cell, d)| (cell.to_string(), d.to_string()));
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tenant": v.tenant.as_str(), "epoch": placement.epoch,
                "verdict": if v.agrees() { "agree" } else { "diverged" },
                "first_difference": first.as_ref().map(|(cell, d)| serde_json::json!({ "cell": cell, "what": d })),
                "primary": audit_json(&v.primary),
                "standbys": v.standbys.iter().map(|s| {
                    let mut j = audit_json(&s.audit);
                    j["compared_at"] = serde_json::json!(s.compared_at);
                    j["chain"] = serde_json::json!(s.chain.as_ref().map(ToString::to_string));
                    j
                }).collect::<Vec<_>>(),
            })
        );
    } else {
        let line = |role: &str, a: &CellAudit| {
            println!(
                "  {role:<8} {:<14} seq {:>7}  {} balances, {} records  checksum {}{}",
                a.cell.as_str(),
                a.seq,
                a.balances,
                a.records,
                &a.checksum[..16.min(a.checksum.len())],
                if a.unsettled {
                    "  (kept writing: unsettled)"
                } else {
                    ""
                }
            );
        };
        line("primary", &v.primary);
        for s in &v.standbys {
            line("standby", &s.audit);
        }
        match &first {
            None if v.agrees() => println!("agree"),
            None => println!(
                "unsettled: a cell kept writing faster than the walk could follow; run it again"
            ),
            Some((cell, what)) => println!("diverged on {cell}: {what}"),
        }
    }
    if v.agrees() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The cells and the registry the placement commands reach.
async fn placement_ports() -> Result<
    (
        Vec<paracell_domain::placement::migrate::CellHandle>,
        std::sync::Arc<dyn paracell_domain::placement::registry::PlacementRegistry>,
    ),
    String,
> {
    let env = |n: &str| std::env::var(n).ok();
    let cells = paracell_examples::operator::cells_from_lookup(env).await?;
    let registry = paracell_examples::operator::registry_from_lookup(env).await?;
    Ok((cells, registry))
}

fn head_json(head: Option<&paracell_domain::placement::TenantHead>) -> serde_json::Value {
    head.map_or(serde_json::Value::Null, |h| {
        serde_json::json!({
            "role": h.role.as_str(), "epoch": h.epoch, "primary": h.primary.as_str(),
            "seq": h.position.seq, "digest": h.position.digest.to_string(),
            "lease_until": h.lease_until.map(|t| t.to_string()),
        })
    })
}

async fn status(tenant: &str, json: bool) -> ExitCode {
    use paracell_domain::placement::status::tenant_status;
    let Ok(tenant) = paracell_domain::TenantId::parse(tenant) else {
        return fail("status", format!("{tenant:?} is not a tenant id"));
    };
    let (cells, registry) = match placement_ports().await {
        Ok(p) => p,
        Err(e) => return fail("configuration", e),
    };
    let status = match tenant_status(
        &tenant,
        &cells,
        registry.as_ref(),
        &paracell_domain::ports::SystemClock,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return fail("status", e),
    };
    if json {
        let report = serde_json::json!({
            "tenant": tenant.as_str(),
            "placement": status.placement.as_ref().map(|p| serde_json::from_str::<serde_json::Value>(&p.render()).unwrap_or_default()),
            "cells": status.cells.iter().map(|c| serde_json::json!({
                "cell": c.cell.as_str(), "head": head_json(c.head.as_ref()),
                "lag_entries": c.lag_entries, "lag_ms": c.lag_millis,
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
        return ExitCode::SUCCESS;
    }
    match &status.placement {
        Some(p) => println!(
            "tenant {}: primary {} at epoch {} ({}), standbys [{}], registry version {}",
            tenant,
            p.primary,
            p.epoch,
            p.state,
            p.standbys
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.version
        ),
        None => {
            println!("tenant {tenant}: no registry record (placed implicitly by its first write)")
        }
    }
    for c in &status.cells {
        match &c.head {
            None => println!("  {:<16} holds nothing of the tenant", c.cell),
            Some(h) => println!(
                "  {:<16} {:<8} epoch {:<3} primary {:<16} at {}{}",
                c.cell,
                h.role,
                h.epoch,
                h.primary,
                h.position,
                if c.lag_entries > 0 {
                    format!("  lag {} entries, {} ms", c.lag_entries, c.lag_millis)
                } else {
                    String::new()
                }
            ),
        }
    }
    ExitCode::SUCCESS
}

async fn migrate(tenant: &str, to: &str, json: bool, timeout_secs: u64) -> ExitCode {
    use paracell_domain::placement::TenantRole;
    use paracell_domain::placement::migrate::{MigrationPolicy, MovePorts, migrate};
    let Ok(tenant) = paracell_domain::TenantId::parse(tenant) else {
        return fail("migrate", format!("{tenant:?} is not a tenant id"));
    };
    let (cells, registry) = match placement_ports().await {
        Ok(p) => p,
        Err(e) => return fail("configuration", e),
    };
    let Some(target) = cells.iter().find(|c| c.id.as_str() == to).cloned() else {
        return fail("migrate", format!("{to} is not in PARACELL_ADMIN_CELLS"));
    };
    // The source: the registry's primary, else the cell that holds the tenant as primary or frozen.
    let mut source = None;
    if let Ok(Some(p)) = registry.get(&tenant).await {
        source = cells.iter().find(|c| c.id == p.primary).cloned();
    }
    if source.is_none() {
        for c in &cells {
            if let Ok(Some(h)) = c.store.head(&tenant).await
                && matches!(h.role, TenantRole::Primary | TenantRole::Frozen)
            {
                source = Some(c.clone());
            }
        }
    }
    let Some(source) = source else {
        return fail(
            "migrate",
            format!("no configured cell is the primary of {tenant}"),
        );
    };
    let ports = MovePorts {
        registry,
        clock: std::sync::Arc::new(paracell_domain::ports::SystemClock),
        sleep: std::sync::Arc::new(paracell_examples::http_client::TokioSleep),
    };
    let policy = MigrationPolicy {
        catch_up_timeout: std::time::Duration::from_secs(timeout_secs),
        ..MigrationPolicy::default()
    };
    match migrate(&tenant, &source, &target, &ports, policy).await {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "tenant": report.tenant.as_str(), "from": report.from.as_str(), "to": report.to.as_str(),
                        "epoch_before": report.epochs.0, "epoch_after": report.epochs.1,
                        "seq": report.position.seq, "digest": report.position.digest.to_string(),
                        "writes_paused_ms": report.writes_paused_millis, "steps": report.steps,
                    })
                );
            } else {
                for step in &report.steps {
                    println!("  {step}");
                }
                println!(
                    "moved {} from {} to {} (epoch {} → {}) at {}; writes paused {} ms",
                    report.tenant,
                    report.from,
                    report.to,
                    report.epochs.0,
                    report.epochs.1,
                    report.position,
                    report.writes_paused_millis
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "tenant": tenant.as_str(), "error": e.to_string() })
                );
            }
            tracing::error!(command = "migrate", error = %e, "paracell-admin failed");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}{}", paracell_examples::quorum_admin::USAGE);
    ExitCode::from(2)
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    tracing::error!(command = what, error = %e, "paracell-admin failed");
    ExitCode::from(2)
}

async fn list(json: bool) -> ExitCode {
    let letters = match paracell_examples::dead_letters_from_lookup(|n| std::env::var(n).ok()).await
    {
        Ok(letters) => letters,
        Err(e) => return fail("dead letters", e),
    };
    let listed = match letters.list(1_000).await {
        Ok(listed) => listed,
        Err(e) => return fail("listing dead letters", e),
    };
    if json {
        let rows: Vec<String> = listed
            .iter()
            .map(|(id, l)| {
                format!(
                    "{{\"id\":{},\"letter\":{}}}",
                    serde_json_string(id),
                    l.render()
                )
            })
            .collect();
        println!("[{}]", rows.join(","));
    } else {
        for (id, l) in &listed {
            let e = l.entry.entry();
            println!(
                "{id}  {}  tenant {} entry {} (epoch {}, from {})  {} attempt(s) at {}\n    {}",
                l.destination, e.tenant, e.seq, e.epoch, e.origin, l.attempts, l.time, l.reason
            );
        }
        println!("{} dead letter(s)", listed.len());
    }
    ExitCode::SUCCESS
}

/// A JSON string literal (ids are printable; escaping keeps the output valid whatever they hold).
fn serde_json_string(text: &str) -> String {
    let mut out = String::new();
    paracell_domain::contract::json::push_str(&mut out, text);
    out
}

async fn replay(limit: usize) -> ExitCode {
    let env = |n: &str| std::env::var(n).ok();
    let config = match paracell_domain::CellConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail("configuration", e),
    };
    let relay = match paracell_examples::relay_from_lookup(&config, env).await {
        Ok(Some(relay)) => relay,
        Ok(None) => {
            return fail(
                "replay",
                "no destination configured (PARACELL_PEERS, PARACELL_EVENTBRIDGE_BUS, PARACELL_EVENTGRID_ENDPOINT)",
            );
        }
        Err(e) => return fail("relay", e),
    };
    let letters = match paracell_examples::dead_letters_from_lookup(env).await {
        Ok(letters) => letters,
        Err(e) => return fail("dead letters", e),
    };
    let listed = match letters.list(limit).await {
        Ok(listed) => listed,
        Err(e) => return fail("listing dead letters", e),
    };
    let (mut delivered, mut again) = (0, 0);
    for (id, letter) in listed {
        let report = relay
            .relay_only(&letter.destination, std::slice::from_ref(&letter.entry))
            .await;
        if report.delivered == 1 {
            delivered += 1;
            if let Err(e) = letters.remove(&id).await {
                tracing::error!(letter = id.as_str(), error = %e, "delivered, but the letter could not be removed");
            }
        } else {
            // Dead-lettered again (with the new reason), or failed: the old letter stays too.
            again += 1;
        }
    }
    println!("{delivered} delivered, {again} not delivered (see `dead-letters list`)");
    if again == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
