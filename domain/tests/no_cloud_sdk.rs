//! Rule 1, enforced: the domain depends on no cloud SDK, no async runtime and no HTTP stack. Read
//! from the resolved dependency graph (`cargo metadata`), so a transitive dependency counts too.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeSet, HashMap};

/// Crate-name prefixes the domain must never reach.
const BANNED: [&str; 9] = [
    "aws-",
    "azure",
    "lambda_",
    "tokio",
    "hyper",
    "reqwest",
    "axum",
    "tower",
    "async-std",
];

/// Crates a banned prefix would catch that are allowed: `tower-service` is the `Service` trait alone
/// (no runtime, no dependencies), the interface a workload is written against
/// (`paracell_domain::http::Workload`).
const ALLOWED: [&str; 1] = ["tower-service"];

#[test]
fn the_domain_reaches_no_cloud_sdk_runtime_or_http_stack() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let domain = names
        .iter()
        .find(|(_, name)| **name == "paracell-domain")
        .map(|(id, _)| *id)
        .unwrap();
    // The closure of normal (non-dev, non-build) dependencies.
    let mut reached = BTreeSet::new();
    let mut queue = vec![domain];
    while let Some(id) = queue.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && reached.insert(names[dep_id]) {
                queue.push(dep_id);
            }
        }
    }
    assert!(
        reached.contains("serde_json"),
        "the graph was not read: {reached:?}"
    );
    let banned: Vec<&&str> = reached
        .iter()
        .filter(|name| BANNED.iter().any(|b| name.starts_with(b)) && !ALLOWED.contains(name))
        .collect();
    assert!(banned.is_empty(), "the domain depends on {banned:?}");
    // The allowed trait crate stays dependency-free (else it would bring a runtime in).
    for allowed in ALLOWED.iter().filter(|a| reached.contains(*a)) {
        let id = names
            .iter()
            .find(|(_, n)| *n == allowed)
            .map(|(id, _)| *id)
            .unwrap();
        assert!(
            nodes[id]["deps"].as_array().unwrap().is_empty(),
            "{allowed} gained dependencies"
        );
    }
}
