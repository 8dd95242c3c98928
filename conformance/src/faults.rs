//! Store faults injected in process ([`crate::case::Fault`]), around the in-memory store, through
//! the domain's [`FaultyStore`](paracell_domain::testing::faults::FaultyStore).

use crate::case::Fault;
use paracell_domain::TransactionId;
use paracell_domain::idempotency::{IdempotencyRecord, KeyState};
use paracell_domain::memory::MemoryStore;
use paracell_domain::ports::{ClaimOutcome, KeyClaim, StoreError};
use paracell_domain::testing::faults::{Faults, Operation};
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

    fn claim(&self, claim: &KeyClaim) -> Option<ClaimOutcome> {
        (self.0 == Fault::KeysInProgress).then(|| {
            ClaimOutcome::Existing(IdempotencyRecord {
                tenant_id: claim.tenant_id.clone(),
                key: claim.key.clone(),
                fingerprint: claim.fingerprint.clone(),
                state: KeyState::InProgress {
                    claimed_at: claim.now,
                    token: TransactionId::from_uuid(uuid::Uuid::nil()),
                },
            })
        })
    }
}

/// A store that fails the way `fault` says, around `inner`.
pub fn faulty(
    inner: Arc<MemoryStore>,
    fault: Fault,
) -> paracell_domain::testing::faults::FaultyStore<CaseFault> {
    paracell_domain::testing::faults::FaultyStore::new(inner, CaseFault(fault))
}
