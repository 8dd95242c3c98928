//! The placement register written by a **majority of acceptors in independent failure domains**, so
//! that losing any one cloud neither stops nor splits the control plane: CASPaxos — D. Rystsov,
//! *CASPaxos: Replicated State Machines without logs*, arXiv:1802.07000 (2018).
//!
//! Each register (one per tenant: `placement/<tenant>`) is kept by `2F+1` acceptors (three: one on
//! AWS, one on Azure, a witness on a third provider); any `F+1` of them can change it, `F` alone can
//! do nothing. A change is a function of the current value, applied in two phases:
//!
//! 1. **prepare(B)** at every acceptor; `F+1` promises bring back their accepted `(ballot, value)`;
//!    the value with the highest ballot is the current one (paper §2.1);
//! 2. **accept(B, f(current))** at every acceptor; `F+1` acceptances choose it.
//!
//! What lives where:
//!
//! | piece | here | why |
//! |---|---|---|
//! | [`Slot`]: the rule an acceptor applies (prepare/accept, refuse lower ballots) | pure | each store evaluates it inside its conditional write; the model checker runs this very code |
//! | [`Round`]: one proposal, fed replies one at a time | pure, no I/O | the async registry and the model checker drive the same state machine |
//! | [`Acceptor`]: the port a quorum member implements | trait | [`CasAcceptor`] (every store, memory included: [`MemoryAcceptor`]) |
//! | [`CasAcceptor`] over a [`SlotStore`]: the rule applied by read → decide → compare-and-swap | pure rule, store port | DynamoDB, Cosmos DB, the witness implement only the one-item compare-and-swap |
//! | [`QuorumRegistry`]: a [`PlacementRegistry`](super::registry::PlacementRegistry) over acceptors | async, runtime-free | migrate, failover and the routers use it unchanged |
//!
//! **Reads are changes too.** A read is the identity change `x → x`, a full round that writes the
//! value it read back, so a value a reader saw can never be replaced by an older one later (an
//! operator's read is linearisable). Only a register no acceptor in the quorum has ever accepted
//! skips the write: nothing was chosen, and nothing can be chosen below the promises just made.
//!
//! **A lost race never half-applies.** A proposal refused by a higher ballot at enough acceptors
//! fails as a whole ([`RoundFailure::Outbid`]); the registry moves its counter past the ballot it
//! saw (gryadka's `fastforwardAfter`) and runs the change again from the start against the value now
//! current — its function decides again, so a compare-and-set that no longer holds is refused,
//! never applied twice.

mod cas;
pub mod controller;
pub mod events;
mod gate;
pub mod import;
pub mod lease;
mod memory;
mod reads;
mod registry;

pub use cas::{CasAcceptor, SlotStore, SlotWrite};
pub use gate::{Admission, LeaseGate};
pub use lease::{CellLease, LeaseHolder, LeaseTiming, LeaseWatch};
pub use memory::{MemoryAcceptor, MemorySlots, memory_quorum};
pub use reads::AcceptorReads;
pub use registry::{QuorumError, QuorumRegistry};

use crate::ports::StoreError;
use std::fmt;

/// A proposal's number: `(counter, proposer)`, compared counter first (paper §2.1), so two
/// proposers never share one as long as their ids differ. A proposer must never reuse a pair — not
/// even after a restart (late replies to its old round would count for the new one): serverless
/// proposers take a fresh random 64-bit id per execution environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct Ballot {
    /// Raised by each proposal, and past any higher ballot seen.
    pub counter: u64,
    /// The proposer's id: unique per proposer (per execution environment).
    pub proposer: u64,
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.counter, self.proposer)
    }
}

/// A value an acceptor has accepted, with the ballot it was accepted under.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The ballot of the proposal that wrote it.
    pub ballot: Ballot,
    /// The register's value (for placement: a [`Placement`](super::registry::Placement) record).
    pub value: String,
}

/// What one acceptor holds for one register. Every store keeps exactly these fields per register
/// and changes them only as [`Slot::prepare`] and [`Slot::accept`] say, inside one conditional write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// The highest ballot promised.
    pub promise: Option<Ballot>,
    /// The value accepted last.
    pub accepted: Option<Accepted>,
}

/// An acceptor's refusal: it has seen a ballot at least as high as the one proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Refused {
    /// The highest ballot the acceptor has seen (the proposer moves past it).
    pub seen: Ballot,
}

impl Slot {
    /// The slot as the document a store keeps:
    /// `{"promise":{"counter","proposer"}|null,"accepted":{"ballot","value"}|null}`.
    ///
    /// ```
    /// use paracell_domain::placement::quorum::{Ballot, Slot};
    /// let slot = Slot::default().accept(Ballot { counter: 2, proposer: 7 }, "v".into()).unwrap();
    /// assert_eq!(slot.render(), r#"{"promise":{"counter":2,"proposer":7},"accepted":{"ballot":{"counter":2,"proposer":7},"value":"v"}}"#);
    /// assert_eq!(Slot::parse(&slot.render()), Ok(slot));
    /// assert!(Slot::parse(r#"{"promise":null}"#).is_err(), "every field is required");
    /// ```
    pub fn render(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("a slot always serialises"))
    }

    /// Reads a stored slot; anything else is an error naming what is wrong (a foreign or corrupted
    /// item is never taken for an empty slot).
    pub fn parse(document: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            promise: Option<Ballot>,
            accepted: Option<Accepted>,
        }
        // `Option` fields would default to `None` when missing: require both keys explicitly.
        let value: serde_json::Value =
            serde_json::from_str(document).map_err(|e| format!("acceptor slot: {e}"))?;
        for field in ["promise", "accepted"] {
            if value.get(field).is_none() {
                return Err(format!("acceptor slot: missing field `{field}`"));
            }
        }
        let strict: Strict =
            serde_json::from_value(value).map_err(|e| format!("acceptor slot: {e}"))?;
        Ok(Slot {
            promise: strict.promise,
            accepted: strict.accepted,
        })
    }

    /// The highest ballot this slot has seen, promised or accepted.
    pub fn highest(&self) -> Option<Ballot> {
        self.promise.max(self.accepted.as_ref().map(|a| a.ballot))
    }

    /// Phase 1: promise `ballot` unless a ballot at least as high was seen (gryadka's `prepare`:
    /// `promise < B and accepted < B`). Returns the slot to store; the reply is its `accepted`.
    ///
    /// ```
    /// use paracell_domain::placement::quorum::{Ballot, Slot};
    /// let b = |counter| Ballot { counter, proposer: 1 };
    /// let slot = Slot::default().prepare(b(2)).unwrap();
    /// assert_eq!(slot.promise, Some(b(2)));
    /// assert_eq!(slot.prepare(b(1)).unwrap_err().seen, b(2), "a lower ballot is refused");
    /// assert!(slot.prepare(b(2)).is_err(), "and so is the same ballot: it is never reused");
    /// ```
    pub fn prepare(&self, ballot: Ballot) -> Result<Slot, Refused> {
        match self.highest() {
            Some(seen) if seen >= ballot => Err(Refused { seen }),
            _ => Ok(Slot {
                promise: Some(ballot),
                accepted: self.accepted.clone(),
            }),
        }
    }

    /// Phase 2: accept `value` under `ballot` unless a higher ballot was promised or this one (or a
    /// higher one) already accepted (gryadka's `accept`: `promise ≤ B and accepted < B`).
    ///
    /// ```
    /// use paracell_domain::placement::quorum::{Ballot, Slot};
    /// let b = |counter| Ballot { counter, proposer: 1 };
    /// let slot = Slot::default().prepare(b(3)).unwrap();
    /// assert!(slot.accept(b(2), "old".into()).is_err(), "below the promise");
    /// let slot = slot.accept(b(3), "v".into()).unwrap();
    /// assert_eq!(slot.accepted.as_ref().map(|a| a.value.as_str()), Some("v"));
    /// assert!(slot.accept(b(3), "again".into()).is_err(), "one value per ballot");
    /// ```
    pub fn accept(&self, ballot: Ballot, value: String) -> Result<Slot, Refused> {
        let promised_higher = self.promise.filter(|p| *p > ballot);
        let accepted_same_or_higher = self
            .accepted
            .as_ref()
            .map(|a| a.ballot)
            .filter(|a| *a >= ballot);
        match promised_higher.max(accepted_same_or_higher) {
            Some(seen) => Err(Refused { seen }),
            None => Ok(Slot {
                promise: self.promise.max(Some(ballot)),
                accepted: Some(Accepted { ballot, value }),
            }),
        }
    }
}

/// Why an acceptor did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AcceptorError {
    /// It has seen a ballot at least as high: nothing was written.
    #[error("refused: ballot {} already seen", .0.seen)]
    Refused(Refused),
    /// It holds a record that is not a slot (a foreign or corrupted item): nothing was written, and
    /// the acceptor counts as unavailable until an operator looks.
    #[error("malformed acceptor record: {0}")]
    Malformed(String),
    /// The store failed, timed out or is unreachable: the write may or may not have landed (a
    /// timeout is an unknown outcome, which CASPaxos tolerates: the next round decides again).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The acceptor port: one store in one failure domain, keeping one [`Slot`] per register and
/// changing it only by the slot's own rules inside a single conditional write (DynamoDB:
/// `ConditionExpression`; Cosmos DB: `If-Match`; an object store: `ifGenerationMatch` /
/// `If-Match`). An acceptor must live in a single-write-region store: a multi-region,
/// last-writer-wins table can let two regions both win one compare-and-set.
#[async_trait::async_trait]
pub trait Acceptor: Send + Sync {
    /// The failure domain it lives in (`aws`, `azure`, `gcp`, …): a quorum needs them distinct.
    fn domain(&self) -> &str;

    /// Phase 1 on `key` ([`Slot::prepare`]): the value accepted so far, if any.
    async fn prepare(&self, key: &str, ballot: Ballot) -> Result<Option<Accepted>, AcceptorError>;

    /// Phase 2 on `key` ([`Slot::accept`]).
    async fn accept(&self, key: &str, ballot: Ballot, value: &str) -> Result<(), AcceptorError>;

    /// What this acceptor alone has accepted for `key`, writing nothing: no quorum, so possibly
    /// stale, or even a value no majority chose. Only for readers whose every use is fenced further
    /// on — the edge router: a cell refuses a write routed by an epoch it does not hold (`421`), and
    /// the router refreshes ([`AcceptorReads`]).
    async fn peek(&self, key: &str) -> Result<Option<Accepted>, AcceptorError>;
}

/// How many acceptors must answer for a phase to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quorum {
    acceptors: usize,
    needed: usize,
}

impl Quorum {
    /// A majority of `acceptors` (`F+1` of `2F+1`). Any two majorities share an acceptor — the
    /// whole of CASPaxos's safety argument.
    pub fn majority(acceptors: usize) -> Self {
        Self {
            acceptors,
            needed: acceptors / 2 + 1,
        }
    }

    /// A quorum of `needed`, majority or not. **Unsafe below a majority**: two disjoint quorums can
    /// each choose a value. It exists so the model checker can prove it catches exactly that.
    #[cfg(feature = "testing")]
    pub fn unsafe_of(acceptors: usize, needed: usize) -> Self {
        Self { acceptors, needed }
    }

    /// The number of acceptors.
    pub fn acceptors(&self) -> usize {
        self.acceptors
    }

    /// How many must agree.
    pub fn needed(&self) -> usize {
        self.needed
    }
}

/// Where a [`Round`] stands after a reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Progress {
    /// Waiting for more replies.
    Pending,
    /// Phase 1 done: the register's current value (the highest-ballot accepted one among the
    /// promises; `None` if the quorum never accepted anything). Apply the change to it and call
    /// [`Round::propose`].
    Promised(Option<String>),
    /// Phase 2 done: the proposed value is chosen.
    Chosen,
    /// The round cannot succeed.
    Failed(RoundFailure),
}

/// Why a round failed. Nothing is half-applied: a value accepted by fewer than a quorum is either
/// completed by a later round (which reads it as current) or superseded; the caller starts over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoundFailure {
    /// A higher ballot was seen by enough acceptors that this one cannot reach a quorum: retry
    /// with a counter past `seen`.
    Outbid {
        /// The highest ballot any acceptor reported.
        seen: Ballot,
    },
    /// Too many acceptors failed or answered garbage for a quorum (the errors, by acceptor index).
    NoQuorum {
        /// Each failing acceptor's error, in reply order.
        errors: Vec<(usize, AcceptorError)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Phase {
    Prepare,
    /// Promised; waiting for the caller's value.
    Decide,
    Accept,
    Done,
}

/// One proposal, as a state machine fed one reply at a time (no I/O, no clock): the async
/// [`QuorumRegistry`] and the model checker drive the same code. Each acceptor's reply to a phase
/// counts once; later duplicates are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Round {
    ballot: Ballot,
    quorum: Quorum,
    phase: Phase,
    answered: Vec<bool>,
    oks: usize,
    highest: Option<Accepted>,
    errors: Vec<(usize, AcceptorError)>,
    outbid: Option<Ballot>,
}

impl Round {
    /// A round under `ballot`, in phase 1.
    pub fn new(ballot: Ballot, quorum: Quorum) -> Self {
        Self {
            ballot,
            quorum,
            phase: Phase::Prepare,
            answered: vec![false; quorum.acceptors],
            oks: 0,
            highest: None,
            errors: Vec::new(),
            outbid: None,
        }
    }

    /// The round's ballot.
    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// Acceptor `from`'s reply to prepare.
    pub fn on_promise(
        &mut self,
        from: usize,
        reply: Result<Option<Accepted>, AcceptorError>,
    ) -> Progress {
        if self.phase != Phase::Prepare || !self.first_reply(from) {
            return Progress::Pending;
        }
        match reply {
            Ok(accepted) => {
                if let Some(a) = accepted
                    && self.highest.as_ref().is_none_or(|h| a.ballot > h.ballot)
                {
                    self.highest = Some(a);
                }
                self.oks += 1;
                if self.oks >= self.quorum.needed {
                    self.phase = Phase::Decide;
                    return Progress::Promised(self.highest.as_ref().map(|a| a.value.clone()));
                }
                Progress::Pending
            }
            Err(error) => self.on_error(from, error),
        }
    }

    /// Phase 2 starts: `value` goes to every acceptor (the caller sends it). Resets the tally.
    pub fn propose(&mut self) {
        if self.phase == Phase::Decide {
            self.phase = Phase::Accept;
            self.answered.iter_mut().for_each(|a| *a = false);
            self.oks = 0;
            self.errors.clear();
        }
    }

    /// Acceptor `from`'s reply to accept.
    pub fn on_accepted(&mut self, from: usize, reply: Result<(), AcceptorError>) -> Progress {
        if self.phase != Phase::Accept || !self.first_reply(from) {
            return Progress::Pending;
        }
        match reply {
            Ok(()) => {
                self.oks += 1;
                if self.oks >= self.quorum.needed {
                    self.phase = Phase::Done;
                    return Progress::Chosen;
                }
                Progress::Pending
            }
            Err(error) => self.on_error(from, error),
        }
    }

    fn first_reply(&mut self, from: usize) -> bool {
        match self.answered.get_mut(from) {
            Some(seen) if !*seen => {
                *seen = true;
                true
            }
            _ => false,
        }
    }

    fn on_error(&mut self, from: usize, error: AcceptorError) -> Progress {
        if let AcceptorError::Refused(r) = &error {
            self.outbid = self.outbid.max(Some(r.seen));
        }
        self.errors.push((from, error));
        // Fail as soon as a quorum is out of reach, not when the last straggler answers.
        if self.errors.len() > self.quorum.acceptors - self.quorum.needed {
            self.phase = Phase::Done;
            return Progress::Failed(match self.outbid {
                Some(seen) => RoundFailure::Outbid { seen },
                None => RoundFailure::NoQuorum {
                    errors: std::mem::take(&mut self.errors),
                },
            });
        }
        Progress::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(counter: u64, proposer: u64) -> Ballot {
        Ballot { counter, proposer }
    }

    #[test]
    fn ballots_order_by_counter_then_proposer() {
        assert!(b(2, 1) > b(1, 9));
        assert!(b(1, 2) > b(1, 1));
        assert_eq!(b(3, 10).to_string(), "3.a");
    }

    #[test]
    fn a_round_takes_the_highest_accepted_value_among_the_promises() {
        let mut round = Round::new(b(5, 1), Quorum::majority(3));
        let old = Accepted {
            ballot: b(1, 2),
            value: "old".into(),
        };
        let newer = Accepted {
            ballot: b(3, 2),
            value: "newer".into(),
        };
        assert_eq!(round.on_promise(0, Ok(Some(old))), Progress::Pending);
        assert_eq!(
            round.on_promise(0, Ok(None)),
            Progress::Pending,
            "a duplicate reply counts once"
        );
        assert_eq!(
            round.on_promise(2, Ok(Some(newer))),
            Progress::Promised(Some("newer".into()))
        );
        round.propose();
        assert_eq!(round.on_accepted(1, Ok(())), Progress::Pending);
        assert_eq!(round.on_accepted(1, Ok(())), Progress::Pending);
        assert_eq!(round.on_accepted(0, Ok(())), Progress::Chosen);
    }

    #[test]
    fn a_round_fails_once_a_quorum_is_out_of_reach_and_says_why() {
        let mut round = Round::new(b(5, 1), Quorum::majority(3));
        let down = AcceptorError::Store(StoreError::Failed("down".into()));
        assert_eq!(round.on_promise(0, Err(down.clone())), Progress::Pending);
        let refused = AcceptorError::Refused(Refused { seen: b(7, 3) });
        assert_eq!(
            round.on_promise(1, Err(refused)),
            Progress::Failed(RoundFailure::Outbid { seen: b(7, 3) })
        );
        let mut round = Round::new(b(5, 1), Quorum::majority(3));
        round.on_promise(0, Err(down.clone()));
        let garbage = AcceptorError::Malformed("not a slot".into());
        assert_eq!(
            round.on_promise(2, Err(garbage.clone())),
            Progress::Failed(RoundFailure::NoQuorum {
                errors: vec![(0, down), (2, garbage)]
            })
        );
        // Nothing counts after the round is over.
        assert_eq!(round.on_promise(1, Ok(None)), Progress::Pending);
    }

    #[test]
    fn accept_is_refused_below_a_promise_and_never_twice_under_one_ballot() {
        let slot = Slot::default().prepare(b(2, 1)).unwrap();
        assert_eq!(slot.accept(b(1, 9), "x".into()).unwrap_err().seen, b(2, 1));
        // An accept without a prepare at this acceptor is fine (another quorum promised).
        let fresh = Slot::default().accept(b(4, 1), "y".into()).unwrap();
        assert_eq!(fresh.promise, Some(b(4, 1)));
        assert_eq!(fresh.prepare(b(4, 1)).unwrap_err().seen, b(4, 1));
    }
}
