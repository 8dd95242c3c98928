//! The edge router's placement reads: from the acceptors one by one, **without a quorum** and
//! writing nothing — the newest value any of them answers. A stale answer is safe: a cell refuses a
//! write routed by an epoch it does not hold (`421`) or that its lease no longer covers (`503`), and
//! the router refreshes; a linearisable read (a full round that writes back) is the operator's, not
//! the hot path's.
//!
//! **Which acceptor first:** the caller's order. Each host lists its own cloud's acceptor first
//! (`PARACELL_QUORUM` on AWS starts with `dynamodb:…`, on Azure with `cosmos:…`), so the common case
//! is one request inside the router's cloud; the others are read too, and the highest ballot wins,
//! so a local acceptor that missed a failover while it was cut off does not pin the tenant to the
//! old primary. An acceptor that fails or times out is skipped; when none answers, the read fails.

use super::{Acceptor, AcceptorError};
use crate::placement::registry::Placement;
use crate::ports::StoreError;
use crate::tenancy::TenantId;
use std::sync::Arc;

/// Placement reads from any acceptor that answers (see the module).
pub struct AcceptorReads {
    acceptors: Vec<Arc<dyn Acceptor>>,
}

impl std::fmt::Debug for AcceptorReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptorReads")
            .field(
                "order",
                &self
                    .acceptors
                    .iter()
                    .map(|a| a.domain())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AcceptorReads {
    /// Reads from `acceptors`, in this order (the host's own cloud first).
    pub fn new(acceptors: Vec<Arc<dyn Acceptor>>) -> Self {
        Self { acceptors }
    }

    /// The newest placement of `tenant` any acceptor answers; `None` when those that answer hold
    /// none.
    ///
    /// ```
    /// use paracell_domain::placement::quorum::{Acceptor, AcceptorReads, memory_quorum};
    /// use paracell_domain::placement::registry::{Placement, PlacementRegistry};
    /// use paracell_domain::{CellId, TenantId, testing::block_on};
    /// use std::sync::Arc;
    /// let (acceptors, quorum) = memory_quorum(1);
    /// let tenant = TenantId::parse("coop-1").unwrap();
    /// let first = Placement::new(tenant.clone(), CellId::parse("cell-aws").unwrap(), 1, vec![]);
    /// block_on(quorum.put(None, &first)).unwrap();
    /// // AWS's acceptor misses the failover…
    /// acceptors[0].set_reachable(false);
    /// let moved = first.next(|p| { p.primary = CellId::parse("cell-azure").unwrap(); p.epoch = 2; });
    /// block_on(quorum.put(Some(1), &moved)).unwrap();
    /// acceptors[0].set_reachable(true);
    /// // …and the router on AWS, reading its own acceptor first, still routes by the newest answer.
    /// let reads = AcceptorReads::new(acceptors.iter().map(|a| Arc::clone(a) as Arc<dyn Acceptor>).collect());
    /// assert_eq!(block_on(reads.get(&tenant)).unwrap().unwrap().epoch, 2);
    /// ```
    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        let key = format!("placement/{tenant}");
        let mut newest = None;
        let mut answered = false;
        let mut problems = Vec::new();
        for acceptor in &self.acceptors {
            match acceptor.peek(&key).await {
                Ok(accepted) => {
                    answered = true;
                    if let Some(a) = accepted
                        && newest.as_ref().is_none_or(|(b, _)| a.ballot > *b)
                    {
                        newest = Some((a.ballot, a.value));
                    }
                }
                Err(e @ (AcceptorError::Malformed(_) | AcceptorError::Store(_))) => {
                    problems.push(format!("{}: {e}", acceptor.domain()));
                }
                Err(AcceptorError::Refused(_)) => {}
            }
        }
        if !answered {
            return Err(StoreError::Unavailable {
                retry_after_secs: 1,
                detail: format!("no acceptor answered: {}", problems.join("; ")),
            });
        }
        newest
            .map(|(_, text)| {
                Placement::parse(&text).map_err(|e| {
                    StoreError::Failed(format!("an acceptor holds a malformed placement: {e}"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory_quorum;
    use super::*;
    use crate::placement::registry::PlacementRegistry;
    use crate::tenancy::CellId;
    use crate::testing::block_on;

    #[test]
    fn one_acceptor_is_enough_and_none_is_an_error() {
        let (acceptors, quorum) = memory_quorum(1);
        let tenant = TenantId::parse("coop-1").unwrap();
        let reads = AcceptorReads::new(
            acceptors
                .iter()
                .map(|a| Arc::clone(a) as Arc<dyn Acceptor>)
                .collect(),
        );
        assert_eq!(block_on(reads.get(&tenant)), Ok(None));
        let placed = Placement::new(
            tenant.clone(),
            CellId::parse("cell-aws").unwrap(),
            1,
            vec![],
        );
        block_on(quorum.put(None, &placed)).unwrap();
        // Only AWS's acceptor answers (the write's quorum included it).
        acceptors[1].set_reachable(false);
        acceptors[2].set_reachable(false);
        assert_eq!(block_on(reads.get(&tenant)), Ok(Some(placed)));
        acceptors[0].set_reachable(false);
        assert!(matches!(
            block_on(reads.get(&tenant)),
            Err(StoreError::Unavailable { .. })
        ));
    }
}
