//! The contract every quorum [`Acceptor`] must meet, written once and run against each store that
//! keeps one (memory here; DynamoDB, Cosmos DB and the witness instantiate it with their own).
//!
//! ```
//! use paracell_domain::placement::quorum::MemoryAcceptor;
//! use paracell_domain::testing::{acceptor_contract, store_contract::ThreadExecutor};
//! acceptor_contract::run_all(&ThreadExecutor, &|| std::sync::Arc::new(MemoryAcceptor::new("test")));
//! ```

use super::store_contract::Executor;
use crate::placement::quorum::{Accepted, Acceptor, AcceptorError, Ballot, Refused};
use std::sync::Arc;

/// Builds a fresh, empty acceptor.
pub type AcceptorFactory<'a> = &'a dyn Fn() -> Arc<dyn Acceptor>;

fn b(counter: u64, proposer: u64) -> Ballot {
    Ballot { counter, proposer }
}

fn refused(seen: Ballot) -> AcceptorError {
    AcceptorError::Refused(Refused { seen })
}

/// Every check below.
pub fn run_all(rt: &impl Executor, make: AcceptorFactory<'_>) {
    prepare_promises_only_higher_ballots(rt, make);
    accept_keeps_the_value_and_refuses_below_the_promise(rt, make);
    registers_are_independent(rt, make);
    racing_prepares_leave_the_highest_promise(rt, make);
    peek_reads_without_writing(rt, make);
}

/// `peek` returns what the acceptor accepted (nothing on an empty register) and writes nothing: a
/// ballot it has not promised is still promised afterwards.
pub fn peek_reads_without_writing(rt: &impl Executor, make: AcceptorFactory<'_>) {
    let acceptor = make();
    assert_eq!(rt.block_on(acceptor.peek("r")), Ok(None));
    rt.block_on(acceptor.accept("r", b(3, 1), "three"))
        .unwrap_or_else(|e| panic!("accept on an empty register: {e}"));
    let seen = rt.block_on(acceptor.peek("r"));
    assert_eq!(
        seen,
        Ok(Some(Accepted {
            ballot: b(3, 1),
            value: "three".into()
        }))
    );
    assert_eq!(rt.block_on(acceptor.peek("other")), Ok(None));
    assert!(
        rt.block_on(acceptor.prepare("r", b(4, 1))).is_ok(),
        "peeking promised nothing"
    );
}

/// A prepare on an empty register promises and returns nothing; the same or a lower ballot is
/// then refused, naming the ballot seen.
pub fn prepare_promises_only_higher_ballots(rt: &impl Executor, make: AcceptorFactory<'_>) {
    let acceptor = make();
    assert_eq!(rt.block_on(acceptor.prepare("r", b(2, 1))), Ok(None));
    assert_eq!(
        rt.block_on(acceptor.prepare("r", b(2, 1))),
        Err(refused(b(2, 1))),
        "a ballot is never promised twice"
    );
    assert_eq!(
        rt.block_on(acceptor.prepare("r", b(1, 9))),
        Err(refused(b(2, 1)))
    );
    assert_eq!(rt.block_on(acceptor.prepare("r", b(2, 2))), Ok(None));
}

/// Accept stores the value under its ballot (with or without a prepare at this acceptor), a later
/// prepare returns it, and an accept below the promise changes nothing.
pub fn accept_keeps_the_value_and_refuses_below_the_promise(
    rt: &impl Executor,
    make: AcceptorFactory<'_>,
) {
    let acceptor = make();
    rt.block_on(acceptor.accept("r", b(1, 1), "one"))
        .unwrap_or_else(|e| panic!("accept on an empty register: {e}"));
    assert_eq!(
        rt.block_on(acceptor.accept("r", b(1, 1), "again")),
        Err(refused(b(1, 1))),
        "one value per ballot"
    );
    assert_eq!(
        rt.block_on(acceptor.prepare("r", b(3, 1))),
        Ok(Some(Accepted {
            ballot: b(1, 1),
            value: "one".into()
        }))
    );
    assert_eq!(
        rt.block_on(acceptor.accept("r", b(2, 1), "stale")),
        Err(refused(b(3, 1)))
    );
    rt.block_on(acceptor.accept("r", b(3, 1), "three"))
        .unwrap_or_else(|e| panic!("accept at the promise: {e}"));
    assert_eq!(
        rt.block_on(acceptor.prepare("r", b(4, 1))),
        Ok(Some(Accepted {
            ballot: b(3, 1),
            value: "three".into()
        })),
        "the refused accept left nothing behind"
    );
}

/// Each register (one per tenant) has its own promise and value.
pub fn registers_are_independent(rt: &impl Executor, make: AcceptorFactory<'_>) {
    let acceptor = make();
    rt.block_on(acceptor.prepare("placement/coop-1", b(5, 1)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(acceptor.prepare("placement/coop-2", b(1, 1))),
        Ok(None)
    );
    rt.block_on(acceptor.accept("placement/coop-2", b(1, 1), "two"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rt.block_on(acceptor.prepare("placement/coop-1", b(6, 1))),
        Ok(None)
    );
}

/// Prepares racing from several threads behave as one compare-and-set each: the highest ballot is
/// always promised, every refusal names a higher ballot than its own, and the register ends on the
/// highest promise.
pub fn racing_prepares_leave_the_highest_promise(rt: &impl Executor, make: AcceptorFactory<'_>) {
    let acceptor = make();
    let ballots: Vec<Ballot> = (1..=8).map(|p| b(1, p)).collect();
    let results: Vec<(Ballot, Result<Option<Accepted>, AcceptorError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = ballots
            .iter()
            .map(|&ballot| {
                let acceptor = Arc::clone(&acceptor);
                s.spawn(move || (ballot, rt.block_on(acceptor.prepare("r", ballot))))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a prepare panicked")))
            .collect()
    });
    for (ballot, result) in &results {
        match result {
            Ok(_) => {}
            Err(AcceptorError::Refused(r)) => {
                assert!(r.seen > *ballot, "{ballot} refused by a lower {}", r.seen)
            }
            Err(e) => panic!("prepare {ballot}: {e}"),
        }
    }
    assert!(
        results
            .iter()
            .any(|(ballot, r)| *ballot == b(1, 8) && r.is_ok()),
        "the highest ballot is always promised"
    );
    assert_eq!(
        rt.block_on(acceptor.prepare("r", b(1, 8))),
        Err(refused(b(1, 8)))
    );
}
