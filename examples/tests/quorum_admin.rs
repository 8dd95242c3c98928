//! The placement quorum through the binaries, on the three stand-ins (DynamoDB, Cosmos DB and the
//! GCS witness): `paracell-admin quorum import` moves a tenant from the one-table registry (and is
//! harmless the second time), a `local-cell` under `PARACELL_PLACEMENT_SOURCE=quorum` books through
//! its cell lease, `paracell-admin quorum lease` shows the lease it renewed, and `paracell-admin
//! watch` probes it and votes, with every tick's evidence on one JSON line. Run under
//! `scripts/dev-services.sh`; without the stand-ins it fails, it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_aws::outbound::dynamodb::DynamoConfig;
use paracell_aws::outbound::dynamodb::registry::DynamoRegistry;
use paracell_domain::placement::registry::{Placement, PlacementRegistry};
use paracell_domain::{CellId, TenantId};
use serde_json::Value;
use std::process::Command;

mod support;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run under scripts/dev-services.sh"))
}

/// What every command of this test is given: the one-table registry to import from, the quorum.
fn quorum_env(command: &mut Command, run: &str) {
    command
        .env("PARACELL_REGISTRY", format!("dynamodb:registry-{run}"))
        .env(
            "PARACELL_QUORUM",
            format!(
                "dynamodb:acceptor-{run},cosmos:acceptor-{run},gcs:{}",
                env("PARACELL_TEST_GCS_BUCKET")
            ),
        )
        .env("PARACELL_GCS_ENDPOINT", env("PARACELL_TEST_GCS_ENDPOINT"))
        .env("PARACELL_GCS_PREFIX", format!("{run}/"))
        .env("PARACELL_GCS_AUTH", "none")
        .env("PARACELL_STORE_PROVISION", "1");
}

fn admin(args: &[&str], run: &str) -> (bool, Vec<Value>) {
    admin_with(args, run, &[])
}

/// `admin` with `extra` variables set last.
fn admin_with(args: &[&str], run: &str, extra: &[(&str, &str)]) -> (bool, Vec<Value>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paracell-admin"));
    command
        .args(args)
        .env("PARACELL_ADMIN_CELLS", "cell-aws=memory,cell-azure=memory");
    quorum_env(&mut command, run);
    command.envs(extra.iter().copied());
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "{args:?}: not JSON ({e}): {l}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    (out.status.success(), lines)
}

#[test]
fn a_tenant_moves_to_the_quorum_and_a_cell_books_under_its_cell_lease() {
    let run = format!("qa-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The one-table registry holds coop-1 on cell-aws at epoch 1.
    let registry = rt.block_on(DynamoRegistry::connect(
        &DynamoConfig::new(format!("registry-{run}"))
            .with_endpoint(env("PARACELL_DYNAMODB_ENDPOINT")),
    ));
    rt.block_on(registry.create_table()).unwrap();
    let tenant = TenantId::parse("coop-1").unwrap();
    let placed = Placement::new(
        tenant.clone(),
        CellId::parse("cell-aws").unwrap(),
        1,
        vec![CellId::parse("cell-azure").unwrap()],
    );
    rt.block_on(registry.put(None, &placed)).unwrap();

    let (ok, lines) = admin(&["quorum", "import", "coop-1", "coop-9", "--json"], &run);
    assert!(ok, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "copied");
    assert_eq!(lines[0]["placement"]["epoch"], 1);
    assert_eq!(lines[0]["placement"]["primary"], "cell-aws");
    assert_eq!(lines[1]["outcome"], "not-registered");
    let (ok, lines) = admin(&["quorum", "import", "coop-1", "--json"], &run);
    assert!(ok);
    assert_eq!(
        lines[0]["outcome"], "already-there",
        "importing twice is harmless"
    );

    // A cell under its cell lease from the quorum.
    let port = support::free_port();
    let mut cell = Command::new(env!("CARGO_BIN_EXE_local-cell"));
    cell.env("PORT", port.to_string())
        .env("PARACELL_CELL_ID", "cell-aws")
        .env("PARACELL_PLACEMENT_SOURCE", "quorum")
        .env("PARACELL_LEASE_SECS", "6");
    quorum_env(&mut cell, &run);
    let _cell = support::start_and_wait_ready(cell, port);
    let reply = support::send(
        port,
        "POST",
        "/v1/transactions",
        &[
            ("content-type", "application/json"),
            ("x-tenant-id", "coop-1"),
            ("idempotency-key", "k-1"),
        ],
        br#"{"account_id":"ACC-1","type":"credit","amount":"10.00","currency":"EUR"}"#,
        false,
    );
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    let (ok, lines) = admin(&["quorum", "lease", "cell-aws", "--json"], &run);
    assert!(ok);
    assert_eq!(lines[0]["revoked"], false);
    assert!(lines[0]["seq"].as_u64().unwrap() >= 1, "{lines:?}");

    // One observer watches it: the probe answers, the vote is recorded, nothing is moved.
    let health = format!("http://127.0.0.1:{port}/health");
    let (ok, ticks) = admin(
        &[
            "watch",
            "cell-aws",
            "--observer",
            "azure",
            "--cell-domain",
            "aws",
            "--health",
            &health,
            "--standby",
            "cell-azure",
            "--tenants",
            "coop-1",
            "--every-ms",
            "50",
            "--ticks",
            "2",
        ],
        &run,
    );
    assert!(ok);
    assert_eq!(ticks.len(), 2);
    for tick in &ticks {
        assert_eq!(tick["event"], "failover-controller-tick");
        assert!(
            tick["time"]
                .as_str()
                .and_then(paracell_domain::Timestamp::parse_rfc3339)
                .is_some(),
            "{tick}"
        );
        assert_eq!(tick["probe_ok"], true, "{tick}");
        assert_eq!(tick["votes"]["azure"]["down"], false);
        assert!(
            tick["decision"].as_str().unwrap().starts_with("hold"),
            "{tick}"
        );
        assert!(tick["failovers"].as_array().unwrap().is_empty());
    }

    // On the quorum, a failover away from a cell whose lease is not revoked is refused: the cell
    // keeps booking while it renews, so it would make two primaries.
    let on_quorum = [
        ("PARACELL_REGISTRY", "quorum"),
        ("PARACELL_LEASE_SECS", "6"),
    ];
    let failover = [
        "failover",
        "coop-1",
        "--to",
        "cell-azure",
        "--allow-data-loss",
        "--json",
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_paracell-admin"));
    command
        .args(failover)
        .env("PARACELL_ADMIN_CELLS", "cell-aws=memory,cell-azure=memory");
    quorum_env(&mut command, &run);
    let out = command.envs(on_quorum).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("paracell-admin quorum revoke cell-aws"),
        "the refusal says what to do: {stderr}"
    );
    // A person's promoter: the idle cell does not renew, so after the promoter's wait its lease is
    // revoked, and the cell books nothing any more.
    let (ok, lines) = admin_with(
        &["quorum", "revoke", "cell-aws", "--json"],
        &run,
        &on_quorum,
    );
    assert!(ok, "{lines:?}");
    assert_eq!(lines[0]["revoked"], true, "{lines:?}");
    let refused = support::send(
        port,
        "POST",
        "/v1/transactions",
        &[
            ("content-type", "application/json"),
            ("x-tenant-id", "coop-1"),
            ("idempotency-key", "k-2"),
        ],
        br#"{"account_id":"ACC-1","type":"credit","amount":"10.00","currency":"EUR"}"#,
        false,
    );
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let (ok, _) = admin_with(
        &["quorum", "revoke", "cell-aws", "--json"],
        &run,
        &on_quorum,
    );
    assert!(!ok, "revoking twice is refused");
}
