//! The EventBridge bus as the relay's destination, against a scripted `PutEvents` in process: how
//! the CloudEvent travels, calls of at most ten entries, a partial failure (200 with failed entries)
//! resending only the failed entries, poison codes dead-lettered with the code, an oversized event
//! never sent, and the CloudEvent recovered byte for byte from what a target receives.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_aws::outbound::eventbridge::{BusEntry, EntryResult, EventBridgeBus, PutEvents};
use paracell_domain::events::TransactionAccepted;
use paracell_domain::http::ApiRequest;
use paracell_domain::memory::{self, MemoryDeadLetters, NoSleep};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::relay::{DeadLetters, DeliveryError, Relay, RelayPolicy};
use paracell_domain::testing::block_on;
use paracell_domain::{CellConfig, TenantId, TenantScope};
use std::sync::{Arc, Mutex};

type Script = dyn Fn(usize, &BusEntry) -> EntryResult + Send + Sync;

/// A bus whose answer per entry a closure decides (given the call number); it records every call.
struct Bus {
    script: Box<Script>,
    calls: Mutex<Vec<Vec<BusEntry>>>,
}

impl Bus {
    fn new(script: impl Fn(usize, &BusEntry) -> EntryResult + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            script: Box::new(script),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<Vec<BusEntry>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl PutEvents for Bus {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
        assert!(entries.len() <= 10, "PutEvents takes at most 10 entries");
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(entries.to_vec());
            calls.len()
        };
        Ok(entries.iter().map(|e| (self.script)(n, e)).collect())
    }
}

fn ok() -> EntryResult {
    EntryResult::Accepted("eb-id".into())
}

fn failed(code: &str) -> EntryResult {
    EntryResult::Failed {
        code: code.into(),
        message: format!("{code} (scripted)"),
    }
}

/// `n` accepted transactions of tenant coop-1 (of 1, 10, 100… EUR), then a refused debit.
fn entries(n: usize) -> Vec<SealedEntry> {
    let (cell, store) = memory::deterministic(CellConfig::new("cell-a", TenantScope::All).unwrap());
    let post = |key: String, amount: String, kind: &str| {
        let body = format!(
            r#"{{"account_id":"ACC-1","type":"{kind}","amount":"{amount}","currency":"EUR"}}"#
        );
        let request = ApiRequest::new("POST", "/v1/transactions")
            .with_header("Content-Type", "application/json")
            .with_header("X-Tenant-ID", "coop-1")
            .with_header("Idempotency-Key", &key)
            .with_body(body.into_bytes());
        block_on(cell.handle(request)).status
    };
    for i in 0..n {
        let amount = format!("{}.00", 10_u128.pow(u32::try_from(i).unwrap()));
        assert_eq!(post(format!("k-{i}"), amount, "credit"), 201);
    }
    // More than the sum of the credits: refused.
    let too_much = format!(
        "{}.00",
        (0..n)
            .map(|i| 10_u128.pow(u32::try_from(i).unwrap()))
            .sum::<u128>()
            + 1
    );
    assert_eq!(post("k-x".into(), too_much, "debit"), 409);
    let tenant = TenantId::parse("coop-1").unwrap();
    block_on(store.entries_after(&tenant, 0, 1000)).unwrap()
}

fn relay(bus: EventBridgeBus, dead: Arc<MemoryDeadLetters>) -> Relay {
    Relay::new(
        vec![Arc::new(bus)],
        dead,
        Arc::new(NoSleep),
        Arc::new(paracell_domain::ports::SystemClock),
    )
    .with_policy(RelayPolicy {
        max_attempts: 3,
        ..RelayPolicy::default()
    })
}

#[test]
fn each_event_travels_as_source_detail_type_and_detail_in_calls_of_ten() {
    let entries = entries(12);
    let bus = Bus::new(|_, _| ok());
    let dead = Arc::new(MemoryDeadLetters::new());
    let report = block_on(relay(EventBridgeBus::new("cells", bus.clone()), dead).relay(&entries));
    assert_eq!(
        (report.delivered, report.relayed.len()),
        (12, 13),
        "twelve events; the refused debit's entry is done without one"
    );
    let calls = bus.calls();
    assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 2]);
    let sent: Vec<&BusEntry> = calls.iter().flatten().collect();
    for (entry, event) in sent.iter().zip(entries.iter().filter_map(|e| e.event())) {
        assert_eq!(
            entry.detail, event,
            "Detail is the CloudEvent, byte for byte"
        );
        assert_eq!(entry.source, "/cells/cell-a");
        assert_eq!(entry.detail_type, "dev.paracell.transaction.accepted.v1");
        assert_eq!(entry.bus, "cells");
        // What a rule's target receives: the envelope with `detail` as an object (re-serialised).
        let envelope = serde_json::json!({"version": "0", "id": "x", "detail-type": entry.detail_type,
            "source": entry.source, "account": "000000000000", "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1", "resources": [],
            "detail": serde_json::from_str::<serde_json::Value>(&entry.detail).unwrap()});
        let detail = envelope["detail"].to_string();
        let event = TransactionAccepted::parse(&detail).unwrap();
        assert_eq!(event.document(), entry.detail, "exact bytes recovered");
    }
}

#[test]
fn a_partial_failure_resends_only_the_failed_entries_and_poison_is_dead_lettered_with_its_code() {
    let entries = entries(4);
    let events: Vec<String> = entries
        .iter()
        .filter_map(|e| e.event().map(|e| e.into_owned()))
        .collect();
    let (second, fourth) = (events[1].clone(), events[3].clone());
    // First call: the second entry is throttled, the fourth is malformed; later calls succeed.
    let bus = Bus::new(move |call, e| {
        if call == 1 && e.detail == second {
            failed("ThrottlingException")
        } else if e.detail == fourth {
            failed("MalformedDetail")
        } else {
            ok()
        }
    });
    let dead = Arc::new(MemoryDeadLetters::new());
    let report =
        block_on(relay(EventBridgeBus::new("cells", bus.clone()), dead.clone()).relay(&entries));
    assert_eq!(
        (report.delivered, report.dead_lettered, report.retries),
        (3, 1, 1)
    );
    let calls = bus.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 4);
    assert_eq!(calls[1].len(), 1, "only the throttled entry is sent again");
    assert_eq!(calls[1][0].detail, events[1]);
    let letters = block_on(dead.list(10)).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].1.entry.event().as_deref(),
        Some(events[3].as_str())
    );
    assert!(
        letters[0].1.reason.contains("MalformedDetail"),
        "{}",
        letters[0].1.reason
    );
}

#[test]
fn an_oversized_event_is_never_sent_and_a_refused_call_is_dead_lettered() {
    let entries = entries(3);
    let sizes: Vec<usize> = entries
        .iter()
        .filter_map(|e| e.event())
        .map(|e| BusEntry::for_event(&e, "cells").unwrap().size())
        .collect();
    let largest = *sizes.iter().max().unwrap();
    let bus = Bus::new(|_, _| ok());
    let dead = Arc::new(MemoryDeadLetters::new());
    let limited = EventBridgeBus::new("cells", bus.clone()).with_max_bytes(largest - 1);
    let report = block_on(relay(limited, dead.clone()).relay(&entries));
    assert_eq!((report.delivered, report.dead_lettered), (2, 1));
    assert!(bus.calls().concat().iter().all(|e| e.size() < largest));
    let letters = block_on(dead.list(10)).unwrap();
    assert!(
        letters[0].1.reason.contains("over EventBridge's limit"),
        "{}",
        letters[0].1.reason
    );

    // A call refused whole (access denied) is poison for every entry in it, with the reason.
    struct Denied;
    #[async_trait::async_trait]
    impl PutEvents for Denied {
        async fn put_events(&self, _: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
            Err(DeliveryError::Rejected(
                "AccessDeniedException: not allowed".into(),
            ))
        }
    }
    let dead = Arc::new(MemoryDeadLetters::new());
    let report = block_on(
        relay(EventBridgeBus::new("cells", Arc::new(Denied)), dead.clone()).relay(&entries),
    );
    assert_eq!((report.delivered, report.dead_lettered), (0, 3));
    assert!(
        block_on(dead.list(10)).unwrap()[0]
            .1
            .reason
            .contains("AccessDenied")
    );
}
