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
        } else if endpoint.template.contains('{') {
            vec![204, 404] // a segment that cannot be an id is an unknown path
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

#[test]
fn the_currency_enum_is_exactly_what_the_cell_accepts() {
    // Schema-valid must mean accepted (Schemathesis checks it): the document lists every code the
    // domain takes, and nothing else.
    let accepted: Vec<String> = (b'A'..=b'Z')
        .flat_map(|a| (b'A'..=b'Z').flat_map(move |b| (b'A'..=b'Z').map(move |c| [a, b, c])))
        .map(|code| String::from_utf8(code.to_vec()).unwrap())
        .filter(|code| paracell_domain::Currency::parse(code).is_ok())
        .collect();
    let doc = openapi();
    let listed: Vec<String> =
        doc["components"]["schemas"]["NewTransaction"]["properties"]["currency"]["enum"]
            .as_sequence()
            .map(|s| s.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
    assert_eq!(listed, accepted, "enum: [{}]", accepted.join(", "));
}

/// The amount pattern for a currency with `minor` decimals: 1 to 12 integer digits without a
/// leading zero, or `0.` followed by up to `minor` decimals that are not all zero.
fn amount_pattern(minor: u8) -> String {
    let whole = "[1-9][0-9]{0,11}";
    if minor == 0 {
        return format!("^{whole}$");
    }
    let n = usize::from(minor);
    let below_one: Vec<String> = (0..n)
        .map(|zeros| {
            let rest = n - zeros - 1;
            let tail = match rest {
                0 => String::new(),
                1 => "[0-9]?".to_owned(),
                r => format!("[0-9]{{0,{r}}}"),
            };
            format!("{}[1-9]{tail}", "0".repeat(zeros))
        })
        .collect();
    format!(
        "^(?:{whole}(?:\\.[0-9]{{1,{n}}})?|0\\.(?:{}))$",
        below_one.join("|")
    )
}

#[test]
fn the_amount_patterns_are_exactly_what_the_cell_accepts_per_currency() {
    use paracell_domain::{Amount, Currency};
    // The document: one `if currency in [...] then amount matches ...` per number of decimals.
    let doc = openapi();
    let rules = doc["components"]["schemas"]["NewTransaction"]["allOf"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let mut groups: std::collections::BTreeMap<u8, Vec<String>> = Default::default();
    for code in (b'A'..=b'Z')
        .flat_map(|a| (b'A'..=b'Z').flat_map(move |b| (b'A'..=b'Z').map(move |c| [a, b, c])))
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
    {
        if let Ok(currency) = Currency::parse(&code) {
            groups.entry(currency.minor_units()).or_default().push(code);
        }
    }
    let documented: Vec<(Vec<String>, String)> = rules
        .iter()
        .map(|rule| {
            let codes = rule["if"]["properties"]["currency"]["enum"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let pattern = rule["then"]["properties"]["amount"]["pattern"]
                .as_str()
                .unwrap()
                .to_owned();
            (codes, pattern)
        })
        .collect();
    let expected: Vec<(Vec<String>, String)> = groups
        .iter()
        .map(|(minor, codes)| (codes.clone(), amount_pattern(*minor)))
        .collect();
    assert_eq!(
        documented,
        expected,
        "groups: {}",
        serde_json::to_string(&expected).unwrap()
    );
    // And the patterns agree with the parser on a spread of texts.
    for (minor, codes) in &groups {
        let currency = Currency::parse(&codes[0]).unwrap();
        let pattern = regex_lite::Regex::new(&amount_pattern(*minor)).unwrap();
        for text in [
            "0",
            "0.0",
            "0.00",
            "0.01",
            "0.1",
            "0.001",
            "0.0001",
            "0.00001",
            "1",
            "1.",
            "1.5",
            "1.25",
            "1.125",
            "1.0625",
            "1.03125",
            "01",
            "10",
            "999999999999",
            "1000000000000",
            "999999999999.9999",
            "-1",
            "1e3",
            " 1",
            "0.10",
            "0.100",
            "0.1000",
        ] {
            assert_eq!(
                pattern.is_match(text),
                Amount::parse(text, currency).is_ok(),
                "{text:?} in {} ({minor} decimals)",
                codes[0]
            );
        }
    }
}
