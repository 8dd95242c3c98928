//! Store faults injected in process ([`crate::case::Fault`]), around the in-memory store, through
//! the domain's [`FaultyStore`](paracell_domain::testing::faults::FaultyStore).

use crate::case::Fault;
use paracell_domain::memory::MemoryStore;
use paracell_domain::ports::StoreError;
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
