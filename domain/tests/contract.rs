//! The HTTP contract, rule by rule, through `Cell::handle`.
#![allow(clippy::unwrap_used)]

mod support;

use paracell_domain::http::ApiRequest;
use paracell_domain::idempotency::IdempotencyKey;
use paracell_domain::ports::TransactionStore;
use paracell_domain::testing::block_on;
use paracell_domain::{TenantId, TransactionId};
use support::*;

#[test]
fn health_needs_no_tenant_and_names_the_cell() {
    let (cell, _) = cell();
    let r = send(&cell, ApiRequest::new("GET", "/health"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, br#"{"status":"ok","cell":"cell-a"}"#.as_slice())
    );
    let head = send(&cell, ApiRequest::new("HEAD", "/health"));
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.headers, r.headers);
}

#[test]
fn options_and_wrong_methods_name_the_allowed_ones() {
    let (cell, _) = cell();
    let o = send(&cell, ApiRequest::new("OPTIONS", "/v1/transactions"));
    assert_eq!((o.status, o.header("allow")), (204, Some("POST, OPTIONS")));
    assert!(o.body.is_empty());
    let m = send(
        &cell,
        ApiRequest::new(
            "PUT",
            "/v1/transactions/01900000-0000-7000-8000-000000000001",
        )
        .with_header("X-Tenant-ID", "coop-1"),
    );
    assert_eq!(
        (m.status, m.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
    assert_eq!(problem_slug(&m), "method-not-allowed");
    let weird = send(&cell, ApiRequest::new("GET\u{0}<script>", "/health"));
    assert_eq!(weird.status, 405);
    assert!(!json(&weird)["detail"].as_str().unwrap().contains("script"));
}

#[test]
fn unknown_paths_are_404_not_found() {
    let (cell, _) = cell();
    for path in [
        "/",
        "/v2/transactions",
        "/v1/transactions/",
        "/health/",
        "/v1/accounts/A/balances/",
    ] {
        let r = send(&cell, get(path, "coop-1"));
        assert_eq!(
            (r.status, problem_slug(&r)),
            (404, "not-found".into()),
            "{path}"
        );
    }
}

#[test]
fn body_limit_is_inclusive() {
    let store = std::sync::Arc::new(paracell_domain::memory::MemoryStore::new());
    let mut config = config(&["coop-1"]);
    config.limits.max_body_bytes = 100;
    let cell = paracell_domain::Cell::new(config, deterministic_ports(store));
    let at_limit = format!("{:<100}", tx("A", "credit", "1", "EUR"));
    assert_eq!(send(&cell, create("coop-1", "k", &at_limit)).status, 201);
    let over = format!("{:<101}", tx("A", "credit", "1", "EUR"));
    let r = send(&cell, create("coop-1", "k2", &over));
    assert_eq!(
        (r.status, problem_slug(&r)),
        (413, "payload-too-large".into())
    );
    // The limit applies before anything else is looked at, on every route.
    let r = send(
        &cell,
        ApiRequest::new("GET", "/health").with_body(vec![b'x'; 101]),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn tenant_rules() {
    let (cell, _) = cell();
    let body = tx("A", "credit", "1", "EUR");
    let missing = send(&cell, ApiRequest::new("GET", "/v1/accounts/A/balances"));
    assert_eq!(problem_slug(&missing), "missing-tenant");
    let empty = send(&cell, get("/v1/accounts/A/balances", " "));
    assert_eq!(problem_slug(&empty), "missing-tenant");
    for bad in ["-x", "a b", "ü", &"x".repeat(65)] {
        let r = send(&cell, create(bad, "k", &body));
        assert_eq!(
            (r.status, problem_slug(&r)),
            (400, "invalid-tenant".into()),
            "{bad}"
        );
    }
    let repeated = send(
        &cell,
        get("/v1/accounts/A/balances", "coop-1").with_header("x-tenant-id", "coop-1"),
    );
    assert_eq!(problem_slug(&repeated), "invalid-tenant");
    let elsewhere = send(&cell, create("coop-9", "k", &body));
    assert_eq!(
        (elsewhere.status, problem_slug(&elsewhere)),
        (421, "tenant-not-in-cell".into())
    );
    assert_eq!(json(&elsewhere)["cell_id"], "cell-a");
    assert!(
        !String::from_utf8_lossy(&elsewhere.body).contains("coop-1"),
        "never reveals other tenants"
    );
}

#[test]
fn an_authenticated_tenant_wins_and_a_conflicting_header_is_refused() {
    let (cell, _) = cell();
    let body = tx("A", "credit", "1", "EUR");
    let only_claim = create("coop-1", "k", &body);
    let only_claim = ApiRequest {
        headers: only_claim
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("x-tenant-id"))
            .collect(),
        ..only_claim
    }
    .with_authenticated_tenant("coop-2");
    let r = send(&cell, only_claim);
    assert_eq!(
        (r.status, json(&r)["tenant_id"].as_str()),
        (201, Some("coop-2"))
    );
    let same = send(
        &cell,
        create("coop-2", "k", &body).with_authenticated_tenant("coop-2"),
    );
    assert_eq!(same.header("idempotent-replayed"), Some("true"));
    let conflict = send(
        &cell,
        create("coop-1", "k3", &body).with_authenticated_tenant("coop-2"),
    );
    assert_eq!(
        (conflict.status, problem_slug(&conflict)),
        (400, "invalid-tenant".into())
    );
}

#[test]
fn idempotency_key_rules() {
    let (cell, _) = cell();
    let body = tx("A", "credit", "1", "EUR");
    let no_key = ApiRequest::new("POST", "/v1/transactions")
        .with_header("Content-Type", "application/json")
        .with_header("X-Tenant-ID", "coop-1")
        .with_body(body.clone());
    assert_eq!(
        problem_slug(&send(&cell, no_key)),
        "missing-idempotency-key"
    );
    for bad in ["a b", "k,k", &"k".repeat(256), "ключ"] {
        let r = send(&cell, create("coop-1", bad, &body));
        assert_eq!(
            (r.status, problem_slug(&r)),
            (400, "invalid-idempotency-key".into()),
            "{bad}"
        );
    }
    let twice = send(
        &cell,
        create("coop-1", "k", &body).with_header("IDEMPOTENCY-KEY", "k"),
    );
    assert_eq!(problem_slug(&twice), "invalid-idempotency-key");
    assert_eq!(
        send(&cell, create("coop-1", &"k".repeat(255), &body)).status,
        201
    );
}

#[test]
fn content_type_rules() {
    let (cell, _) = cell();
    let body = tx("A", "credit", "1", "EUR");
    let with_ct = |ct: Option<&str>| {
        let mut r = ApiRequest::new("POST", "/v1/transactions")
            .with_header("X-Tenant-ID", "coop-1")
            .with_header(
                "Idempotency-Key",
                format!("k-{}", ct.unwrap_or("none").len()),
            )
            .with_body(body.clone());
        if let Some(ct) = ct {
            r = r.with_header("content-TYPE", ct);
        }
        send(&cell, r)
    };
    for bad in [
        None,
        Some("text/plain"),
        Some("application/json; charset=iso-8859-1"),
        Some("application/merge-patch+json"),
    ] {
        let r = with_ct(bad);
        assert_eq!(
            (r.status, problem_slug(&r)),
            (415, "unsupported-media-type".into()),
            "{bad:?}"
        );
    }
    assert_eq!(with_ct(Some("Application/Json; Charset=UTF-8")).status, 201);
}

#[test]
fn malformed_and_invalid_bodies() {
    let (cell, _) = cell();
    for body in ["", "{", "[]", "null", "\u{feff}{}"] {
        let r = send(&cell, create("coop-1", "k", body));
        assert_eq!(
            (r.status, problem_slug(&r)),
            (400, "malformed-request".into()),
            "{body:?}"
        );
    }
    let r = send(
        &cell,
        create(
            "coop-1",
            "k",
            r#"{"account_id":"A","type":"credit","amount":1.5,"currency":"XAU","refrence":"x"}"#,
        ),
    );
    assert_eq!(
        (r.status, problem_slug(&r)),
        (422, "validation-failed".into())
    );
    let errors = json(&r)["errors"].as_array().unwrap().clone();
    let pointers: Vec<_> = errors
        .iter()
        .map(|e| (e["pointer"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pointers,
        vec![
            ("/amount", "amount_not_string"),
            ("/currency", "unsupported_currency"),
            ("/refrence", "unknown_field")
        ]
    );
    // Validation failures are not stored: the client fixes the body and retries with the same key.
    assert_eq!(
        send(
            &cell,
            create("coop-1", "k", &tx("A", "credit", "1.5", "EUR"))
        )
        .status,
        201
    );
}

#[test]
fn create_renders_the_resource_and_writes_the_event() {
    let (cell, store) = cell();
    let body = r#"{"account_id":"ACC-1","type":"credit","amount":"125.5","currency":"EUR","reference":"June rent","metadata":{"unit":"4B"}}"#;
    let r = send(&cell, create("coop-1", "k-1", body));
    assert_eq!(r.status, 201);
    let v = json(&r);
    let id = v["transaction_id"].as_str().unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/transactions/{id}").as_str())
    );
    assert_eq!(
        TransactionId::parse(id)
            .unwrap()
            .as_uuid()
            .get_version_num(),
        7
    );
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        format!(
            r#"{{"transaction_id":"{id}","tenant_id":"coop-1","account_id":"ACC-1","type":"credit","amount":"125.50","currency":"EUR","reference":"June rent","metadata":{{"unit":"4B"}},"status":"accepted","balance_after":"125.50","created_at":"2026-01-01T00:00:00.000Z","cell_id":"cell-a"}}"#
        )
    );
    let page = block_on(store.pending_entries(None, 10)).unwrap();
    assert_eq!(page.entries.len(), 1);
    let paracell_domain::replication::Effect::Accepted { event, .. } =
        &page.entries[0].entry().effect
    else {
        panic!("an accepted entry")
    };
    let event: serde_json::Value = serde_json::from_str(event).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "/cells/cell-a");
    assert_eq!(event["type"], "dev.paracell.transaction.accepted.v1");
    assert_eq!(event["subject"], "tenants/coop-1/accounts/ACC-1");
    assert_eq!(event["partitionkey"], "coop-1");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(event["data"], v);
    assert_ne!(event["id"], v["transaction_id"]);

    let fetched = send(&cell, get(&format!("/v1/transactions/{id}"), "coop-1"));
    assert_eq!((fetched.status, &fetched.body), (200, &r.body));
    let upper = send(
        &cell,
        get(&format!("/v1/transactions/{}", id.to_uppercase()), "coop-1"),
    );
    assert_eq!(upper.status, 200);
    let other_tenant = send(&cell, get(&format!("/v1/transactions/{id}"), "coop-2"));
    assert_eq!(
        (other_tenant.status, problem_slug(&other_tenant)),
        (404, "transaction-not-found".into())
    );
    let junk = send(&cell, get("/v1/transactions/not-a-uuid", "coop-1"));
    assert_eq!(problem_slug(&junk), "not-found");
}

#[test]
fn replays_are_byte_identical_and_reuse_is_refused() {
    let (cell, store) = cell();
    let first = send(
        &cell,
        create("coop-1", "k", &tx("A", "credit", "10", "EUR")),
    );
    // Same command spelled differently is the same payload.
    let again = send(
        &cell,
        create(
            "coop-1",
            "k",
            r#"{ "currency":"EUR","amount":"10.00","type":"credit","account_id":"A" }"#,
        ),
    );
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotent-replayed"), None);
    let reused = send(
        &cell,
        create("coop-1", "k", &tx("A", "credit", "11", "EUR")),
    );
    assert_eq!(
        (reused.status, problem_slug(&reused)),
        (422, "idempotency-key-reused".into())
    );
    // Keys are per tenant.
    assert_eq!(
        send(
            &cell,
            create("coop-2", "k", &tx("A", "credit", "11", "EUR"))
        )
        .status,
        201
    );
    assert_eq!(
        block_on(store.pending_entries(None, 10))
            .unwrap()
            .entries
            .len(),
        2
    );
}

#[test]
fn a_refused_debit_is_an_outcome_that_replays() {
    let (cell, _) = cell();
    send(
        &cell,
        create("coop-1", "c1", &tx("A", "credit", "5", "EUR")),
    );
    let refused = send(
        &cell,
        create("coop-1", "d1", &tx("A", "debit", "5.01", "EUR")),
    );
    assert_eq!(
        (refused.status, problem_slug(&refused)),
        (409, "insufficient-funds".into())
    );
    send(
        &cell,
        create("coop-1", "c2", &tx("A", "credit", "100", "EUR")),
    );
    let replay = send(
        &cell,
        create("coop-1", "d1", &tx("A", "debit", "5.01", "EUR")),
    );
    assert_eq!((replay.status, &replay.body), (409, &refused.body));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    // Other currencies of the same account are separate balances.
    let usd = send(&cell, create("coop-1", "d2", &tx("A", "debit", "1", "USD")));
    assert_eq!(usd.status, 409);
    let exact = send(
        &cell,
        create("coop-1", "d3", &tx("A", "debit", "105", "EUR")),
    );
    assert_eq!(
        (exact.status, json(&exact)["balance_after"].as_str()),
        (201, Some("0.00"))
    );
}

#[test]
fn balances_are_sorted_by_currency_and_scoped_to_the_tenant() {
    let (cell, _) = cell();
    for (key, amount, cur) in [
        ("1", "5", "USD"),
        ("2", "7", "JPY"),
        ("3", "1.5", "EUR"),
        ("4", "0.125", "BHD"),
    ] {
        assert_eq!(
            send(
                &cell,
                create("coop-1", key, &tx("ACC:9", "credit", amount, cur))
            )
            .status,
            201
        );
    }
    let r = send(&cell, get("/v1/accounts/ACC%3A9/balances", "coop-1"));
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"account_id":"ACC:9","balances":[{"currency":"BHD","available":"0.125"},{"currency":"EUR","available":"1.50"},{"currency":"JPY","available":"7"},{"currency":"USD","available":"5.00"}]}"#
    );
    let other = send(&cell, get("/v1/accounts/ACC:9/balances", "coop-2"));
    assert_eq!(
        (other.status, problem_slug(&other)),
        (404, "account-not-found".into())
    );
    let invalid = send(&cell, get("/v1/accounts/a%20b/balances", "coop-1"));
    assert_eq!(problem_slug(&invalid), "not-found");
}

#[test]
fn store_outages_are_503_with_retry_after_and_free_the_key() {
    use paracell_domain::ports::StoreError;
    use paracell_domain::testing::faults::{FaultyStore, Operation};
    use std::sync::atomic::{AtomicBool, Ordering};
    let down = std::sync::Arc::new(AtomicBool::new(true));
    let switch = down.clone();
    let store = std::sync::Arc::new(FaultyStore::new(
        std::sync::Arc::new(paracell_domain::memory::MemoryStore::new()),
        move |op| match op {
            Operation::Commit if switch.load(Ordering::SeqCst) => Err(StoreError::Unavailable {
                retry_after_secs: 2,
                detail: "throttled".into(),
            }),
            Operation::Transaction => Err(StoreError::Failed("secret connection string".into())),
            _ => Ok(()),
        },
    ));
    let cell = cell_with(store.clone());
    let r = send(&cell, create("coop-1", "k", &tx("A", "credit", "1", "EUR")));
    assert_eq!(
        (r.status, problem_slug(&r), r.header("retry-after")),
        (503, "store-unavailable".into(), Some("2"))
    );
    down.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&cell, create("coop-1", "k", &tx("A", "credit", "1", "EUR"))).status,
        201,
        "the key was released"
    );
    let internal = send(
        &cell,
        get(
            "/v1/transactions/01900000-0000-7000-8000-000000000001",
            "coop-1",
        ),
    );
    assert_eq!(
        (internal.status, problem_slug(&internal)),
        (500, "internal".into())
    );
    assert!(!String::from_utf8_lossy(&internal.body).contains("secret"));
}

#[test]
fn a_hundred_racing_duplicates_create_exactly_one_transaction() {
    let (cell, store) = cell();
    let body = tx("A", "credit", "1", "EUR");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| s.spawn(|| send(&cell, create("coop-1", "same-key", &body)).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let snapshot = store.snapshot();
    assert_eq!(snapshot["transactions"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["outbox"].as_array().unwrap().len(), 1);
    assert_eq!(snapshot["balances"][0]["available"], "1.00");
}

#[test]
fn fifty_racing_debits_never_overdraw() {
    let (cell, store) = cell();
    send(
        &cell,
        create("coop-1", "fund", &tx("A", "credit", "20", "EUR")),
    );
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let cell = &cell;
                s.spawn(move || {
                    send(
                        cell,
                        create("coop-1", &format!("d{i}"), &tx("A", "debit", "1", "EUR")),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 30);
    assert_eq!(store.snapshot()["balances"][0]["available"], "0.00");
}

/// A create that lost a race waits before reading again, when the host gave it a way to wait: a
/// random pause of at most 1 ms before the second attempt, and the second attempt books.
#[test]
fn a_create_that_lost_a_race_pauses_before_reading_again() {
    use paracell_domain::memory::MemoryStore;
    use paracell_domain::ports::{CreateView, Sleep, StoreError};
    use paracell_domain::testing::faults::{Faults, FaultyStore, Operation};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The first view a create reads is stale: the balance before the funding credit.
    struct StaleOnce(AtomicBool);
    impl Faults for StaleOnce {
        fn before(&self, _: Operation) -> Result<(), StoreError> {
            Ok(())
        }
        fn view(&self, _: &TenantId, _: &IdempotencyKey, view: CreateView) -> CreateView {
            if self.0.swap(false, Ordering::SeqCst) {
                CreateView {
                    balance: None,
                    ..view
                }
            } else {
                view
            }
        }
    }
    #[derive(Default)]
    struct Recorded(Mutex<Vec<Duration>>);
    #[async_trait::async_trait]
    impl Sleep for Recorded {
        async fn sleep(&self, duration: Duration) {
            self.0.lock().unwrap().push(duration);
        }
    }

    let memory = Arc::new(MemoryStore::new());
    let faults = Arc::new(FaultyStore::new(memory, StaleOnce(AtomicBool::new(false))));
    let pauses = Arc::new(Recorded::default());
    let cell = cell_with(faults.clone()).with_retry_pause(pauses.clone());
    let funded = send(
        &cell,
        create("coop-1", "fund", &tx("A", "credit", "10", "EUR")),
    );
    assert_eq!(funded.status, 201);
    assert!(pauses.0.lock().unwrap().is_empty(), "no race, no pause");
    faults.faults().0.store(true, Ordering::SeqCst);
    let second = send(&cell, create("coop-1", "k", &tx("A", "credit", "5", "EUR")));
    assert_eq!(
        (second.status, json(&second)["balance_after"].as_str()),
        (201, Some("15.00")),
        "booked on the second attempt, on the balance read again"
    );
    let recorded = pauses.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1, "one pause: {recorded:?}");
    assert!(recorded[0] <= Duration::from_millis(1), "{recorded:?}");
}
