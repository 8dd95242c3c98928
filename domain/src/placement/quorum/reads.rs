//! The edge router's placement reads: from every acceptor at once, **without a round** and writing
//! nothing — the newest value among the first majority to answer (or, when fewer can answer, among
//! those that do). A stale answer is safe: a cell refuses a
//! write routed by an epoch it does not hold (`421`) or that its lease no longer covers (`503`), and
//! the router refreshes; a linearisable read (a full round that writes back) is the operator's, not
//! the hot path's.
//!
//! **Which acceptor first:** the caller's order. Each host lists its own cloud's acceptor first
//! (`PARACELL_QUORUM` on AWS starts with `dynamodb:…`, on Azure with `cosmos:…`), so the common case
//! is one request inside the router's cloud; the others are read at the same moment, and the
//! highest ballot wins, so a local acceptor that missed a failover while it was cut off does not pin
//! the tenant to the old primary. The read returns once a majority has answered: any placement a
//! quorum chose is then among the answers (two majorities share an acceptor), and an acceptor whose
//! link is black-holed — accepted, never answered — delays nothing. An acceptor that fails is
//! skipped; when none answers, the read fails.

use super::registry::{Pending, poll_until};
use super::{Accepted, Acceptor, AcceptorError};
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
        peek_newest(&self.acceptors, &format!("placement/{tenant}"))
            .await
            .map_err(|problems| StoreError::Unavailable {
                retry_after_secs: 1,
                detail: format!(
                    "no acceptor answered: {}",
                    problems
                        .iter()
                        .map(|(domain, e)| format!("{domain}: {e}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            })?
            .map(|text| {
                Placement::parse(&text).map_err(|e| {
                    StoreError::Failed(format!("an acceptor holds a malformed placement: {e}"))
                })
            })
            .transpose()
    }
}

/// The newest value of register `key` among the first majority of `acceptors` to answer (or among
/// those that can, when fewer answer), writing nothing. Since any two majorities share an acceptor,
/// it is the value a quorum last chose **or a newer one still being proposed** — never an older one.
/// Whoever acts on it must decide again inside a round. When no acceptor answers: each one's
/// problem, by failure domain.
pub(crate) async fn peek_newest(
    acceptors: &[Arc<dyn Acceptor>],
    key: &str,
) -> Result<Option<String>, Vec<(String, String)>> {
    let replies = majority_of_replies(
        acceptors
            .iter()
            .map(|a| -> Pending<'_, _> { Box::pin(a.peek(key)) })
            .collect(),
    )
    .await;
    let mut newest = None;
    let mut answered = false;
    let mut problems = Vec::new();
    for (i, reply) in replies {
        let domain = acceptors.get(i).map_or("?", |a| a.domain());
        match reply {
            Ok(accepted) => {
                answered = true;
                if let Some(a) = accepted
                    && newest.as_ref().is_none_or(|(b, _)| a.ballot > *b)
                {
                    newest = Some((a.ballot, a.value));
                }
            }
            Err(e @ (AcceptorError::Malformed(_) | AcceptorError::Store(_))) => {
                problems.push((domain.to_owned(), e.to_string()));
            }
            Err(AcceptorError::Refused(_)) => {}
        }
    }
    if !answered {
        return Err(problems);
    }
    Ok(newest.map(|(_, text)| text))
}

/// Every acceptor's reply in arrival order, once a majority of them have answered (a value or
/// none) or every call has finished ([`poll_until`]).
async fn majority_of_replies(
    calls: Vec<Pending<'_, Result<Option<Accepted>, AcceptorError>>>,
) -> Vec<(usize, Result<Option<Accepted>, AcceptorError>)> {
    let majority = calls.len() / 2 + 1;
    let mut replies = Vec::new();
    let mut answers = 0;
    poll_until(
        calls,
        |i, reply: Result<Option<Accepted>, AcceptorError>| {
            answers += usize::from(reply.is_ok());
            replies.push((i, reply));
            (answers >= majority).then_some(())
        },
    )
    .await;
    replies
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

    /// An acceptor whose link is black-holed: every call accepted, never answered.
    struct Silent;

    #[async_trait::async_trait]
    impl Acceptor for Silent {
        fn domain(&self) -> &str {
            "aws"
        }
        async fn prepare(
            &self,
            _: &str,
            _: super::super::Ballot,
        ) -> Result<Option<Accepted>, AcceptorError> {
            std::future::pending().await
        }
        async fn accept(
            &self,
            _: &str,
            _: super::super::Ballot,
            _: &str,
        ) -> Result<(), AcceptorError> {
            std::future::pending().await
        }
        async fn peek(&self, _: &str) -> Result<Option<Accepted>, AcceptorError> {
            std::future::pending().await
        }
    }

    #[test]
    fn a_black_holed_acceptor_first_in_line_delays_nothing() {
        let (acceptors, quorum) = memory_quorum(1);
        let tenant = TenantId::parse("coop-1").unwrap();
        let placed = Placement::new(
            tenant.clone(),
            CellId::parse("cell-azure").unwrap(),
            2,
            vec![],
        );
        block_on(quorum.put(None, &placed)).unwrap();
        // The host's own acceptor first, black-holed: the other two answer, and that is a majority.
        let reads = AcceptorReads::new(vec![
            Arc::new(Silent),
            Arc::clone(&acceptors[1]) as Arc<dyn Acceptor>,
            Arc::clone(&acceptors[2]) as Arc<dyn Acceptor>,
        ]);
        assert_eq!(block_on(reads.get(&tenant)), Ok(Some(placed)));
    }
}
