//! Generative replication: random workloads on a primary behind a random envelope, delivered to a
//! standby behind another random envelope with random duplication, reordering and batching. The
//! standby's final state equals the primary's every time, and every `both` read answers alike.
//! The number of sequences comes from `PROPTEST_CASES` (CI: 2000).
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_conformance::case::{
    Case, CellSpec, EntrySelection, ReplicateSpec, RequestSpec, Step, Target,
};
use paracell_conformance::{Envelope, pairs::run_one_pair};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Write {
    tenant: &'static str,
    account: &'static str,
    debit: bool,
    cents: u32,
    key: u8,
}

fn write() -> impl Strategy<Value = Write> {
    (
        prop_oneof![Just("coop-1"), Just("coop-2")],
        prop_oneof![Just("ACC-1"), Just("ACC-2")],
        any::<bool>(),
        1u32..5_000,
        0u8..12,
    )
        .prop_map(|(tenant, account, debit, cents, key)| Write {
            tenant,
            account,
            debit,
            cents,
            key,
        })
}

fn request(w: &Write) -> RequestSpec {
    let body = format!(
        r#"{{"account_id":"{}","type":"{}","amount":"{}.{:02}","currency":"EUR"}}"#,
        w.account,
        if w.debit { "debit" } else { "credit" },
        w.cents / 100,
        w.cents % 100
    );
    RequestSpec {
        method: "POST".into(),
        path: "/v1/transactions".into(),
        query: String::new(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Tenant-ID".into(), w.tenant.into()),
            ("Idempotency-Key".into(), format!("k-{}", w.key)),
        ],
        body: Some(body),
        body_json: None,
        body_base64: None,
        pad_to: None,
        chunked: false,
        authenticated_tenant: None,
    }
}

fn step(request: Option<RequestSpec>, on: Target, replicate: Option<ReplicateSpec>) -> Step {
    Step {
        request,
        on,
        replicate,
        head: None,
        expect: None,
    }
}

fn read(tenant: &str, path: &str) -> RequestSpec {
    RequestSpec {
        method: "GET".into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("X-Tenant-ID".into(), tenant.into())],
        body: None,
        body_json: None,
        body_base64: None,
        pad_to: None,
        chunked: false,
        authenticated_tenant: None,
    }
}

proptest! {
    #[test]
    fn any_delivery_schedule_converges(
        writes in prop::collection::vec(write(), 1..12),
        schedule_seed in prop::collection::vec(any::<u16>(), 0..20),
        batch_size in 1usize..4,
        primary in 0usize..9,
        standby in 0usize..9,
    ) {
        let mut steps: Vec<Step> = writes.iter().map(|w| Step::request(request(w))).collect();
        // The first write of each (tenant, key) commits exactly one entry (booked or refused); later
        // ones replay or are refused before committing. Deliver every position at least once, plus
        // random repeats, in a random order.
        let committed = {
            let mut keys: Vec<(&str, u8)> = writes.iter().map(|w| (w.tenant, w.key)).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len()
        };
        let mut all: Vec<usize> = (1..=committed).collect();
        all.extend(schedule_seed.iter().map(|s| usize::from(*s) % committed + 1));
        let len = all.len();
        for (i, s) in schedule_seed.iter().enumerate() {
            all.swap(i % len, usize::from(*s) % len);
        }
        for chunk in all.chunks(batch_size) {
            steps.push(step(None, Target::Primary, Some(ReplicateSpec {
                entries: EntrySelection::Some(chunk.to_vec()),
                each: false,
                signature: Default::default(),
            })));
        }
        for tenant in ["coop-1", "coop-2"] {
            for account in ["ACC-1", "ACC-2"] {
                steps.push(step(Some(read(tenant, &format!("/v1/accounts/{account}/balances"))), Target::Both, None));
            }
        }
        let case = Case {
            format: 1,
            id: "GEN-REPL".into(),
            title: "generated".into(),
            requirements: vec![],
            cell: CellSpec::default(),
            standby: Some(CellSpec { cell_id: "cell-b".into(), ..CellSpec::default() }),
            converged: Some(true),
            steps,
            expect_outbox: None,
        };
        let (p, s) = (Envelope::ALL[primary], Envelope::ALL[standby]);
        let failures = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_one_pair(&case, p, s));
        prop_assert!(failures.is_empty(), "{}→{}: {failures:#?}", p.name(), s.name());
    }
}
