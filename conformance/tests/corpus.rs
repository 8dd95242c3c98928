//! The built-in corpus passes in process on every envelope, covers every requirement of
//! `docs/api.md`, and names only requirements that exist.
#![allow(clippy::unwrap_used, missing_docs)]

use paracell_conformance::{Envelope, Suite, report};
use std::collections::BTreeSet;

#[test]
fn the_built_in_corpus_passes_on_every_envelope() {
    let suite = Suite::built_in().unwrap();
    assert!(suite.cases.len() >= 150, "only {} cases", suite.cases.len());
    let reports = suite.run_in_process();
    let table = report::table(&reports, &Envelope::ALL);
    assert!(reports.iter().all(|r| r.passed()), "{table}");
    // Every envelope really ran (n/a only where the envelope cannot express the request).
    for envelope in Envelope::ALL {
        let ran = reports
            .iter()
            .filter(|r| r.outcomes.get(&envelope) == Some(&paracell_conformance::Outcome::Pass))
            .count();
        assert!(ran >= 150, "{} passed only {ran} cases", envelope.name());
    }
}

#[test]
fn every_requirement_is_covered_and_every_named_requirement_exists() {
    use paracell_conformance::coverage;
    assert!(
        coverage::requirements().len() >= 70,
        "docs/api.md lists only {} requirements",
        coverage::requirements().len()
    );
    let suite = Suite::built_in().unwrap();
    let mut ids = BTreeSet::new();
    for case in &suite.cases {
        assert!(ids.insert(case.id.clone()), "duplicate case id {}", case.id);
    }
    assert_eq!(
        coverage::unknown(&suite.cases),
        vec![],
        "cases name requirements docs/api.md does not define"
    );
    let missing: Vec<&str> = coverage::coverage(&suite.cases)
        .into_iter()
        .filter(|(_, c)| c.is_empty())
        .map(|(r, _)| r)
        .collect();
    assert!(
        missing.is_empty(),
        "requirements without a case: {missing:?}"
    );
}

/// The socket rules' named tests exist (a renamed test cannot leave its rule silently uncovered).
#[test]
fn every_socket_rule_names_a_test_that_exists() {
    let file = include_str!("../../examples/tests/hostile.rs");
    for (requirement, test) in paracell_conformance::coverage::SOCKET_TESTS {
        assert!(
            file.contains(&format!("fn {test}()")),
            "{requirement}: no test {test} in {}",
            paracell_conformance::coverage::SOCKET_TEST_FILE
        );
    }
}

/// Likewise the store contract's named functions.
#[test]
fn every_store_race_rule_names_a_contract_function_that_exists() {
    let file = include_str!("../../domain/src/testing/store_contract.rs");
    for (requirement, test) in paracell_conformance::coverage::STORE_CONTRACT_TESTS {
        assert!(
            file.contains(&format!("pub fn {test}(")),
            "{requirement}: no function {test} in {}",
            paracell_conformance::coverage::STORE_CONTRACT_FILE
        );
    }
}

#[test]
fn a_broken_cell_is_caught() {
    // The suite must fail when one envelope diverges: run the corpus on a cell whose limits differ
    // from the case's configuration on some envelopes only.
    use paracell_domain::memory;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let counter = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    let suite = Suite::built_in().unwrap().only(&["LIMIT-003"]);
    let reports = suite.run_with(move |mut config| {
        if seen.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
            config.limits.max_body_bytes = 1000;
        }
        let (cell, store) = memory::deterministic(config);
        (cell, Some(store))
    });
    assert!(!reports[0].passed());
    assert!(
        reports[0]
            .failures
            .iter()
            .any(|f| f.contains("differs from") || f.contains("expected status")),
        "{:?}",
        reports[0].failures
    );
}

#[test]
fn user_cases_load_from_a_directory_and_bad_cases_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("paracell-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mine.json"), r#"{"id":"MY-1","title":"t","steps":[{"request":{"method":"GET","path":"/health"},"expect":{"status":200}}]}"#).unwrap();
    let suite = Suite::from_dir(&dir).unwrap();
    assert_eq!(suite.cases.len(), 1);
    assert!(suite.run_in_process()[0].passed());
    std::fs::write(
        dir.join("bad.json"),
        r#"{"id":"X","title":"t","steps":[{"request":{"method":"GET","path":"/","bdy":"x"}}]}"#,
    )
    .unwrap();
    let err = Suite::from_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("bad.json") && err.contains("unknown field `bdy`"),
        "{err}"
    );
    std::fs::write(
        dir.join("bad.json"),
        r#"{"format":2,"id":"X","title":"t","steps":[{"request":{"method":"GET","path":"/"}}]}"#,
    )
    .unwrap();
    assert!(
        Suite::from_dir(&dir)
            .err()
            .unwrap()
            .to_string()
            .contains("format 2 is not supported")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
