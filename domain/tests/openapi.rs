//! `docs/openapi.yaml` and `docs/api.md` describe exactly what the router and problem types do.
#![allow(clippy::unwrap_used)]

use paracell_domain::http::ProblemType;
use paracell_domain::http::router::ENDPOINTS;
use paracell_domain::validation::ViolationCode;
use serde_yaml_ng::Value;

fn openapi() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn statuses(operation: &Value) -> Vec<u16> {
    let mut s: Vec<u16> = operation["responses"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().parse().unwrap())
        .collect();
    s.sort_unstable();
    s
}

#[test]
fn every_route_method_and_status_is_documented_and_nothing_else() {
    let doc = openapi();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let paths = doc["paths"].as_mapping().unwrap();
    let mut documented: Vec<&str> = paths.keys().map(|k| k.as_str().unwrap()).collect();
    let mut routed: Vec<&str> = ENDPOINTS.iter().map(|e| e.template).collect();
    documented.sort_unstable();
    routed.sort_unstable();
    assert_eq!(
        documented, routed,
        "paths in openapi.yaml differ from the router"
    );

    for endpoint in ENDPOINTS {
        let item = &paths[endpoint.template];
        let method = endpoint.method.to_ascii_lowercase();
        let mut expected: Vec<u16> = endpoint.statuses.to_vec();
        expected.push(405);
        if !["/health", "/v1/transactions", "/v1/replication/entries"].contains(&endpoint.template)
        {
            expected.push(404);
        }
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(
            statuses(&item[method.as_str()]),
            expected,
            "{} {}",
            endpoint.method,
            endpoint.template
        );
        let options = if endpoint.template == "/v1/replication/entries" {
            vec![200, 204] // the CloudEvents webhook handshake
        } else {
            vec![204]
        };
        assert_eq!(
            statuses(&item["options"]),
            options,
            "OPTIONS {}",
            endpoint.template
        );
        let mut allowed: Vec<String> = item
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_ascii_uppercase())
            .filter(|k| k != "PARAMETERS")
            .collect();
        allowed.sort();
        let mut allow: Vec<String> = endpoint.allow.split(", ").map(str::to_owned).collect();
        allow.sort();
        assert_eq!(
            allowed, allow,
            "operations of {} differ from its Allow header",
            endpoint.template
        );
        if endpoint.method == "GET" {
            let head: Vec<u16> = expected.iter().copied().filter(|s| *s != 405).collect();
            assert_eq!(statuses(&item["head"]), head, "HEAD {}", endpoint.template);
        }
    }
}

#[test]
fn every_problem_type_and_violation_code_is_documented() {
    let doc = openapi();
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    let types: Vec<&str> = problem["type"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let api_md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    assert_eq!(types.len(), ProblemType::ALL.len());
    for kind in ProblemType::ALL {
        assert!(
            types.contains(&kind.uri().as_str()),
            "{} missing from openapi.yaml",
            kind.uri()
        );
        let row = format!(
            "| `problem.{}` | {} | `{}` |",
            kind.slug(),
            kind.status(),
            kind.slug()
        );
        assert!(api_md.contains(&row), "docs/api.md lacks the row {row}");
    }
    let codes: Vec<&str> = problem["errors"]["items"]["properties"]["code"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let variants: Vec<&str> = ViolationCode::ALL.iter().map(|c| c.as_str()).collect();
    for code in ViolationCode::ALL {
        assert_eq!(
            serde_json::to_value(code).unwrap(),
            code.as_str(),
            "as_str and the serde name agree"
        );
    }
    assert_eq!(
        codes, variants,
        "violation codes in openapi.yaml differ from ViolationCode"
    );
    for code in &codes {
        assert!(
            api_md.contains(&format!("`{code}`")),
            "docs/api.md does not mention the code {code}"
        );
    }
}
