//! Requirement coverage: every requirement id of `docs/api.md` must be named by at least one case.

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
    let mut by_requirement: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for case in cases {
        for r in &case.requirements {
            by_requirement
                .entry(r.as_str())
                .or_default()
                .push(case.id.clone());
        }
    }
    requirements()
        .into_iter()
        .map(|r| (r, by_requirement.remove(r).unwrap_or_default()))
        .collect()
}

/// Requirements named by cases but not defined in `docs/api.md`.
pub fn unknown(cases: &[Case]) -> Vec<(String, String)> {
    let known = requirements();
    cases
        .iter()
        .flat_map(|c| {
            c.requirements
                .iter()
                .filter(|r| !known.contains(&r.as_str()))
                .map(move |r| (c.id.clone(), r.clone()))
        })
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
