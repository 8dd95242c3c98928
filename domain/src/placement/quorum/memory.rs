//! An acceptor in memory: tests, local runs and the drills, with a switch that makes it unreachable
//! (a failure domain cut off). It runs the same [`CasAcceptor`] path as the stores' acceptors, over
//! versioned items kept in memory ([`MemorySlots`]).

use super::{Accepted, Acceptor, AcceptorError, Ballot, CasAcceptor, Slot, SlotStore, SlotWrite};
use crate::ports::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A [`SlotStore`] in memory: each item a document and a version number, compared and swapped under
/// one lock.
#[derive(Debug)]
pub struct MemorySlots {
    domain: String,
    items: Mutex<BTreeMap<String, (String, u64)>>,
    reachable: AtomicBool,
    /// Tests: the next this-many writes lose their compare-and-swap, as if another proposer wrote.
    pub(crate) interfere: AtomicU32,
}

impl MemorySlots {
    /// No items, reachable, in failure domain `domain`.
    pub fn new(domain: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            items: Mutex::new(BTreeMap::new()),
            reachable: AtomicBool::new(true),
            interfere: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, u64)>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_reachable(&self) -> Result<(), StoreError> {
        if self.reachable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: format!("acceptor in {} is unreachable", self.domain),
            })
        }
    }
}

#[async_trait::async_trait]
impl SlotStore for MemorySlots {
    fn domain(&self) -> &str {
        &self.domain
    }

    async fn read(&self, key: &str) -> Result<Option<(String, String)>, AcceptorError> {
        self.check_reachable()?;
        Ok(self
            .lock()
            .get(key)
            .map(|(document, version)| (document.clone(), version.to_string())))
    }

    async fn write(
        &self,
        key: &str,
        document: &str,
        expected: Option<&str>,
    ) -> Result<SlotWrite, StoreError> {
        self.check_reachable()?;
        let mut items = self.lock();
        let lose = self
            .interfere
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let held = items.get(key).map(|(_, v)| v.to_string());
        if lose || held.as_deref() != expected {
            return Ok(SlotWrite::Conflict);
        }
        let version = items.get(key).map_or(1, |(_, v)| v + 1);
        items.insert(key.to_owned(), (document.to_owned(), version));
        Ok(SlotWrite::Written)
    }
}

/// An [`Acceptor`] in memory: a [`CasAcceptor`] over [`MemorySlots`].
#[derive(Debug)]
pub struct MemoryAcceptor {
    inner: CasAcceptor<MemorySlots>,
}

impl MemoryAcceptor {
    /// An empty, reachable acceptor in failure domain `domain`.
    pub fn new(domain: &str) -> Self {
        Self {
            inner: CasAcceptor::new(MemorySlots::new(domain)),
        }
    }

    /// Cuts the acceptor off (`false`: every call fails as a store outage would, nothing changes)
    /// or heals it.
    pub fn set_reachable(&self, reachable: bool) {
        self.inner
            .store()
            .reachable
            .store(reachable, Ordering::SeqCst);
    }

    /// What it holds for `key` (`None`: nothing, or not a slot).
    pub fn slot(&self, key: &str) -> Option<Slot> {
        let items = self.inner.store().lock();
        items
            .get(key)
            .and_then(|(document, _)| Slot::parse(document).ok())
    }
}

#[async_trait::async_trait]
impl Acceptor for MemoryAcceptor {
    fn domain(&self) -> &str {
        self.inner.domain()
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError> {
        self.inner.prepare(key, ballot).await
    }

    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError> {
        self.inner.accept(key, ballot, value).await
    }

    async fn peek(&self, key: &str) -> Result<Option<Accepted>, AcceptorError> {
        self.inner.peek(key).await
    }
}

/// Three memory acceptors, one per failure domain (`aws`, `azure`, `gcp`), and a
/// [`QuorumRegistry`](super::QuorumRegistry) over them proposing as `proposer`: where quorum tests and
/// in-process drills start (the acceptors are returned to cut them off or inspect their slots).
///
/// ```
/// use paracell_domain::placement::quorum::memory_quorum;
/// use paracell_domain::placement::registry::PlacementRegistry;
/// let (acceptors, quorum) = memory_quorum(1);
/// acceptors[0].set_reachable(false); // AWS's acceptor cut off: the other two still answer
/// let tenant = paracell_domain::TenantId::parse("coop-1").unwrap();
/// assert_eq!(paracell_domain::testing::block_on(quorum.get(&tenant)).unwrap(), None);
/// ```
pub fn memory_quorum(
    proposer: u64,
) -> (Vec<std::sync::Arc<MemoryAcceptor>>, super::QuorumRegistry) {
    let acceptors: Vec<std::sync::Arc<MemoryAcceptor>> = ["aws", "azure", "gcp"]
        .iter()
        .map(|d| std::sync::Arc::new(MemoryAcceptor::new(d)))
        .collect();
    let ports = acceptors
        .iter()
        .map(|a| std::sync::Arc::clone(a) as std::sync::Arc<dyn Acceptor>)
        .collect();
    match super::QuorumRegistry::new(ports, proposer) {
        Ok(quorum) => (acceptors, quorum),
        Err(_) => unreachable!("three acceptors in three failure domains"),
    }
}
