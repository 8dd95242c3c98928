//! Replication between two cells in process: what a standby holds after applying a primary's
//! entries, in any delivery order; what it answers; how deliveries are authenticated; how the relay
//! retries and dead-letters.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{MemoryDeadLetters, MemoryStore, NoSleep};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, TransactionStore, TransportError,
};
use paracell_domain::replication::batch::{self, Outcome};
use paracell_domain::replication::relay::{
    DeadLetter, DeadLetters, PeerDestination, Relay, RelayPolicy, relay_pending,
};
use paracell_domain::replication::signature::{PeerSecret, SignatureHeaders};
use paracell_domain::replication::{SealedEntry, apply};
use paracell_domain::testing::{InProcessHttp, block_on};
use paracell_domain::{Cell, CellConfig, CellId, TenantScope};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn secret(cell: &str) -> PeerSecret {
    PeerSecret::parse(CellId::parse(cell).unwrap(), SECRET).unwrap()
}

/// A deterministic cell `id` that accepts deliveries signed by `peer`.
fn cell(id: &str, peer: &str) -> (Cell, Arc<MemoryStore>) {
    let mut config = CellConfig::new(id, TenantScope::All).unwrap();
    config.replication.secrets = vec![secret(peer)];
    let store = Arc::new(MemoryStore::new());
    (Cell::new(config, deterministic_ports(store.clone())), store)
}

fn relay_to(standby: &Cell, dead: Arc<MemoryDeadLetters>, clock_from: &Cell) -> Relay {
    let http = InProcessHttp::default().with_cell("http://cell-b", standby.clone());
    paracell_domain::testing::test_relay(
        clock_from,
        http,
        "http://cell-b",
        secret("cell-b"),
        dead,
        5,
    )
}

/// A primary with a mixed history: credits, a debit, a refused debit, two tenants, two currencies.
fn workload(primary: &Cell) -> Vec<ApiRequest> {
    let steps = [
        ("coop-1", "k1", tx("ACC-1", "credit", "100", "EUR")),
        ("coop-1", "k2", tx("ACC-1", "debit", "30.5", "EUR")),
        ("coop-1", "k3", tx("ACC-1", "debit", "500", "EUR")),
        ("coop-2", "k1", tx("ACC-9", "credit", "7", "JPY")),
        ("coop-1", "k4", tx("ACC-2", "credit", "1.001", "BHD")),
    ];
    let mut gets = Vec::new();
    for (tenant, key, body) in steps {
        let r = send(primary, create(tenant, key, &body));
        assert!(matches!(r.status, 201 | 409), "{r:?}");
        if let Some(location) = r.header("location") {
            gets.push(get(location, tenant));
        }
    }
    gets.push(get("/v1/accounts/ACC-1/balances", "coop-1"));
    gets.push(get("/v1/accounts/ACC-2/balances", "coop-1"));
    gets.push(get("/v1/accounts/ACC-9/balances", "coop-2"));
    gets
}

/// The ledger part of a snapshot: what a client can observe, identical on primary and standby.
fn ledger(store: &MemoryStore) -> serde_json::Value {
    let s = store.snapshot();
    serde_json::json!({
        "transactions": s["transactions"],
        "balances": s["balances"],
        "idempotency": s["idempotency"],
        "positions": s["heads"].as_array().unwrap().iter()
            .map(|h| (h["tenant_id"].clone(), h["seq"].clone(), h["digest"].clone()))
            .map(|(t, s, d)| serde_json::json!([t, s, d])).collect::<Vec<_>>(),
    })
}

#[test]
fn a_relayed_standby_answers_every_read_byte_for_byte_and_refuses_writes() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    let (standby, standby_store) = cell("cell-b", "cell-a");
    let gets = workload(&primary);
    let dead = Arc::new(MemoryDeadLetters::new());
    let relay = relay_to(&standby, dead.clone(), &primary);
    let report = block_on(relay_pending(primary_store.as_ref(), &relay, 2)).unwrap();
    assert_eq!(report.relayed.len(), 5, "{report:?}");
    assert_eq!((report.dead_lettered, report.failed.len()), (0, 0));
    assert!(
        block_on(primary_store.pending_entries(None, 10))
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(ledger(&primary_store), ledger(&standby_store));
    for request in gets {
        let (a, b) = (send(&primary, request.clone()), send(&standby, request));
        assert_eq!(
            (a.status, &a.headers, &a.body),
            (b.status, &b.headers, &b.body)
        );
    }
    // A retry of a booked key and of the refused debit replays the primary's bytes on the standby.
    for key in ["k1", "k3"] {
        let body = if key == "k1" {
            tx("ACC-1", "credit", "100", "EUR")
        } else {
            tx("ACC-1", "debit", "500", "EUR")
        };
        let a = send(&primary, create("coop-1", key, &body));
        let b_store: &MemoryStore = &standby_store;
        let record = block_on(b_store.idempotency_record(
            &paracell_domain::TenantId::parse("coop-1").unwrap(),
            &paracell_domain::IdempotencyKey::parse(key).unwrap(),
        ))
        .unwrap()
        .unwrap();
        let stored = record.response;
        assert_eq!(stored.body, a.body, "the stored response travelled");
        assert_eq!(stored.status, a.status);
    }
    let refused = send(
        &standby,
        create("coop-1", "k9", &tx("ACC-1", "credit", "1", "EUR")),
    );
    assert_eq!(refused.status, 421);
    let problem = json(&refused);
    assert_eq!(problem["type"], "urn:paracell:problem:tenant-moved");
    assert_eq!(
        (problem["primary_cell"].as_str(), problem["epoch"].as_u64()),
        (Some("cell-a"), Some(1))
    );
    let record = block_on(standby_store.idempotency_record(
        &paracell_domain::TenantId::parse("coop-1").unwrap(),
        &paracell_domain::IdempotencyKey::parse("k9").unwrap(),
    ))
    .unwrap();
    assert_eq!(record, None, "a refused write claims no key");
}

/// Delivers `entries` one by one in `order` (indices, repeats allowed) straight to the standby's
/// apply use case.
fn deliver(standby: &Cell, entries: &[SealedEntry], order: &[usize]) -> Vec<Outcome> {
    order
        .iter()
        .flat_map(|i| {
            block_on(apply::receive(
                standby.config(),
                standby.ports().store.as_ref(),
                &entries[*i].entry().origin,
                None,
                vec![Ok(entries[*i].clone())],
            ))
            .unwrap()
            .into_iter()
            .take(1)
            .map(|r| r.outcome)
        })
        .collect()
}

fn entries_of(store: &MemoryStore) -> Vec<SealedEntry> {
    let mut all = Vec::new();
    for tenant in ["coop-1", "coop-2"] {
        let t = paracell_domain::TenantId::parse(tenant).unwrap();
        all.extend(block_on(store.entries_after(&t, 0, 100)).unwrap());
    }
    all
}

#[test]
fn any_order_and_any_duplication_converge_to_the_primary() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    workload(&primary);
    let entries = entries_of(&primary_store);
    assert_eq!(entries.len(), 5);
    // coop-1 has entries 0..=2 and 4 (seq 1..=4); coop-2 has entry 3.
    let orders: [&[usize]; 4] = [
        &[0, 1, 2, 3, 4],
        &[4, 2, 1, 0, 3, 3, 0],
        &[2, 2, 4, 3, 1, 1, 0, 4],
        &[3, 4, 1, 2, 0],
    ];
    for order in orders {
        let (standby, standby_store) = cell("cell-b", "cell-a");
        let outcomes = deliver(&standby, &entries, order);
        assert!(
            outcomes.iter().all(|o| o.delivered()),
            "{order:?}: {outcomes:?}"
        );
        assert_eq!(
            ledger(&primary_store),
            ledger(&standby_store),
            "order {order:?}"
        );
    }
    let (standby, _) = cell("cell-b", "cell-a");
    assert_eq!(
        deliver(&standby, &entries, &[1, 0, 0]),
        vec![Outcome::Held, Outcome::Applied, Outcome::Duplicate],
        "an early entry is held, the gap-filler applies both, a repeat is a duplicate"
    );
}

#[test]
fn diverged_and_stale_entries_are_refused_and_never_merged() {
    let (a, a_store) = cell("cell-a", "cell-b");
    workload(&a);
    // The same primary wrote a different history (its store was restored from an old backup, say).
    // (Another cell's entries at the same epoch are refused before the chain is even looked at:
    // `hostile.rs`.)
    let (other, other_store) = cell("cell-a", "cell-b");
    send(
        &other,
        create("coop-1", "x", &tx("ACC-1", "credit", "5", "EUR")),
    );
    let (standby, standby_store) = cell("cell-b", "cell-a");
    let theirs = entries_of(&other_store);
    assert_eq!(deliver(&standby, &theirs, &[0]), vec![Outcome::Applied]);
    let before = ledger(&standby_store);
    let ours = entries_of(&a_store);
    assert_eq!(
        deliver(&standby, &ours, &[0]),
        vec![Outcome::Diverged],
        "another entry already holds coop-1's position 1"
    );
    assert_eq!(
        deliver(&standby, &ours, &[1]),
        vec![Outcome::Diverged],
        "position 2 is free, but it follows a predecessor this cell does not have"
    );
    assert_eq!(ledger(&standby_store), before, "nothing merged");
    // Stale: a standby that follows epoch 2 from the start refuses an epoch-1 entry after it.
    let (fresh, fresh_store) = cell("cell-b", "cell-a");
    let mut promoted = ours[0].entry().clone();
    promoted.epoch = 2;
    let promoted = SealedEntry::seal(promoted);
    assert_eq!(deliver(&fresh, &[promoted], &[0]), vec![Outcome::Applied]);
    let before = ledger(&fresh_store);
    assert_eq!(deliver(&fresh, &ours, &[1]), vec![Outcome::Stale]);
    assert_eq!(
        ledger(&fresh_store),
        before,
        "a stale entry changes nothing"
    );
}

#[test]
fn deliveries_must_be_signed_fresh_and_new() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    workload(&primary);
    let (standby, _) = cell("cell-b", "cell-a");
    let entries = entries_of(&primary_store);
    let body = batch::render(&entries[..1]);
    let now = primary.ports().clock.now().unix_millis() / 1000;
    let post = |headers: Vec<(&str, String)>, body: &str| {
        let mut r = ApiRequest::new("POST", "/v1/replication/entries")
            .with_header("content-type", batch::BATCH_CONTENT_TYPE)
            .with_body(body.as_bytes().to_vec());
        for (n, v) in headers {
            r = r.with_header(n, v);
        }
        send(&standby, r)
    };
    let unsigned = post(vec![], &body);
    assert_eq!(
        (unsigned.status, problem_slug(&unsigned)),
        (401, "replication-unauthorized".into())
    );
    assert!(unsigned.header("www-authenticate").is_some());
    let wrong = PeerSecret::parse(
        CellId::parse("cell-a").unwrap(),
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .unwrap();
    let bad = post(
        SignatureHeaders::sign(&wrong, "m1", now, body.as_bytes())
            .lines()
            .to_vec(),
        &body,
    );
    assert_eq!(bad.status, 401);
    let old = post(
        SignatureHeaders::sign(&secret("cell-a"), "m1", now - 3_600, body.as_bytes())
            .lines()
            .to_vec(),
        &body,
    );
    assert_eq!(old.status, 401);
    assert!(json(&old)["detail"].as_str().unwrap().contains("clock"));
    let signed = SignatureHeaders::sign(&secret("cell-a"), "m1", now, body.as_bytes());
    let ok = post(signed.lines().to_vec(), &body);
    assert_eq!(ok.status, 200, "{:?}", String::from_utf8_lossy(&ok.body));
    let results = batch::parse_results(&ok.body).unwrap();
    assert_eq!(results[0].outcome, Outcome::Applied);
    let replayed = post(signed.lines().to_vec(), &body);
    assert_eq!(
        (replayed.status, problem_slug(&replayed)),
        (409, "replication-replayed".into())
    );
    let tampered = body.replace("cell-a", "cell-x");
    let altered = post(
        SignatureHeaders::sign(&secret("cell-a"), "m2", now, body.as_bytes())
            .lines()
            .to_vec(),
        &tampered,
    );
    assert_eq!(altered.status, 401, "the signature covers the body");
    let wrong_type = send(
        &standby,
        ApiRequest::new("POST", "/v1/replication/entries")
            .with_header("content-type", "application/json")
            .with_body(body.as_bytes().to_vec())
            .with_header("webhook-id", "m3")
            .with_header("webhook-timestamp", now.to_string())
            .with_header(
                "webhook-signature",
                secret("cell-a").sign("m3", now, body.as_bytes()),
            ),
    );
    assert_eq!(wrong_type.status, 415);
    let handshake = send(
        &standby,
        ApiRequest::new("OPTIONS", "/v1/replication/entries")
            .with_header("WebHook-Request-Origin", "eventgrid.azure.net"),
    );
    assert_eq!(handshake.status, 200);
    assert_eq!(
        handshake.header("webhook-allowed-origin"),
        Some("eventgrid.azure.net")
    );
}

/// An HTTP client that fails the first `failures` sends, then passes requests to `inner`.
struct Flaky {
    inner: InProcessHttp,
    failures: usize,
    status: Option<u16>,
    sent: AtomicUsize,
}

#[async_trait::async_trait]
impl HttpClient for Flaky {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return match self.status {
                Some(status) => Ok(OutboundResponse {
                    status,
                    headers: vec![("retry-after".into(), "1".into())],
                    body: b"{}".to_vec(),
                }),
                None => Err(TransportError::Connect("refused".into())),
            };
        }
        self.inner.send(request).await
    }
}

fn flaky_relay(
    primary: &Cell,
    standby: &Cell,
    failures: usize,
    status: Option<u16>,
    dead: Arc<MemoryDeadLetters>,
) -> (Relay, Arc<Flaky>) {
    let flaky = Arc::new(Flaky {
        inner: InProcessHttp::default().with_cell("http://cell-b", standby.clone()),
        failures,
        status,
        sent: AtomicUsize::new(0),
    });
    let peer = PeerDestination::new(
        "http://cell-b",
        secret("cell-b"),
        flaky.clone(),
        primary.ports().clock.clone(),
        primary.ports().ids.clone(),
    );
    let relay = Relay::new(
        vec![Arc::new(peer)],
        dead,
        Arc::new(NoSleep),
        primary.ports().clock.clone(),
    )
    .with_policy(RelayPolicy {
        max_attempts: 3,
        ..RelayPolicy::default()
    });
    (relay, flaky)
}

#[test]
fn the_relay_retries_then_dead_letters_the_full_entry_and_a_replay_delivers_it() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    workload(&primary);
    let (standby, standby_store) = cell("cell-b", "cell-a");
    let dead = Arc::new(MemoryDeadLetters::new());
    // Throttled twice, then accepted: delivered with two retries.
    let (relay, flaky) = flaky_relay(&primary, &standby, 2, Some(503), dead.clone());
    let report = block_on(relay_pending(primary_store.as_ref(), &relay, 100)).unwrap();
    assert_eq!(
        (report.delivered, report.retries, report.dead_lettered),
        (5, 2, 0)
    );
    assert_eq!(flaky.sent.load(Ordering::SeqCst), 3);
    assert_eq!(ledger(&primary_store), ledger(&standby_store));

    // Unreachable for longer than the policy allows: dead-lettered, marked relayed, nothing lost.
    send(
        &primary,
        create("coop-1", "k5", &tx("ACC-1", "credit", "1", "EUR")),
    );
    let (standby2, standby2_store) = cell("cell-b", "cell-a");
    let (relay, _) = flaky_relay(&primary, &standby2, 100, None, dead.clone());
    let report = block_on(relay_pending(primary_store.as_ref(), &relay, 100)).unwrap();
    assert_eq!(
        (report.delivered, report.dead_lettered, report.relayed.len()),
        (0, 1, 1)
    );
    let letters = block_on(dead.list(10)).unwrap();
    assert_eq!(letters.len(), 1);
    let (id, letter) = &letters[0];
    assert!(
        letter.reason.contains("gave up after 3 attempts"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.attempts, 3);
    assert_eq!(
        DeadLetter::parse(&letter.render()).unwrap(),
        *letter,
        "the letter holds the full entry"
    );
    // An operator replays it once the peer is back: the standby (which has everything before it)
    // applies it.
    let caught_up = entries_of(&primary_store);
    deliver(&standby2, &caught_up, &[0, 1, 2, 3, 5]);
    let (relay, _) = flaky_relay(&primary, &standby2, 0, None, dead.clone());
    let replayed = block_on(relay.relay(std::slice::from_ref(&letter.entry)));
    assert_eq!(replayed.delivered, 1);
    block_on(dead.remove(id)).unwrap();
    assert!(block_on(dead.list(10)).unwrap().is_empty());
    assert_eq!(ledger(&primary_store), ledger(&standby2_store));

    // A poison answer (a diverged entry) is dead-lettered at once, with the standby's reason.
    let (diverging, _) = cell("cell-b", "cell-a");
    let (other, other_store) = cell("cell-a", "cell-b");
    send(
        &other,
        create("coop-1", "zz", &tx("ACC-1", "credit", "9", "EUR")),
    );
    deliver(&diverging, &entries_of(&other_store), &[0]);
    let (relay, flaky) = flaky_relay(&primary, &diverging, 0, None, dead.clone());
    let first = entries_of(&primary_store)[0].clone();
    let report = block_on(relay.relay(&[first]));
    assert_eq!(
        (report.dead_lettered, flaky.sent.load(Ordering::SeqCst)),
        (1, 1),
        "no retries for poison"
    );
    let letters = block_on(dead.list(10)).unwrap();
    assert!(
        letters[0].1.reason.contains("diverged"),
        "{}",
        letters[0].1.reason
    );
}

/// A bus-like destination that refuses one entry `refusals` times per entry (a per-entry throttle,
/// as `PutEvents` reports in its answer), recording what each attempt carried.
struct PerEntryThrottle {
    refuse_seq: u64,
    refusals: usize,
    attempts: std::sync::Mutex<Vec<Vec<u64>>>,
}

#[async_trait::async_trait]
impl paracell_domain::replication::relay::Destination for PerEntryThrottle {
    fn name(&self) -> &str {
        "bus:test"
    }

    fn wants(&self, _entry: &SealedEntry) -> bool {
        true
    }

    async fn deliver(
        &self,
        entries: &[SealedEntry],
    ) -> Result<
        Vec<paracell_domain::replication::relay::Delivery>,
        paracell_domain::replication::relay::DeliveryError,
    > {
        use paracell_domain::replication::relay::Delivery;
        let mut attempts = self.attempts.lock().unwrap();
        attempts.push(entries.iter().map(|e| e.seq()).collect());
        let refused_so_far = attempts
            .iter()
            .filter(|a| a.contains(&self.refuse_seq))
            .count();
        Ok(entries
            .iter()
            .map(|e| {
                if e.seq() == self.refuse_seq && refused_so_far <= self.refusals {
                    Delivery::Retry("ThrottlingException".into())
                } else {
                    Delivery::Delivered
                }
            })
            .collect())
    }
}

#[test]
fn a_per_entry_retry_resends_only_that_entry_and_dead_letters_it_when_the_budget_runs_out() {
    let (primary, primary_store) = cell("cell-a", "cell-b");
    workload(&primary);
    let coop1: Vec<SealedEntry> = entries_of(&primary_store)
        .into_iter()
        .filter(|e| e.tenant().as_str() == "coop-1")
        .collect();
    assert_eq!(coop1.len(), 4);
    let run = |refusals: usize, dead: Arc<MemoryDeadLetters>| {
        let bus = Arc::new(PerEntryThrottle {
            refuse_seq: 2,
            refusals,
            attempts: std::sync::Mutex::new(Vec::new()),
        });
        let relay = Relay::new(
            vec![bus.clone()],
            dead,
            Arc::new(NoSleep),
            Arc::new(paracell_domain::ports::SystemClock),
        )
        .with_policy(RelayPolicy {
            max_attempts: 3,
            ..RelayPolicy::default()
        });
        let report = block_on(relay.relay(&coop1));
        let attempts = bus.attempts.lock().unwrap().clone();
        (report, attempts)
    };

    // Throttled once: the second attempt carries entry 2 alone; all four delivered.
    let dead = Arc::new(MemoryDeadLetters::new());
    let (report, attempts) = run(1, dead.clone());
    assert_eq!(attempts, vec![vec![1, 2, 3, 4], vec![2]]);
    assert_eq!(
        (report.delivered, report.retries, report.dead_lettered),
        (4, 1, 0)
    );
    assert!(block_on(dead.list(10)).unwrap().is_empty());

    // Throttled for good: entry 2 alone is dead-lettered with the bus's reason after 3 attempts.
    let dead = Arc::new(MemoryDeadLetters::new());
    let (report, attempts) = run(usize::MAX, dead.clone());
    assert_eq!(attempts, vec![vec![1, 2, 3, 4], vec![2], vec![2]]);
    assert_eq!(
        (report.delivered, report.dead_lettered, report.relayed.len()),
        (3, 1, 4)
    );
    let letters = block_on(dead.list(10)).unwrap();
    assert_eq!(letters[0].1.entry.seq(), 2);
    assert!(
        letters[0].1.reason.contains("ThrottlingException"),
        "{}",
        letters[0].1.reason
    );
}
