//! `replication::verify`: a standby that follows its primary agrees with it — lagging or not,
//! while the primary keeps writing — and a standby on another chain, or one whose stored state is
//! not what its log says, is found with the first differing item.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::http::ApiRequest;
use paracell_domain::idempotency::{IdempotencyKey, IdempotencyRecord};
use paracell_domain::memory::{ManualClock, MemoryStore};
use paracell_domain::placement::lease::{Ownership, PlacementSource};
use paracell_domain::placement::migrate::CellHandle;
use paracell_domain::placement::registry::{MemoryRegistry, Placement, PlacementRegistry};
use paracell_domain::ports::{BalanceSnapshot, StoreError, TransactionStore, UuidV7};
use paracell_domain::replication::verify::{Difference, verify};
use paracell_domain::testing::faults::{Faults, FaultyStore, Operation};
use paracell_domain::testing::{block_on, replicate};
use paracell_domain::transaction::AccountId;
use paracell_domain::{Cell, CellConfig, CellId, CellPorts, TenantId, TenantScope};
use rust_decimal::Decimal;
use std::sync::Arc;
use std::time::Duration;

fn tenant() -> TenantId {
    TenantId::parse("coop-1").unwrap()
}

fn cell(id: &str, store: Arc<dyn TransactionStore>, registry: &Arc<MemoryRegistry>) -> Cell {
    Cell::new(
        CellConfig::new(id, TenantScope::All).unwrap(),
        CellPorts {
            store,
            clock: Arc::new(ManualClock::default()),
            ids: Arc::new(UuidV7),
        },
    )
    .with_ownership(Ownership {
        source: PlacementSource::Registry(registry.clone()),
        ttl: Duration::from_secs(30),
    })
}

fn create(cell: &Cell, key: &str, kind: &str, amount: &str, account: &str) -> u16 {
    block_on(cell.handle(
        ApiRequest::new("POST", "/v1/transactions")
            .with_header("content-type", "application/json")
            .with_header("x-tenant-id", "coop-1")
            .with_header("idempotency-key", key)
            .with_body(
                format!(r#"{{"account_id":"{account}","type":"{kind}","amount":"{amount}","currency":"EUR"}}"#)
                    .into_bytes(),
            ),
    ))
    .status
}

fn handle(c: &Cell) -> CellHandle {
    CellHandle {
        id: c.config().cell_id.clone(),
        store: c.ports().store.clone(),
    }
}

/// Two cells, `a` the tenant's primary and `b` its standby; five bookings on `a`, replicated.
fn pair(b_store: Arc<dyn TransactionStore>) -> (Cell, Cell) {
    let registry = Arc::new(MemoryRegistry::new());
    let a = cell("cell-a", Arc::new(MemoryStore::new()), &registry);
    let b = cell("cell-b", b_store, &registry);
    block_on(registry.put(
        None,
        &Placement::new(
            tenant(),
            CellId::parse("cell-a").unwrap(),
            1,
            vec![CellId::parse("cell-b").unwrap()],
        ),
    ))
    .unwrap();
    for (k, kind, amount, account) in [
        ("k-1", "credit", "100.00", "ACC-1"),
        ("k-2", "debit", "30.00", "ACC-1"),
        ("k-3", "credit", "5.00", "ACC-2"),
        ("k-4", "debit", "999.00", "ACC-2"),
        ("k-5", "credit", "0.01", "ACC-1"),
    ] {
        let status = create(&a, k, kind, amount, account);
        assert!(status == 201 || status == 409, "{k}: {status}");
    }
    block_on(replicate(&a, &b)).unwrap();
    (a, b)
}

#[test]
fn a_standby_that_follows_agrees_lagging_or_not_and_same_positions_have_the_same_checksum() {
    let (a, b) = pair(Arc::new(MemoryStore::new()));
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&b)])).unwrap();
    assert!(v.agrees(), "{:?}", v.first_difference());
    let standby = &v.standbys[0];
    assert_eq!((v.primary.seq, standby.compared_at), (5, 5));
    assert_eq!(v.primary.checksum, standby.audit.checksum);
    assert_eq!(v.primary.records, 5, "the refusal's record too");
    assert_eq!(v.primary.balances, 2);

    // The primary books on; the standby has not caught up: still agreement, at the standby's position.
    assert_eq!(create(&a, "k-6", "credit", "1.00", "ACC-3"), 201);
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&b)])).unwrap();
    assert!(v.agrees(), "{:?}", v.first_difference());
    assert_eq!((v.primary.seq, v.standbys[0].compared_at), (6, 5));
    assert_ne!(v.primary.checksum, v.standbys[0].audit.checksum);
}

#[test]
fn a_standby_on_another_chain_is_found_at_its_position() {
    let (a, _) = pair(Arc::new(MemoryStore::new()));
    // Another "primary" of the same tenant that booked other things: a split brain's survivor.
    let registry = Arc::new(MemoryRegistry::new());
    let other = cell("cell-b", Arc::new(MemoryStore::new()), &registry);
    block_on(registry.put(
        None,
        &Placement::new(tenant(), CellId::parse("cell-b").unwrap(), 1, vec![]),
    ))
    .unwrap();
    for k in ["x-1", "x-2", "x-3"] {
        assert_eq!(create(&other, k, "credit", "7.00", "ACC-1"), 201);
    }
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&other)])).unwrap();
    assert!(!v.agrees());
    assert!(
        matches!(
            v.standbys[0].chain,
            Some(Difference::Chain {
                seq: 3,
                primary: Some(_),
                ..
            })
        ),
        "{:?}",
        v.standbys[0].chain
    );
    // Ahead of its primary: entries the primary does not have.
    for k in ["x-4", "x-5", "x-6"] {
        assert_eq!(create(&other, k, "credit", "7.00", "ACC-1"), 201);
    }
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&other)])).unwrap();
    let (cell, difference) = v.first_difference().unwrap();
    assert_eq!(cell.as_str(), "cell-b");
    assert!(
        difference.to_string().contains("the standby is ahead"),
        "{difference}"
    );
}

#[test]
fn a_standby_whose_state_is_not_its_logs_is_found_even_where_the_chains_match() {
    // The standby's store misreports one balance: an entry applied wrongly.
    let (a, b) = pair(tampered(true));
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&b)])).unwrap();
    assert!(!v.agrees());
    assert_eq!(v.standbys[0].chain, None, "the chains match");
    let (cell, difference) = v.first_difference().unwrap();
    assert_eq!(cell.as_str(), "cell-b");
    assert!(
        matches!(difference, Difference::Balance { account, .. } if account == "ACC-1"),
        "{difference}"
    );
    assert!(v.primary.difference.is_none(), "the primary is fine");

    // Or it lost an idempotency record: a retry would book twice there.
    let (a, b) = pair(tampered(false));
    let v = block_on(verify(&tenant(), &handle(&a), &[handle(&b)])).unwrap();
    let (_, difference) = v.first_difference().unwrap();
    assert!(
        matches!(difference, Difference::Record { key, .. } if key == "k-3"),
        "{difference}"
    );
}

/// A store that misreports: ACC-1's balances one cent high (`balance`), or no record for key k-3.
struct Tampered {
    balance: bool,
}

impl Faults for Tampered {
    fn before(&self, _: Operation) -> Result<(), StoreError> {
        Ok(())
    }
    fn balances(&self, account: &AccountId, mut all: Vec<BalanceSnapshot>) -> Vec<BalanceSnapshot> {
        if self.balance && account.as_str() == "ACC-1" {
            for b in &mut all {
                b.available += Decimal::new(1, 2);
            }
        }
        all
    }
    fn record(
        &self,
        key: &IdempotencyKey,
        record: Option<IdempotencyRecord>,
    ) -> Option<IdempotencyRecord> {
        record.filter(|_| self.balance || key.as_str() != "k-3")
    }
}

fn tampered(balance: bool) -> Arc<dyn TransactionStore> {
    Arc::new(FaultyStore::new(
        Arc::new(MemoryStore::new()),
        Tampered { balance },
    ))
}
