//! The workload's own conformance cases (`examples/maintenance/cases/`) through every envelope of
//! both clouds, in process: what a team runs in its CI.

use maintenance_requests::{MemoryRequests, router};
use paracell_conformance::Suite;
use paracell_domain::http::Workload;
use std::path::Path;
use std::sync::Arc;

#[test]
fn the_workload_answers_alike_on_every_envelope_of_both_clouds() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let suite = Suite::from_dir(&cases).unwrap_or_else(|e| panic!("{e}"));
    assert!(suite.cases.len() >= 5, "the cases are there");
    let reports = suite.run_workload(|| {
        Arc::new(Workload::new(
            "maintenance",
            router(MemoryRequests::shared()),
        ))
    });
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| r.failures.iter().map(move |f| format!("{}: {f}", r.id)))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(reports.iter().all(|r| r.passed()));
    // Every case ran on all nine envelopes (none was silently not applicable).
    for report in &reports {
        assert_eq!(report.outcomes.len(), 9, "{}", report.id);
        assert!(
            report
                .outcomes
                .values()
                .all(|o| *o == paracell_conformance::Outcome::Pass),
            "{}: {:?}",
            report.id,
            report.outcomes
        );
    }
}

#[test]
fn a_workload_that_differs_on_one_cloud_is_caught() {
    // The same router, but the Azure-hosted copies answer one field differently: the suite must
    // fail. (A fresh service per envelope: the factory cannot tell which envelope it serves, so
    // it alternates, which is enough to make some envelopes disagree with `direct`.)
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let suite = Suite::from_dir(&cases)
        .unwrap_or_else(|e| panic!("{e}"))
        .only(&["MNT-001"]);
    let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reports = suite.run_workload(move || {
        let n = built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store = MemoryRequests::shared();
        if n % 2 == 1 {
            // A divergent copy: it files one request before the case starts, so ids are shifted.
            store.create(
                "coop-1",
                "Z-9".into(),
                "seeded".into(),
                maintenance_requests::Priority::Low,
            );
        }
        Arc::new(Workload::new("maintenance", router(store)))
    });
    assert!(!reports[0].passed(), "a divergent workload passed");
}
