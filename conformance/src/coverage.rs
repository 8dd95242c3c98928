//! Requirement coverage: every requirement id of `docs/api.md` must be named by at least one case
//! (or, for the edge router's own answers, one routing vector of `conformance/edge/vectors.json`).

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

/// Requirement → ids of the cases covering it (empty when uncovered), in document order.
pub fn coverage(cases: &[Case]) -> Vec<(&'static str, Vec<String>)> {
    let mut by_requirement: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, requirements) in named(cases) {
        for r in requirements {
            by_requirement.entry(r).or_default().push(id.clone());
        }
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
