//! An [`Acceptor`] on any store that can compare-and-swap one item by version — DynamoDB
//! (a version attribute in the `ConditionExpression`), Cosmos DB (`If-Match: <_etag>`), an object
//! store (`ifGenerationMatch`, `If-Match`). The acceptor's rule runs here, once, for every store:
//! read the slot and its version, apply [`Slot::prepare`] / [`Slot::accept`], write the new slot
//! only if the version is still the one read. A lost compare-and-swap means another proposer wrote
//! in between: read and decide again (the re-read usually shows the higher ballot, and refuses).
//! Stores keep an opaque document; what it holds is decided and checked here ([`Slot::render`]).

use super::{Accepted, Acceptor, AcceptorError, Ballot, Slot};
use crate::ports::StoreError;

/// How often a phase re-reads after losing a compare-and-swap before reporting contention. Each loss
/// means another proposer wrote (its promise rose), so a handful of racing proposers settle well
/// within this.
const CAS_ATTEMPTS: u32 = 16;

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotWrite {
    /// Written: the item was still at the expected version (or absent, for a create).
    Written,
    /// Not written: the item changed (or appeared) since it was read.
    Conflict,
}

/// The one-item compare-and-swap a store offers an acceptor. `version` is the store's own (a
/// number, an ETag, a generation), opaque here.
#[async_trait::async_trait]
pub trait SlotStore: Send + Sync {
    /// The failure domain the store lives in.
    fn domain(&self) -> &str;

    /// The document under `key` and its version, strongly consistent. An item that is not a slot
    /// item (missing fields, another shape) is [`AcceptorError::Malformed`], naming what is wrong;
    /// store failures are [`AcceptorError::Store`].
    async fn read(&self, key: &str) -> Result<Option<(String, String)>, AcceptorError>;

    /// Writes `document` under `key` only if the item is still at `expected` (`None`: only if it
    /// does not exist).
    async fn write(
        &self,
        key: &str,
        document: &str,
        expected: Option<&str>,
    ) -> Result<SlotWrite, StoreError>;
}

/// An [`Acceptor`] over a [`SlotStore`].
#[derive(Debug)]
pub struct CasAcceptor<S> {
    store: S,
}

impl<S: SlotStore> CasAcceptor<S> {
    /// The acceptor kept in `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Reads the slot, applies `rule`, writes the result if nothing changed meanwhile; returns the
    /// slot as it was read.
    async fn update(
        &self,
        key: &str,
        rule: impl Fn(&Slot) -> Result<Slot, AcceptorError>,
    ) -> Result<Slot, AcceptorError> {
        for _ in 0..CAS_ATTEMPTS {
            let (slot, version) = match self.store.read(key).await? {
                Some((document, version)) => (
                    Slot::parse(&document).map_err(AcceptorError::Malformed)?,
                    Some(version),
                ),
                None => (Slot::default(), None),
            };
            let next = rule(&slot)?;
            match self
                .store
                .write(key, &next.render(), version.as_deref())
                .await?
            {
                SlotWrite::Written => return Ok(slot),
                SlotWrite::Conflict => continue,
            }
        }
        Err(AcceptorError::Store(StoreError::Unavailable {
            retry_after_secs: 1,
            detail: format!(
                "acceptor in {}: {key} changed under {CAS_ATTEMPTS} compare-and-swaps in a row",
                self.store.domain()
            ),
        }))
    }
}

#[async_trait::async_trait]
impl<S: SlotStore> Acceptor for CasAcceptor<S> {
    fn domain(&self) -> &str {
        self.store.domain()
    }

    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError> {
        let before = self
            .update(key, |slot| {
                slot.prepare(ballot).map_err(AcceptorError::Refused)
            })
            .await?;
        Ok(before.accepted)
    }

    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError> {
        self.update(key, |slot| {
            slot.accept(ballot, value.to_owned())
                .map_err(AcceptorError::Refused)
        })
        .await
        .map(|_| ())
    }

    async fn peek(&self, key: &str) -> Result<Option<Accepted>, AcceptorError> {
        match self.store.read(key).await? {
            Some((document, _)) => Ok(Slot::parse(&document)
                .map_err(AcceptorError::Malformed)?
                .accepted),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::quorum::MemorySlots;
    use crate::testing::block_on;
    use std::sync::atomic::Ordering;

    #[test]
    fn meets_the_acceptor_contract() {
        crate::testing::acceptor_contract::run_all(
            &crate::testing::store_contract::ThreadExecutor,
            &|| std::sync::Arc::new(CasAcceptor::new(MemorySlots::new("memory"))),
        );
    }

    #[test]
    fn a_lost_compare_and_swap_is_decided_again_and_bounded() {
        let b = |counter| Ballot {
            counter,
            proposer: 1,
        };
        let acceptor = CasAcceptor::new(MemorySlots::new("memory"));
        acceptor.store().interfere.store(2, Ordering::SeqCst);
        assert_eq!(block_on(acceptor.prepare("r", b(1))), Ok(None));
        acceptor
            .store()
            .interfere
            .store(CAS_ATTEMPTS, Ordering::SeqCst);
        assert!(matches!(
            block_on(acceptor.accept("r", b(1), "v")),
            Err(AcceptorError::Store(StoreError::Unavailable { detail, .. })) if detail.contains("compare-and-swaps")
        ));
        block_on(acceptor.accept("r", b(1), "v")).unwrap();
    }

    #[test]
    fn a_foreign_document_is_malformed_and_left_alone() {
        let acceptor = CasAcceptor::new(MemorySlots::new("memory"));
        block_on(
            acceptor
                .store()
                .write("r", "{\"something\":\"else\"}", None),
        )
        .unwrap();
        let b = Ballot {
            counter: 1,
            proposer: 1,
        };
        assert!(matches!(
            block_on(acceptor.prepare("r", b)),
            Err(AcceptorError::Malformed(_))
        ));
        assert_eq!(
            block_on(acceptor.store().read("r")).unwrap().unwrap().0,
            "{\"something\":\"else\"}"
        );
    }
}
