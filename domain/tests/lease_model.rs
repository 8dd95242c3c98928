//! The cell lease and the promotion it guards, model-checked exhaustively (stateright, breadth
//! first) at a small bound, running the domain's own code: the holder's [`LeaseHolder`] (deadline
//! from the renewal's send time, stop point, the ack rule), the promoter's [`LeaseWatch`], and the
//! register decisions ([`decide`]: renew, conditional revoke).
//!
//! The world: cell A is the tenant's primary at epoch 1 and renews its lease; a promoter watches the
//! lease and, once it may, revokes it and promotes cell B (epoch 2). Real time advances in ticks of
//! one second up to a bound. Every step may happen at any tick or never: a renewal may be applied
//! or lost, applied after A gave up on it, answered late; A's commits (the cell store cannot see the
//! time) may land and return arbitrarily late; the promoter may read the lease at any moment. Each
//! clock runs at a constant rate anywhere within ±ρ of true time (both extremes are initial states).
//! The register itself is taken as atomic here: its linearisability under message loss and
//! reordering is `quorum_model.rs`'s proof; composing them is the usual refinement argument.
//!
//! Invariants (`Always`):
//! * **no acknowledgement by the old primary once the new one has written** (two primaries never
//!   overlap in time: everything A acknowledged happened before B's first write);
//! * **a revoked lease stays revoked** (nothing renews it back);
//! * **the epoch never decreases**.
//!
//! Not vacuous (`Sometimes`): A acknowledges a write *and* B later writes; a commit landed in A's
//! store but was refused acknowledgement (the divergent tail reconciliation reports).
//!
//! Three deliberately broken variants must be caught: a holder without the ack rule (acknowledges a
//! commit whenever it returns), a holder that counts its lease from the renewal's answer instead of
//! its sending, and a promoter that does not wait out the lease.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::CellId;
use paracell_domain::placement::quorum::QuorumError;
use paracell_domain::placement::quorum::lease::{
    CellLease, LeaseChange, LeaseError, LeaseHolder, LeaseTiming, LeaseWatch, MayCommit, decide,
};
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::time::Duration;

/// Real time bound, in ticks of one second: past the earliest promotion (5 ticks after A's first
/// renewal is seen) with room for late returns. (8 ticks and 2 commits: 6.4 million states, about
/// 35 s in a debug build on 2 cores.)
const HORIZON: u8 = 8;
/// Commits A may start (each one can land and return at any later tick).
const COMMITS: usize = 2;
/// ρ: the largest the domain accepts (1 %), so the drift matters at this scale.
const DRIFT_PPM: u32 = 10_000;

fn timing() -> LeaseTiming {
    // L = 3 s, renew every 1 s, stop 1 s early, margin 1 s: holder 2.97 s, stop 1.97 s, promoter
    // 4.03 s — the default shape (three renewals per lease) at a quarter scale.
    LeaseTiming::new(
        Duration::from_secs(3),
        Duration::from_secs(1),
        DRIFT_PPM,
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .unwrap()
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Commit {
    landed: bool,
    returned: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Renewal {
    /// A's monotonic reading when it sent it.
    sent: Duration,
    /// The register's answer, once the renewal was applied.
    applied: Option<LeaseChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    now: u8,
    /// A's and the promoter's clock rates, in milliseconds per real second.
    rates: (u64, u64),
    /// The cell's lease register and the tenant's placement epoch.
    lease: Option<CellLease>,
    epoch: u64,
    ever_revoked: bool,
    /// Cell A's process.
    holder: LeaseHolder,
    renewal: Option<Renewal>,
    /// A renewal A gave up on that may still be applied.
    ghost: bool,
    commits: Vec<Commit>,
    /// The latest real time A acknowledged a write at.
    last_ack: Option<u8>,
    /// Commits that landed and were refused acknowledgement (the divergent tail).
    tail: u8,
    /// The promoter.
    watch: LeaseWatch,
    /// When B, the new primary, first wrote.
    b_wrote: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Tick,
    SendRenewal,
    ApplyRenewal,
    ApplyGhost,
    AnswerRenewal,
    StartCommit,
    Land(usize),
    Return(usize),
    Observe,
    RevokeAndPromote,
    NewPrimaryWrites,
}

#[derive(Clone, Copy)]
struct LeaseModel {
    /// The ack rule (false: a deliberately broken holder that acknowledges whatever returns).
    ack_rule: bool,
    /// The promoter's wait (false: a deliberately broken promoter that revokes on sight).
    promoter_waits: bool,
    /// A deliberately broken holder that counts its lease from the renewal's *answer*.
    from_answer: bool,
}

fn cell_a() -> CellId {
    CellId::parse("cell-a").unwrap()
}

impl World {
    fn a_clock(&self) -> Duration {
        Duration::from_millis(u64::from(self.now) * self.rates.0)
    }

    fn promoter_clock(&self) -> Duration {
        Duration::from_millis(u64::from(self.now) * self.rates.1)
    }
}

impl Model for LeaseModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        let slow = 1_000 - u64::from(DRIFT_PPM) / 1_000;
        let fast = 1_000 + u64::from(DRIFT_PPM) / 1_000;
        // The two extremes: a slow holder with a fast promoter is the dangerous one.
        [(slow, fast), (fast, slow)]
            .into_iter()
            .map(|rates| World {
                now: 0,
                rates,
                lease: None,
                epoch: 1,
                ever_revoked: false,
                holder: LeaseHolder::new(timing()),
                renewal: None,
                ghost: false,
                commits: Vec::new(),
                last_ack: None,
                tail: 0,
                watch: LeaseWatch::new(timing()),
                b_wrote: None,
            })
            .collect()
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        if w.now < HORIZON {
            actions.push(Action::Tick);
        }
        match &w.renewal {
            None if w.holder.renewal_due(w.a_clock()) => actions.push(Action::SendRenewal),
            None => {}
            Some(r) => {
                if r.applied.is_none() {
                    actions.push(Action::ApplyRenewal);
                }
                actions.push(Action::AnswerRenewal);
            }
        }
        if w.ghost {
            actions.push(Action::ApplyGhost);
        }
        if w.commits.len() < COMMITS
            && matches!(w.holder.may_commit(w.a_clock()), MayCommit::Yes(_))
        {
            actions.push(Action::StartCommit);
        }
        for (i, c) in w.commits.iter().enumerate() {
            if !c.landed {
                actions.push(Action::Land(i));
            } else if !c.returned {
                actions.push(Action::Return(i));
            }
        }
        if w.epoch == 1 {
            actions.push(Action::Observe);
            let may = if self.promoter_waits {
                w.watch.expired(w.promoter_clock()).is_some()
            } else {
                w.lease.is_some()
            };
            if may {
                actions.push(Action::RevokeAndPromote);
            }
        } else if w.b_wrote.is_none() {
            actions.push(Action::NewPrimaryWrites);
        }
    }

    fn next_state(&self, last: &World, action: Action) -> Option<World> {
        let mut w = last.clone();
        match action {
            Action::Tick => w.now += 1,
            Action::SendRenewal => {
                let sent = w.a_clock();
                w.holder.sending(sent);
                w.renewal = Some(Renewal {
                    sent,
                    applied: None,
                });
            }
            Action::ApplyRenewal => {
                let change = apply_renewal(&mut w.lease);
                w.renewal.as_mut()?.applied = Some(change);
            }
            Action::ApplyGhost => {
                apply_renewal(&mut w.lease);
                w.ghost = false;
            }
            Action::AnswerRenewal => {
                let r = w.renewal.take()?;
                let outcome = match r.applied {
                    Some(change) => Ok(change),
                    None => {
                        // A timed out; the request may still be applied later.
                        w.ghost = true;
                        Err(LeaseError::Quorum(QuorumError::Unavailable(vec![])))
                    }
                };
                let from = if self.from_answer {
                    w.a_clock()
                } else {
                    r.sent
                };
                w.holder.on_renewal(from, &outcome);
            }
            Action::StartCommit => w.commits.push(Commit {
                landed: false,
                returned: false,
            }),
            Action::Land(i) => w.commits[i].landed = true,
            Action::Return(i) => {
                w.commits[i].returned = true;
                if !self.ack_rule || w.holder.acknowledge(w.a_clock()) {
                    w.last_ack = Some(w.now);
                } else {
                    w.tail += 1;
                }
            }
            Action::Observe => {
                let lease = w.lease.clone()?;
                let clock = w.promoter_clock();
                w.watch.observe(&lease, clock);
            }
            Action::RevokeAndPromote => {
                let seen = if self.promoter_waits {
                    w.watch.expired(w.promoter_clock())?
                } else {
                    w.lease.as_ref()?.seq
                };
                // Refused (the cell renewed since): nothing changes; the promoter watches on.
                let revoked = decide::revoke(w.lease.as_ref(), seen).ok()?;
                w.lease = Some(revoked);
                w.ever_revoked = true;
                w.epoch = 2;
            }
            Action::NewPrimaryWrites => w.b_wrote = Some(w.now),
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "no acknowledgement by the old primary once the new one has written",
                |_, w: &World| match (w.last_ack, w.b_wrote) {
                    (Some(ack), Some(wrote)) => ack < wrote,
                    _ => true,
                },
            ),
            Property::always("a revoked lease stays revoked", |_, w: &World| {
                !w.ever_revoked || w.lease.as_ref().is_some_and(|l| l.revoked)
            }),
            Property::always("the epoch never decreases", |_, w: &World| w.epoch >= 1),
            Property::sometimes(
                "the old primary acknowledged, then the new one wrote",
                |_, w: &World| w.last_ack.is_some() && w.b_wrote.is_some(),
            ),
            Property::sometimes(
                "a landed commit was refused acknowledgement",
                |_, w: &World| w.tail > 0,
            ),
        ]
    }
}

fn apply_renewal(lease: &mut Option<CellLease>) -> LeaseChange {
    match decide::renew(lease.as_ref(), &cell_a()) {
        Ok(renewed) => {
            *lease = Some(renewed.clone());
            LeaseChange::Applied(renewed)
        }
        Err(reason) => LeaseChange::Refused {
            current: lease.clone(),
            reason,
        },
    }
}

#[test]
fn the_lease_never_lets_two_primaries_overlap() {
    let checker = LeaseModel {
        ack_rule: true,
        promoter_waits: true,
        from_answer: false,
    }
    .checker()
    .threads(2)
    .spawn_bfs()
    .join();
    checker.assert_properties();
    let states = checker.unique_state_count();
    eprintln!("lease model: {states} states, every invariant held");
    // The bound explored, pinned: a change that shrinks the search (and the proof) is noticed.
    assert_eq!(states, 6_360_138);
}

/// Runs a deliberately broken variant until it breaks the overlap invariant; returns the length of
/// the counterexample (panics, naming `what`, if the model check misses it).
fn overlap_found(broken: LeaseModel, what: &str) -> usize {
    let checker = broken
        .checker()
        .finish_when(HasDiscoveries::AnyFailures)
        .threads(2)
        .spawn_bfs()
        .join();
    let path = checker
        .discovery("no acknowledgement by the old primary once the new one has written")
        .unwrap_or_else(|| panic!("{what} must be caught"));
    let steps = path.into_actions().len();
    eprintln!("{what}: two primaries overlap in {steps} steps");
    steps
}

#[test]
fn a_holder_without_the_ack_rule_is_caught() {
    let broken = LeaseModel {
        ack_rule: false,
        promoter_waits: true,
        from_answer: false,
    };
    assert!(overlap_found(broken, "a holder without the ack rule") > 0);
}

#[test]
fn a_promoter_that_does_not_wait_is_caught() {
    let broken = LeaseModel {
        ack_rule: true,
        promoter_waits: false,
        from_answer: false,
    };
    assert!(overlap_found(broken, "a promoter that does not wait") > 0);
}

#[test]
fn a_lease_counted_from_the_answer_is_caught() {
    let broken = LeaseModel {
        ack_rule: true,
        promoter_waits: true,
        from_answer: true,
    };
    assert!(overlap_found(broken, "a lease counted from the renewal's answer") > 0);
}
