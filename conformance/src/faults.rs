//! Store faults injected in process ([`crate::case::Fault`]), around the in-memory store, through
//! the domain's [`FaultyStore`](paracell_domain::testing::faults::FaultyStore).

use crate::case::Fault;
use paracell_domain::TenantId;
use paracell_domain::TransactionId;
use paracell_domain::idempotency::IdempotencyKey;
use paracell_domain::idempotency::{IdempotencyRecord, KeyState};
use paracell_domain::memory::MemoryStore;
use paracell_domain::ports::{CreateView, StoreError};
use paracell_domain::testing::faults::{Faults, Operation};
use paracell_domain::time::Timestamp;
use std::sync::Arc;

/// A case's fault, as the domain's fault injector asks for it.
#[derive(Debug, Clone, Copy)]
pub struct CaseFault(pub Fault);

impl Faults for CaseFault {
    fn before(&self, _operation: Operation) -> Result<(), StoreError> {
        match self.0 {
            Fault::StoreUnavailable => Err(StoreError::Unavailable {
                retry_after_secs: 2,
                detail: "injected throttling".into(),
            }),
            Fault::StoreFailure => Err(StoreError::Failed(
                "injected failure: connection reset by peer".into(),
            )),
            Fault::Panic => panic!("injected panic in the store"),
            Fault::KeysInProgress => Ok(()),
        }
    }

    fn view(&self, tenant: &TenantId, key: &IdempotencyKey, view: CreateView) -> CreateView {
        if self.0 != Fault::KeysInProgress {
            return view;
        }
        CreateView {
            // Held by a live request: claimed as late as can be, so never stale.
            record: Some(IdempotencyRecord {
                tenant_id: tenant.clone(),
                key: key.clone(),
                fingerprint: String::new(),
                state: KeyState::InProgress {
                    claimed_at: Timestamp::from_unix_millis(i64::MAX / 2),
                    token: TransactionId::from_uuid(uuid::Uuid::nil()),
                },
            }),
            ..view
        }
    }
}

/// A store that fails the way `fault` says, around `inner`.
pub fn faulty(
    inner: Arc<MemoryStore>,
    fault: Fault,
) -> paracell_domain::testing::faults::FaultyStore<CaseFault> {
    paracell_domain::testing::faults::FaultyStore::new(inner, CaseFault(fault))
}
