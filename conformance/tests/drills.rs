//! The in-process drills hold on small seeded workloads (CI runs the larger ones from `.ci/run`).
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_conformance::drill::failover::{self, FailoverOptions};
use paracell_conformance::drill::{Options, events, replication};

#[test]
fn the_events_drill_holds_for_several_seeds() {
    for seed in [1, 2, 3] {
        let report = events::run(Options { writes: 300, seed });
        assert!(report.passed(), "{}", report.render("events drill"));
        assert_eq!(report.checks.len(), 10);
        let figure = |name: &str| {
            report
                .figures
                .iter()
                .find(|(n, _)| n.starts_with(name))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        // The faults were exercised: something was dead-lettered and replayed on each bus.
        let letters = figure("dead-lettered");
        assert!(
            !letters.starts_with("0 ") && !letters.contains("/ 0 "),
            "{letters}"
        );
    }
}

#[test]
fn the_replication_drill_holds_for_several_seeds() {
    // Through both adapters' trigger envelopes: DynamoDB Streams batches into the Lambda adapter's
    // relay, Cosmos DB change-feed invocations into the custom handler's, deliveries through the
    // peer's HTTP envelopes; every invocation must succeed and both cells end alike.
    for seed in [1, 2] {
        let report = replication::run(Options { writes: 150, seed });
        assert!(report.passed(), "{}", report.render("replication drill"));
        assert!(
            report.checks.len() >= 9,
            "{}",
            report.render("replication drill")
        );
    }
}

#[test]
fn the_failover_harness_holds_and_moves_the_tenant() {
    let report = failover::run(FailoverOptions {
        schedules: 40,
        writes: 40,
        seed: 11,
    });
    assert!(report.passed(), "{}", report.render("failover harness"));
    assert_eq!(report.checks.len(), 12);
}
