//! The hostile suite, cell → peer boundary: what a peer (or someone holding one peer's secret, or a
//! captured delivery) can and cannot make a standby do. Every refusal is asserted together with
//! "nothing was written". `docs/security.md` lists each threat with the test that proves it.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use paracell_domain::http::{ApiRequest, ApiResponse};
use paracell_domain::memory::MemoryStore;
use paracell_domain::placement::lease::{Ownership, PlacementSource};
use paracell_domain::placement::registry::{
    MemoryRegistry, Placement, PlacementRegistry, RegistryError,
};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::batch::{self, Outcome};
use paracell_domain::replication::signature::{PeerSecret, SignatureHeaders, TOLERANCE_SECS};
use paracell_domain::testing::block_on;
use paracell_domain::{Cell, CellConfig, CellId, TenantId, TenantScope};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const C: &str = "whsec_Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0ND";

fn secret(cell: &str, text: &str) -> PeerSecret {
    PeerSecret::parse(CellId::parse(cell).unwrap(), text).unwrap()
}

/// A standby `cell-b` that shares a secret with `cell-a` and another with `cell-c`.
fn standby(store: Arc<MemoryStore>) -> Cell {
    let mut config = CellConfig::new("cell-b", TenantScope::All).unwrap();
    config.replication.secrets = vec![secret("cell-a", A), secret("cell-c", C)];
    Cell::new(config, deterministic_ports(store))
}

/// `cell-a`'s history: two credits of tenant coop-1.
fn primary_entries() -> Vec<SealedEntry> {
    let store = Arc::new(MemoryStore::new());
    let mut config = CellConfig::new("cell-a", TenantScope::All).unwrap();
    config.replication.secrets = vec![secret("cell-b", A)];
    let primary = Cell::new(config, deterministic_ports(store.clone()));
    for key in ["k1", "k2"] {
        let r = send(
            &primary,
            create("coop-1", key, &tx("ACC-1", "credit", "10", "EUR")),
        );
        assert_eq!(r.status, 201);
    }
    block_on(store.entries_after(&coop(), 0, 10)).unwrap()
}

fn coop() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn deliver(
    to: &Cell,
    signer: &PeerSecret,
    id: &str,
    at: i64,
    entries: &[SealedEntry],
) -> ApiResponse {
    let body = batch::render(entries);
    deliver_raw(
        to,
        SignatureHeaders::sign(signer, id, at, body.as_bytes())
            .lines()
            .to_vec(),
        &body,
    )
}

fn deliver_raw(to: &Cell, headers: Vec<(&str, String)>, body: &str) -> ApiResponse {
    let mut r = ApiRequest::new("POST", "/v1/replication/entries")
        .with_header("content-type", batch::BATCH_CONTENT_TYPE)
        .with_body(body.as_bytes().to_vec());
    for (n, v) in headers {
        r = r.with_header(n, v);
    }
    send(to, r)
}

fn outcomes(response: &ApiResponse) -> Vec<(Outcome, String)> {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    batch::parse_results(&response.body)
        .unwrap()
        .into_iter()
        .map(|r| (r.outcome, r.detail.unwrap_or_default()))
        .collect()
}

fn now(cell: &Cell) -> i64 {
    cell.ports().clock.now().unix_millis() / 1000
}

/// Defect: any peer holding a valid secret could deliver entries for any origin cell. `cell-c` has
/// a secret of its own, but the entries are `cell-a`'s: refused, nothing written.
#[test]
fn a_peer_cannot_deliver_another_cells_entries() {
    let store = Arc::new(MemoryStore::new());
    let b = standby(store.clone());
    let entries = primary_entries();
    let at = now(&b);
    let result = outcomes(&deliver(&b, &secret("cell-c", C), "m1", at, &entries));
    assert!(
        result.iter().all(|(o, _)| *o == Outcome::Refused),
        "{result:?}"
    );
    assert!(
        result[0].1.contains("delivered by peer cell-c"),
        "{result:?}"
    );
    assert_eq!(
        block_on(store.head(&coop())).unwrap(),
        None,
        "nothing written"
    );
    assert_eq!(block_on(store.entry(&coop(), 1)).unwrap(), None);
    // The same entries from their origin are applied.
    let result = outcomes(&deliver(&b, &secret("cell-a", A), "m2", at, &entries));
    assert!(
        result.iter().all(|(o, _)| *o == Outcome::Applied),
        "{result:?}"
    );
}

/// A cell whose head names `cell-a` as the primary at the epoch takes no entry of that epoch from
/// anyone else, even from a peer delivering its own entries (a cell that wrongly believes it is
/// primary: split brain). Nothing is written.
#[test]
fn entries_of_an_epoch_come_only_from_its_primary() {
    let store = Arc::new(MemoryStore::new());
    let b = standby(store.clone());
    let at = now(&b);
    let mut entries = primary_entries();
    let applied = outcomes(&deliver(&b, &secret("cell-a", A), "m1", at, &entries[..1]));
    assert_eq!(applied[0].0, Outcome::Applied);
    // cell-c committed "entry 2" of the same epoch on its own.
    let mut rogue = entries.remove(1).entry().clone();
    rogue.origin = CellId::parse("cell-c").unwrap();
    let rogue = SealedEntry::seal(rogue);
    let result = outcomes(&deliver(&b, &secret("cell-c", C), "m2", at, &[rogue]));
    assert_eq!(result[0].0, Outcome::Refused, "{result:?}");
    assert!(result[0].1.contains("primary at epoch"), "{result:?}");
    let head = block_on(store.head(&coop())).unwrap().unwrap();
    assert_eq!(head.position.seq, 1, "nothing written");
}

/// With a placement authority, a new epoch is taken only from the cell the authority names primary
/// at exactly that epoch.
#[test]
fn a_new_epoch_is_taken_only_from_the_primary_the_authority_names() {
    let registry = Arc::new(MemoryRegistry::new());
    let store = Arc::new(MemoryStore::new());
    let b = standby(store.clone()).with_ownership(Ownership {
        source: PlacementSource::Registry(registry.clone()),
        ttl: Duration::from_secs(30),
    });
    let at = now(&b);
    let entries = primary_entries();
    // The authority names cell-c: cell-a's epoch-1 entries are refused, nothing written.
    let placement = Placement::new(coop(), CellId::parse("cell-c").unwrap(), 1, vec![]);
    block_on(registry.put(None, &placement)).unwrap();
    let result = outcomes(&deliver(&b, &secret("cell-a", A), "m1", at, &entries));
    assert!(
        result.iter().all(|(o, _)| *o == Outcome::Refused),
        "{result:?}"
    );
    assert!(
        result[0].1.contains("placement authority names cell-c"),
        "{result:?}"
    );
    assert_eq!(block_on(store.head(&coop())).unwrap(), None);
    // Once it names cell-a at epoch 1, they apply.
    let fixed = placement.next(|p| p.primary = CellId::parse("cell-a").unwrap());
    block_on(registry.put(Some(1), &fixed)).unwrap();
    let result = outcomes(&deliver(&b, &secret("cell-a", A), "m2", at, &entries));
    assert!(
        result.iter().all(|(o, _)| *o == Outcome::Applied),
        "{result:?}"
    );
}

/// Defect: the replay guard was keyed on the raw `webhook-signature` header, so re-spelling it turned
/// a replay into an accepted delivery. Keyed on the message id, every spelling is a replay.
#[test]
fn a_replayed_delivery_is_refused_however_it_is_spelled() {
    let store = Arc::new(MemoryStore::new());
    let b = standby(store.clone());
    let at = now(&b);
    let entries = primary_entries();
    let body = batch::render(&entries);
    let a = secret("cell-a", A);
    let other = PeerSecret::parse(
        CellId::parse("cell-a").unwrap(),
        "whsec_T3RoZXJPdGhlck90aGVyT3RoZXJPdGhlcg==",
    )
    .unwrap();
    let sig = a.sign("m1", at, body.as_bytes());
    let extra = other.sign("m1", at, body.as_bytes());
    let headers = |signature: String| {
        vec![
            ("webhook-id", "m1".to_owned()),
            ("webhook-timestamp", at.to_string()),
            ("webhook-signature", signature),
        ]
    };
    assert_eq!(deliver_raw(&b, headers(sig.clone()), &body).status, 200);
    for spelling in [
        format!("{extra} {sig}"),
        format!("{sig} {extra}"),
        format!(" {sig}  "),
        format!("{sig},{extra}"),
    ] {
        let r = deliver_raw(&b, headers(spelling.clone()), &body);
        assert_eq!(
            (r.status, problem_slug(&r)),
            (409, "replication-replayed".to_owned()),
            "{spelling:?}"
        );
    }
}

/// After a restart the replay guard is empty: a delivery captured inside the tolerance window is
/// accepted once more, and that is safe — every entry is a `duplicate`, nothing is written. Past the
/// window it is refused as expired, restart or not.
#[test]
fn a_replay_after_a_restart_changes_nothing() {
    let store = Arc::new(MemoryStore::new());
    let entries = primary_entries();
    let first = standby(store.clone());
    let at = now(&first);
    let a = secret("cell-a", A);
    let body = batch::render(&entries);
    let captured = SignatureHeaders::sign(&a, "m1", at, body.as_bytes())
        .lines()
        .to_vec();
    let applied = outcomes(&deliver_raw(&first, captured.clone(), &body));
    assert!(applied.iter().all(|(o, _)| *o == Outcome::Applied));
    let before = block_on(store.balances(
        &coop(),
        &paracell_domain::AccountId::parse("ACC-1").unwrap(),
    ))
    .unwrap();
    // The process restarts: same store, new guard.
    let restarted = standby(store.clone());
    let again = outcomes(&deliver_raw(&restarted, captured.clone(), &body));
    assert!(
        again.iter().all(|(o, _)| *o == Outcome::Duplicate),
        "{again:?}"
    );
    let after = block_on(store.balances(
        &coop(),
        &paracell_domain::AccountId::parse("ACC-1").unwrap(),
    ))
    .unwrap();
    assert_eq!(before, after, "nothing written");
    // Past the window, the capture is refused outright.
    let late = standby(store.clone());
    let ts: i64 = captured[1].1.parse().unwrap();
    assert!(
        now(&late) - ts <= TOLERANCE_SECS,
        "the stepping clock is still inside the window"
    );
    let stale_body = body.clone();
    let stale = SignatureHeaders::sign(&a, "m9", ts - TOLERANCE_SECS - 1, stale_body.as_bytes());
    let r = deliver_raw(&late, stale.lines().to_vec(), &stale_body);
    assert_eq!(r.status, 401);
}

/// Placement writes at a stale epoch are refused by every registry (the one compare-and-set rule),
/// and leave the record as it was.
#[test]
fn a_stale_epoch_placement_write_is_refused() {
    let registry = MemoryRegistry::new();
    let p1 = Placement::new(coop(), CellId::parse("cell-a").unwrap(), 3, vec![]);
    block_on(registry.put(None, &p1)).unwrap();
    let stale = p1.next(|p| {
        p.epoch = 2;
        p.primary = CellId::parse("cell-c").unwrap();
    });
    assert!(matches!(
        block_on(registry.put(Some(1), &stale)),
        Err(RegistryError::EpochRegression {
            held: 3,
            attempted: 2
        })
    ));
    let lost_race = p1.next(|p| p.epoch = 4);
    assert!(matches!(
        block_on(registry.put(None, &lost_race)),
        Err(RegistryError::Conflict { .. })
    ));
    assert_eq!(block_on(registry.get(&coop())).unwrap(), Some(p1));
}

/// Secret rotation without downtime, step by step as the runbook in `docs/security.md` says, with a
/// real relay: every step delivers. Then the rotation done in the wrong order: the receiver refuses
/// the signature (`401`), which the relay treats as a configuration fault — nothing dead-lettered,
/// the entry stays pending and is delivered once the receiver has the secret.
#[test]
fn a_secret_is_rotated_without_downtime_and_a_wrong_order_loses_nothing() {
    use paracell_domain::memory::{MemoryDeadLetters, NoSleep};
    use paracell_domain::ports::UuidV7;
    use paracell_domain::replication::relay::{
        DeadLetters, PeerDestination, Relay, RelayPolicy, relay_pending,
    };
    use paracell_domain::testing::InProcessHttp;

    const NEW: &str = "whsec_bmV3LXNlY3JldC1hZnRlci10aGUtcm90YXRpb24tMDE=";
    // The primary cell-a (signing for cell-b) and the standby cell-b (verifying cell-a's).
    let p_store = Arc::new(MemoryStore::new());
    let primary = {
        let mut config = CellConfig::new("cell-a", TenantScope::All).unwrap();
        config.replication.secrets = vec![secret("cell-b", A)];
        Cell::new(config, deterministic_ports(p_store.clone()))
    };
    let s_store = Arc::new(MemoryStore::new());
    let standby_with = |secrets: &[&str]| {
        let mut config = CellConfig::new("cell-b", TenantScope::All).unwrap();
        config.replication.secrets = secrets.iter().map(|s| secret("cell-a", s)).collect();
        Cell::new(config, deterministic_ports(s_store.clone()))
    };
    let dead = Arc::new(MemoryDeadLetters::new());
    let relay_with = |standby: &Cell, secrets: &[&str]| {
        let http = InProcessHttp::default().with_cell("http://cell-b", standby.clone());
        let mut all = secrets.iter().map(|s| secret("cell-b", s));
        let peer = PeerDestination::new(
            "http://cell-b",
            all.next().unwrap(),
            Arc::new(http),
            primary.ports().clock.clone(),
            Arc::new(UuidV7),
        )
        .with_more_secrets(all);
        Relay::new(
            vec![Arc::new(peer)],
            dead.clone(),
            Arc::new(NoSleep),
            primary.ports().clock.clone(),
        )
        .with_policy(RelayPolicy {
            max_attempts: 2,
            ..RelayPolicy::default()
        })
    };
    let steps: [(&[&str], &[&str]); 5] = [
        (&[A], &[A]),           // before
        (&[A], &[A, NEW]),      // 1. the standby learns the new secret first...
        (&[A, NEW], &[A, NEW]), // ...then the primary: it signs with both
        (&[A, NEW], &[NEW]),    // 2. the old one goes, from either side first
        (&[NEW], &[NEW]),       // after
    ];
    for (i, (sender, receiver)) in steps.iter().enumerate() {
        let r = send(
            &primary,
            create(
                "coop-1",
                &format!("rot-{i}"),
                &tx("ACC-1", "credit", "1", "EUR"),
            ),
        );
        assert_eq!(r.status, 201);
        let report = block_on(relay_pending(
            p_store.as_ref(),
            &relay_with(&standby_with(receiver), sender),
            100,
        ))
        .unwrap();
        assert_eq!(
            (report.delivered, report.unauthorized, report.dead_lettered),
            (1, 0, 0),
            "step {i}: {sender:?} → {receiver:?}"
        );
    }
    // The wrong order: the primary moved on to a secret the standby does not have yet.
    const NEWER: &str = "whsec_bmV3ZXItc2VjcmV0LXRoZS1uZXh0LXJvdGF0aW9uLTI=";
    let r = send(
        &primary,
        create("coop-1", "rot-wrong", &tx("ACC-1", "credit", "1", "EUR")),
    );
    assert_eq!(r.status, 201);
    let report = block_on(relay_pending(
        p_store.as_ref(),
        &relay_with(&standby_with(&[NEW]), &[NEWER]),
        100,
    ))
    .unwrap();
    assert_eq!(
        (
            report.delivered,
            report.unauthorized,
            report.dead_lettered,
            report.failed.len()
        ),
        (0, 1, 0, 1),
        "refused for the signature: kept pending, alarmed, never dead-lettered"
    );
    assert!(block_on(dead.list(10)).unwrap().is_empty());
    let pending = block_on(p_store.pending_entries(None, 10)).unwrap().entries;
    assert_eq!(pending.len(), 1);
    // Fixed (the standby learns it): the next run delivers it.
    let report = block_on(relay_pending(
        p_store.as_ref(),
        &relay_with(&standby_with(&[NEW, NEWER]), &[NEWER]),
        100,
    ))
    .unwrap();
    assert_eq!((report.delivered, report.unauthorized), (1, 0));
    assert_eq!(
        block_on(s_store.head(&coop()))
            .unwrap()
            .unwrap()
            .position
            .seq,
        6
    );
}
