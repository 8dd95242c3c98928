//! The edge router under the suite: the corpus through the router on every envelope, the routing
//! vectors on every host, and proof that both checks can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use paracell_conformance::edge::vectors::{self, Behaviour};
use paracell_conformance::{Backend, Outcome, Suite};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn the_corpus_through_the_router_gives_every_client_the_cells_bytes() {
    let suite = Suite::built_in().unwrap();
    let reports = suite.run(&Backend::behind_edge());
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| r.failures.iter().map(move |f| format!("{}: {f}", r.id)))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Only the two-cell replication cases are not applicable (deliveries go cell to cell).
    let not_applicable: Vec<&str> = reports
        .iter()
        .filter(|r| {
            r.outcomes
                .values()
                .any(|o| matches!(o, Outcome::NotApplicable(_)))
        })
        .filter(|r| !r.id.starts_with("TENANT-AUTH"))
        .map(|r| r.id.as_str())
        .collect();
    let pairs = suite.cases.iter().filter(|c| c.standby.is_some()).count();
    assert_eq!(not_applicable.len(), pairs, "{not_applicable:?}");
    let passed = reports.iter().filter(|r| r.passed()).count();
    assert_eq!(passed, reports.len());
}

#[test]
fn every_routing_vector_passes_on_every_host() {
    let vectors = vectors::built_in().unwrap();
    assert!(vectors.len() >= 20);
    let reports = block_on(vectors::run_all(&vectors));
    assert_eq!(reports.len(), vectors.len() * 4);
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.failures
                .iter()
                .map(move |f| format!("{} on {}: {f}", r.id, r.host))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_vector_with_a_wrong_expectation_fails_on_every_host() {
    let mut vectors = vectors::built_in().unwrap();
    // EDGE-007: a keyed POST whose connection broke is retried once; claim it was not.
    let vector = vectors.iter_mut().find(|v| v.id == "EDGE-007").unwrap();
    vector.steps[0].expect.attempts = vec!["cell-a".into()];
    let reports = block_on(vectors::run_all(std::slice::from_ref(vector)));
    assert!(
        reports.iter().all(|r| !r.failures.is_empty()),
        "{reports:?}"
    );
    // And a cell that books on a reset must not be booked twice by the retry: make it reset forever.
    let mut vectors = vectors::built_in().unwrap();
    let vector = vectors.iter_mut().find(|v| v.id == "EDGE-007").unwrap();
    vector
        .cells
        .insert("cell-a".into(), vec![Behaviour::AnswerThenReset]);
    let reports = block_on(vectors::run_all(std::slice::from_ref(vector)));
    for r in &reports {
        assert!(
            r.failures.iter().any(|f| f.contains("status 502")),
            "{}: {:?}",
            r.host,
            r.failures
        );
        // Two attempts, one transaction: the retry was deduplicated by the cell.
        assert!(
            !r.failures
                .iter()
                .any(|f| f.contains("transactions (expected")),
            "{:?}",
            r.failures
        );
    }
}
