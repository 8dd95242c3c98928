//! The outage drill as a test: every scenario from each home cloud passes its checks, and the
//! failovers meet the RTO target on virtual time (`paracell-conformance drill outage` prints the
//! same report).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_conformance::drill::outage::{OutageOptions, run};

#[test]
fn every_outage_scenario_passes_from_both_homes() {
    let (report, rows) = run(OutageOptions { seed: 1 });
    assert!(report.passed(), "{}", report.render("outage drill"));
    for home in ["aws", "azure"] {
        for scenario in ["1 ", "2 ", "3 ", "4 ", "4b ", "6 ", "7 "] {
            let row = rows
                .iter()
                .find(|r| r.home == home && r.scenario.starts_with(scenario))
                .unwrap_or_else(|| panic!("scenario {scenario} from {home} ran"));
            assert!(row.checks.len() >= 5, "{row:?}");
        }
    }
    // Failovers happened and lost exactly what was reported; the steady scenarios moved nothing.
    for row in &rows {
        match row.scenario.as_bytes()[0] {
            b'1' | b'6' | b'7' => assert!(row.rto_ms.is_some_and(|r| r <= 22_000), "{row:?}"),
            b'3' => assert_eq!((row.rto_ms, row.lost), (None, 0), "{row:?}"),
            _ => {}
        }
    }
}
