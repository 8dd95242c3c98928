//! An acceptor in memory: tests, local runs and the drills, with a switch that makes it unreachable
//! (a failure domain cut off).

use super::{Accepted, Acceptor, AcceptorError, Ballot, Refused, Slot};
use crate::ports::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// An [`Acceptor`] in memory. Each call applies [`Slot`]'s rule under one lock, as a store applies
/// it inside one conditional write.
#[derive(Debug)]
pub struct MemoryAcceptor {
    domain: String,
    slots: Mutex<BTreeMap<String, Slot>>,
    reachable: AtomicBool,
}

impl MemoryAcceptor {
    /// An empty, reachable acceptor in failure domain `domain`.
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            slots: Mutex::new(BTreeMap::new()),
            reachable: AtomicBool::new(true),
        }
    }

    /// Cuts the acceptor off (`false`: every call fails as a store outage would, nothing changes)
    /// or heals it.
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::SeqCst);
    }

    /// What it holds for `key`.
    pub fn slot(&self, key: &str) -> Option<Slot> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `rule` to `key`'s slot under the lock; returns the slot as it was.
    fn update(
        &self,
        key: &str,
        rule: impl FnOnce(&Slot) -> Result<Slot, Refused>,
    ) -> Result<Slot, AcceptorError> {
        self.check_reachable()?;
        let mut slots = self.lock();
        let before = slots.get(key).cloned().unwrap_or_default();
        let next = rule(&before).map_err(AcceptorError::Refused)?;
        slots.insert(key.to_owned(), next);
        Ok(before)
    }

    fn check_reachable(&self) -> Result<(), AcceptorError> {
        if self.reachable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(AcceptorError::Store(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: format!("acceptor in {} is unreachable", self.domain),
            }))
        }
    }
}

#[async_trait::async_trait]
impl Acceptor for MemoryAcceptor {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError> {
        self.update(key, |slot| slot.prepare(ballot))
            .map(|before| before.accepted)
    }

    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError> {
        self.update(key, |slot| slot.accept(ballot, value.to_owned()))
            .map(|_| ())
    }
}
