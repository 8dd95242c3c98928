//! Requirement coverage: every requirement id of `docs/api.md` must be named by at least one case
//! (or, for the edge router's own answers, one routing vector of `conformance/edge/vectors.json`;
//! or, for the rules of a server's own socket, one of the [`SOCKET_TESTS`]; or, for requests racing
//! in one store, one of the [`STORE_CONTRACT_TESTS`]).

use crate::case::Case;
use std::collections::BTreeMap;

/// `docs/api.md`, embedded when this crate was built.
pub const API_MD: &str = include_str!("../../docs/api.md");

/// The requirement ids of `docs/api.md`: the first column of its tables, in backticks, with a dot.
pub fn requirements() -> Vec<&'static str> {
    API_MD
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(id, _)| id))
        .filter(|id| id.contains('.') && !id.contains(' '))
        .collect()
}

/// Rules about a server's own socket — timers and the connection cap of the binaries that own one —
/// which no platform envelope carries, so no case can: each is covered by a named test that drives
/// the built binaries with real slow clients (`examples/tests/hostile.rs`). The suite checks that
/// each named test exists.
pub const SOCKET_TESTS: &[(&str, &str)] = &[
    (
        "server.limits",
        "silent_half_sent_and_idle_connections_are_closed",
    ),
    (
        "server.limits",
        "the_idle_timeout_closes_what_the_header_timer_does_not_cover",
    ),
    (
        "problem.request-timeout",
        "a_stalled_or_dawdling_body_is_answered_408_and_books_nothing",
    ),
    (
        "problem.server-busy",
        "connections_past_the_cap_are_answered_503_at_once",
    ),
];

/// The file holding the [`SOCKET_TESTS`].
pub const SOCKET_TEST_FILE: &str = "examples/tests/hostile.rs";

/// Rules about requests racing inside one store, which a case (one request at a time) cannot show:
/// each is covered by a function of the store contract that every store runs (memory, DynamoDB,
/// Cosmos DB). The suite checks that each named function exists.
pub const STORE_CONTRACT_TESTS: &[(&str, &str)] =
    &[("idempotency.concurrent", "concurrent_duplicates_book_once")];

/// The file holding the [`STORE_CONTRACT_TESTS`].
pub const STORE_CONTRACT_FILE: &str = "domain/src/testing/store_contract.rs";

/// Requirement → ids of the cases covering it (empty when uncovered), in document order.
pub fn coverage(cases: &[Case]) -> Vec<(&'static str, Vec<String>)> {
    let mut by_requirement: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, requirements) in named(cases) {
        for r in requirements {
            by_requirement.entry(r).or_default().push(id.clone());
        }
    }
    let named_tests = SOCKET_TESTS
        .iter()
        .map(|(r, test)| (r, SOCKET_TEST_FILE, test))
        .chain(
            STORE_CONTRACT_TESTS
                .iter()
                .map(|(r, test)| (r, STORE_CONTRACT_FILE, test)),
        );
    for (r, file, test) in named_tests {
        by_requirement
            .entry((*r).to_owned())
            .or_default()
            .push(format!("{file}::{test}"));
    }
    requirements()
        .into_iter()
        .map(|r| (r, by_requirement.remove(r).unwrap_or_default()))
        .collect()
}

/// Requirements named by cases (or routing vectors) but not defined in `docs/api.md`.
pub fn unknown(cases: &[Case]) -> Vec<(String, String)> {
    let known = requirements();
    named(cases)
        .into_iter()
        .flat_map(|(id, requirements)| {
            requirements
                .into_iter()
                .filter(|r| !known.contains(&r.as_str()))
                .map(move |r| (id.clone(), r))
        })
        .collect()
}

/// Every case and routing vector with the requirements it names.
fn named(cases: &[Case]) -> Vec<(String, Vec<String>)> {
    let vectors = crate::edge::vectors::built_in().unwrap_or_default();
    cases
        .iter()
        .map(|c| (c.id.clone(), c.requirements.clone()))
        .chain(vectors.into_iter().map(|v| (v.id, v.requirements)))
        .collect()
}

/// A Markdown table of the coverage.
pub fn table(cases: &[Case]) -> String {
    let mut out = String::from("| requirement | cases | examples |\n|---|---|---|\n");
    for (requirement, ids) in coverage(cases) {
        let examples: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
        out.push_str(&format!(
            "| `{requirement}` | {} | {} |\n",
            ids.len(),
            examples.join(", ")
        ));
    }
    out
}
