//! The placement registry over a quorum of acceptors: [`QuorumRegistry`] runs CASPaxos rounds
//! ([`Round`]) against every acceptor at once and implements
//! [`PlacementRegistry`](crate::placement::registry::PlacementRegistry), so migrate, failover and
//! the routers move onto the quorum without changing.

use super::{Acceptor, AcceptorError, Ballot, Progress, Quorum, Round, RoundFailure};
use crate::placement::registry::{Placement, PlacementRegistry, RegistryError, check_write};
use crate::ports::StoreError;
use crate::tenancy::TenantId;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

/// How many rounds a change may lose to other proposers before it reports contention.
const MAX_ROUNDS: u32 = 8;

/// Why a change could not be decided. Nothing was half-applied in any case: a value accepted by
/// fewer than a quorum is completed or superseded by the next round, never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    /// The acceptors cannot form a safe quorum: fewer than three, an even number, or two in one
    /// failure domain (that domain's outage would then take a majority with it).
    #[error("invalid acceptor set: {0}")]
    Config(String),
    /// Fewer than a majority answered: each failing acceptor's domain and error.
    #[error("no quorum: {}", .0.iter().map(|(d, e)| format!("{d}: {e}")).collect::<Vec<_>>().join("; "))]
    Unavailable(Vec<(String, String)>),
    /// Every round lost to a higher ballot (another proposer kept winning).
    #[error("outbid in {rounds} rounds in a row (last seen ballot {seen})")]
    Contended {
        /// Rounds tried.
        rounds: u32,
        /// The last higher ballot seen.
        seen: Ballot,
    },
}

impl From<QuorumError> for StoreError {
    fn from(e: QuorumError) -> Self {
        match e {
            QuorumError::Config(_) => StoreError::Failed(e.to_string()),
            _ => StoreError::Unavailable {
                retry_after_secs: 1,
                detail: e.to_string(),
            },
        }
    }
}

/// A [`PlacementRegistry`] kept by a majority of [`Acceptor`]s in distinct failure domains, one
/// CASPaxos register per tenant (`placement/<tenant>`). Writes are the registry's usual
/// compare-and-set (version and epoch checked by [`check_write`]) evaluated *inside* the round
/// against the value the quorum holds; reads are full rounds (linearisable).
pub struct QuorumRegistry {
    acceptors: Vec<Arc<dyn Acceptor>>,
    quorum: Quorum,
    proposer: u64,
    counter: AtomicU64,
}

impl std::fmt::Debug for QuorumRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumRegistry")
            .field(
                "domains",
                &self
                    .acceptors
                    .iter()
                    .map(|a| a.domain())
                    .collect::<Vec<_>>(),
            )
            .field("proposer", &self.proposer)
            .finish()
    }
}

impl QuorumRegistry {
    /// A registry over `acceptors` (an odd number, at least three, each in its own failure domain),
    /// proposing as `proposer` — an id no other proposer uses, ever (a fresh random one per process
    /// or execution environment).
    ///
    /// ```
    /// use paracell_domain::placement::quorum::{MemoryAcceptor, QuorumRegistry, QuorumError};
    /// use std::sync::Arc;
    /// let set = |domains: &[&str]| domains.iter().map(|d| Arc::new(MemoryAcceptor::new(d)) as _).collect();
    /// assert!(QuorumRegistry::new(set(&["aws", "azure", "gcp"]), 7).is_ok());
    /// assert!(matches!(QuorumRegistry::new(set(&["aws", "azure", "aws"]), 7), Err(QuorumError::Config(_))));
    /// assert!(matches!(QuorumRegistry::new(set(&["aws", "azure"]), 7), Err(QuorumError::Config(_))));
    /// ```
    pub fn new(acceptors: Vec<Arc<dyn Acceptor>>, proposer: u64) -> Result<Self, QuorumError> {
        if acceptors.len() < 3 || acceptors.len().is_multiple_of(2) {
            return Err(QuorumError::Config(format!(
                "{} acceptors: a quorum needs an odd number, at least three",
                acceptors.len()
            )));
        }
        let mut domains = BTreeSet::new();
        for a in &acceptors {
            if !domains.insert(a.domain()) {
                return Err(QuorumError::Config(format!(
                    "two acceptors in failure domain {:?}: its outage would take a majority",
                    a.domain()
                )));
            }
        }
        let quorum = Quorum::majority(acceptors.len());
        Ok(Self {
            acceptors,
            quorum,
            proposer,
            counter: AtomicU64::new(0),
        })
    }

    /// A ballot above every one this proposer has used or seen.
    fn next_ballot(&self, past: Option<Ballot>) -> Ballot {
        let floor = past.map_or(0, |b| b.counter);
        let mut counter = 0;
        // Never fails: the closure always returns `Some`.
        let _ = self
            .counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                counter = c.max(floor).saturating_add(1);
                Some(counter)
            });
        Ballot {
            counter,
            proposer: self.proposer,
        }
    }

    /// Applies `change` to register `key` and returns what the register holds afterwards, or the
    /// change's own refusal. `change` sees the current value and returns the new one (`Ok(None)`:
    /// leave it as it is — a read). It may run more than once (once per round), always against the
    /// value current in that round. A refusal or a read still completes the round by writing the
    /// current value back, so what it was decided against cannot later be replaced by an older
    /// value.
    pub async fn change<E>(
        &self,
        key: &str,
        change: impl Fn(Option<&str>) -> Result<Option<String>, E>,
    ) -> Result<Result<Option<String>, E>, QuorumError> {
        let mut seen = None;
        // The value this change proposed in a round that did not reach a quorum, and what `change`
        // decided then. Some acceptors may have accepted it: a later round that finds it current
        // completes it (CASPaxos carries the highest accepted value forward) and reports the
        // caller's own decision — not a conflict with itself.
        let mut ours: Option<(String, Result<Option<String>, E>)> = None;
        for _ in 0..MAX_ROUNDS {
            let ballot = self.next_ballot(seen);
            let mut round = Round::new(ballot, self.quorum);
            let current = match self.prepare(key, &mut round).await {
                Progress::Promised(current) => current,
                Progress::Failed(RoundFailure::Outbid { seen: s }) => {
                    seen = Some(s);
                    continue;
                }
                Progress::Failed(RoundFailure::NoQuorum { errors }) => {
                    return Err(self.unavailable(errors));
                }
                Progress::Pending | Progress::Chosen => unreachable_progress(),
            };
            let decided = match ours.take() {
                Some((value, decided)) if current.as_deref() == Some(value.as_str()) => decided,
                _ => change(current.as_deref()),
            };
            let value = match &decided {
                Ok(Some(new)) => new.clone(),
                // A read or a refusal of a register nothing was ever chosen for: nothing to write.
                Ok(None) | Err(_) if current.is_none() => {
                    return Ok(decided.map(|_| None));
                }
                Ok(None) | Err(_) => current.clone().unwrap_or_default(),
            };
            round.propose();
            match self.accept(key, &mut round, &value).await {
                Progress::Chosen => return Ok(decided.map(|_| Some(value))),
                Progress::Failed(RoundFailure::Outbid { seen: s }) => {
                    seen = Some(s);
                    ours = Some((value, decided));
                }
                Progress::Failed(RoundFailure::NoQuorum { errors }) => {
                    return Err(self.unavailable(errors));
                }
                Progress::Pending | Progress::Promised(_) => unreachable_progress(),
            }
        }
        Err(QuorumError::Contended {
            rounds: MAX_ROUNDS,
            seen: seen.unwrap_or(Ballot {
                counter: 0,
                proposer: 0,
            }),
        })
    }

    async fn prepare(&self, key: &str, round: &mut Round) -> Progress {
        let ballot = round.ballot();
        let calls = self
            .acceptors
            .iter()
            .map(|a| a.prepare(key, ballot))
            .collect();
        first_decision(calls, |from, reply| round.on_promise(from, reply)).await
    }

    async fn accept(&self, key: &str, round: &mut Round, value: &str) -> Progress {
        let ballot = round.ballot();
        let calls = self
            .acceptors
            .iter()
            .map(|a| a.accept(key, ballot, value))
            .collect();
        first_decision(calls, |from, reply| round.on_accepted(from, reply)).await
    }

    /// Register `key` as the first majority of acceptors to answer holds it, **writing nothing**:
    /// the value last chosen or a newer one still being proposed, never an older one
    /// (`reads::peek_newest`). For watchers that act only through a round of their own (a
    /// controller's lease watch: a revocation checks the counter inside its round). Costs reads
    /// only, where [`Self::change`] costs two writes per acceptor.
    pub async fn peek(&self, key: &str) -> Result<Option<String>, QuorumError> {
        super::reads::peek_newest(&self.acceptors, key)
            .await
            .map_err(QuorumError::Unavailable)
    }

    fn unavailable(&self, errors: Vec<(usize, AcceptorError)>) -> QuorumError {
        QuorumError::Unavailable(
            errors
                .into_iter()
                .map(|(i, e)| {
                    let domain = self.acceptors.get(i).map_or("?", |a| a.domain());
                    (domain.to_owned(), e.to_string())
                })
                .collect(),
        )
    }
}

/// `Round` only answers `Promised` in phase 1 and `Chosen` in phase 2, and a decision is only
/// returned once it is not `Pending`.
fn unreachable_progress() -> ! {
    unreachable!("a round's phase answered out of turn")
}

/// One acceptor call in flight.
pub(super) type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls every call at once and feeds each reply to `on_reply` as it arrives, until it returns a
/// decision; `None` when every call finished without one. Calls still in flight are dropped — their
/// outcome is unknown, which the protocol tolerates (and a black-holed acceptor costs nothing). No
/// runtime: a hand-rolled join, so the domain stays free of one. Rounds and the round-free reads
/// (`reads::peek_newest`) both wait through it.
pub(super) async fn poll_until<T, D>(
    calls: Vec<Pending<'_, T>>,
    mut on_reply: impl FnMut(usize, T) -> Option<D>,
) -> Option<D> {
    let mut calls: Vec<Option<Pending<'_, T>>> = calls.into_iter().map(Some).collect();
    std::future::poll_fn(move |cx| {
        for (i, slot) in calls.iter_mut().enumerate() {
            if let Some(call) = slot
                && let Poll::Ready(reply) = call.as_mut().poll(cx)
            {
                *slot = None;
                if let Some(decided) = on_reply(i, reply) {
                    return Poll::Ready(Some(decided));
                }
            }
        }
        if calls.iter().all(Option::is_none) {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A round's phase: the first decision (a quorum reached or out of reach).
async fn first_decision<T>(
    calls: Vec<Pending<'_, T>>,
    mut on_reply: impl FnMut(usize, T) -> Progress,
) -> Progress {
    poll_until(calls, |i, reply| {
        Some(on_reply(i, reply)).filter(|p| *p != Progress::Pending)
    })
    .await
    // Every acceptor answered and none decided: cannot happen with a consistent quorum, reported
    // as unavailable rather than waiting forever.
    .unwrap_or(Progress::Failed(RoundFailure::NoQuorum { errors: vec![] }))
}

fn key(tenant: &TenantId) -> String {
    format!("placement/{tenant}")
}

/// Why a write was not decided in favour of the caller.
enum Decline {
    Registry(RegistryError),
    Malformed(String),
}

#[async_trait::async_trait]
impl PlacementRegistry for QuorumRegistry {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        let value = self
            .change(&key(tenant), |_| Ok::<_, std::convert::Infallible>(None))
            .await?
            .unwrap_or_else(|never| match never {});
        value
            .map(|text| parse(tenant, &text))
            .transpose()
            .map_err(StoreError::Failed)
    }

    async fn put(&self, expected: Option<u64>, placement: &Placement) -> Result<(), RegistryError> {
        let decided = self
            .change(&key(&placement.tenant), |current| {
                let held = current
                    .map(|text| parse(&placement.tenant, text))
                    .transpose()
                    .map_err(Decline::Malformed)?;
                check_write(held.as_ref(), expected, placement).map_err(Decline::Registry)?;
                Ok(Some(placement.render()))
            })
            .await
            .map_err(|e| RegistryError::Store(e.into()))?;
        match decided {
            Ok(_) => Ok(()),
            Err(Decline::Registry(e)) => Err(e),
            Err(Decline::Malformed(e)) => Err(RegistryError::Store(StoreError::Failed(e))),
        }
    }
}

/// A register's value as a placement of `tenant`; anything else is reported, never acted on.
fn parse(tenant: &TenantId, text: &str) -> Result<Placement, String> {
    let placement = Placement::parse(text)
        .map_err(|e| format!("the quorum holds a malformed placement for {tenant}: {e}"))?;
    if &placement.tenant != tenant {
        return Err(format!(
            "the quorum's register for {tenant} holds tenant {}",
            placement.tenant
        ));
    }
    Ok(placement)
}

#[cfg(test)]
mod tests {
    use super::super::MemoryAcceptor;
    use super::*;
    use crate::tenancy::CellId;
    use crate::testing::block_on;

    fn three() -> (Vec<Arc<MemoryAcceptor>>, Vec<Arc<dyn Acceptor>>) {
        let acceptors: Vec<Arc<MemoryAcceptor>> = ["aws", "azure", "gcp"]
            .iter()
            .map(|d| Arc::new(MemoryAcceptor::new(d)))
            .collect();
        let ports = acceptors
            .iter()
            .map(|a| Arc::clone(a) as Arc<dyn Acceptor>)
            .collect();
        (acceptors, ports)
    }

    fn placement(primary: &str, epoch: u64) -> Placement {
        Placement::new(
            TenantId::parse("coop-1").unwrap(),
            CellId::parse(primary).unwrap(),
            epoch,
            vec![],
        )
    }

    #[test]
    fn any_two_acceptors_move_a_tenant_and_one_alone_cannot() {
        let (acceptors, ports) = three();
        let registry = QuorumRegistry::new(ports, 1).unwrap();
        let first = placement("aws-1", 1);
        block_on(registry.put(None, &first)).unwrap();

        // AWS's acceptor is cut off: Azure and the witness still move the tenant.
        acceptors[0].set_reachable(false);
        let moved = first.next(|p| {
            p.primary = CellId::parse("azure-1").unwrap();
            p.epoch = 2;
        });
        block_on(registry.put(Some(1), &moved)).unwrap();
        assert_eq!(
            block_on(registry.get(&first.tenant)).unwrap(),
            Some(moved.clone())
        );

        // With the witness cut off too, one acceptor can do nothing, and says so.
        acceptors[2].set_reachable(false);
        let err = block_on(registry.put(Some(2), &moved.next(|p| p.epoch = 3))).unwrap_err();
        assert!(
            matches!(&err, RegistryError::Store(StoreError::Unavailable { detail, .. }) if detail.contains("aws") && detail.contains("gcp")),
            "{err}"
        );
        assert!(block_on(registry.get(&first.tenant)).is_err());

        // AWS heals (its acceptor still holds epoch 1): a majority read sees epoch 2, never 1.
        acceptors[0].set_reachable(true);
        assert_eq!(block_on(registry.get(&first.tenant)).unwrap(), Some(moved));
    }

    #[test]
    fn a_stale_compare_and_set_is_refused_against_the_quorums_value() {
        let (_, ports) = three();
        let registry = QuorumRegistry::new(ports, 1).unwrap();
        let first = placement("aws-1", 1);
        block_on(registry.put(None, &first)).unwrap();
        assert!(matches!(
            block_on(registry.put(None, &first)),
            Err(RegistryError::Conflict { current: Some(p) }) if *p == first
        ));
        let lower = first.next(|p| p.epoch = 0);
        assert!(matches!(
            block_on(registry.put(Some(1), &lower)),
            Err(RegistryError::EpochRegression {
                held: 1,
                attempted: 0
            })
        ));
    }

    #[test]
    fn two_proposers_each_finish_and_a_lost_race_is_decided_again() {
        let (_, ports) = three();
        let a = QuorumRegistry::new(ports.clone(), 1).unwrap();
        let b = QuorumRegistry::new(ports, 2).unwrap();
        block_on(a.put(None, &placement("aws-1", 1))).unwrap();
        // b reads at a higher ballot than a has used: a's next round is outbid once, moves its
        // counter past b's ballot, and decides again against the same value.
        block_on(b.get(&TenantId::parse("coop-1").unwrap())).unwrap();
        block_on(b.get(&TenantId::parse("coop-1").unwrap())).unwrap();
        let moved = placement("aws-1", 1).next(|p| {
            p.primary = CellId::parse("azure-1").unwrap();
            p.epoch = 2;
        });
        block_on(a.put(Some(1), &moved)).unwrap();
        assert_eq!(
            block_on(b.get(&moved.tenant)).unwrap().map(|p| p.primary),
            Some(CellId::parse("azure-1").unwrap())
        );
    }

    /// A round whose accept reached only some acceptors before it was outbid leaves its value
    /// behind; the next round finds it current and must complete it as the caller's own write, not
    /// refuse the caller with a conflict against itself (found on the stand-ins: two racing writers
    /// with the witness down both reported a conflict while one of their values was chosen).
    #[test]
    fn a_change_whose_value_survived_a_lost_round_completes_as_its_own() {
        let (acceptors, ports) = three();
        let registry = QuorumRegistry::new(ports, 1).unwrap();
        let first = placement("aws-1", 1);
        block_on(registry.put(None, &first)).unwrap();
        let moved = first.next(|p| p.epoch = 2);
        let proposals = std::sync::atomic::AtomicUsize::new(0);
        let decided = block_on(registry.change("placement/coop-1", |current| {
            if proposals.fetch_add(1, Ordering::SeqCst) > 0 {
                // What `put` would answer if it decided again: a conflict with its own value.
                return Err(format!("decided again against {current:?}"));
            }
            // Between this round's two phases Azure promises a higher ballot and the witness goes
            // down: the accept lands at AWS only, and the round is outbid.
            let higher = Ballot {
                counter: 1_000,
                proposer: 2,
            };
            block_on(acceptors[1].prepare("placement/coop-1", higher)).unwrap();
            acceptors[2].set_reachable(false);
            Ok(Some(moved.render()))
        }));
        assert_eq!(
            proposals.load(Ordering::SeqCst),
            1,
            "the surviving value is completed, not decided again"
        );
        assert_eq!(decided, Ok(Ok(Some(moved.render()))));
        acceptors[2].set_reachable(true);
        assert_eq!(block_on(registry.get(&first.tenant)).unwrap(), Some(moved));
    }

    #[test]
    fn garbage_in_the_register_is_reported_never_acted_on() {
        let (acceptors, ports) = three();
        let registry = QuorumRegistry::new(ports, 1).unwrap();
        for a in &acceptors {
            block_on(a.accept(
                "placement/coop-1",
                Ballot {
                    counter: 1,
                    proposer: 9,
                },
                "{not a placement",
            ))
            .unwrap();
        }
        let tenant = TenantId::parse("coop-1").unwrap();
        assert!(
            matches!(block_on(registry.get(&tenant)), Err(StoreError::Failed(e)) if e.contains("malformed"))
        );
        assert!(matches!(
            block_on(registry.put(Some(1), &placement("aws-1", 1).next(|p| p.epoch = 2))),
            Err(RegistryError::Store(StoreError::Failed(e))) if e.contains("malformed")
        ));
    }
}
