//! What the adapters log, read as an operator and as an auditor would: the whole corpus (fault cases
//! included) and the corpus through the edge router run with every log event captured at `TRACE`.
//!
//! - No secret ever appears: `Idempotency-Key` values, `Authorization`, `X-MS-CLIENT-PRINCIPAL`,
//!   request bodies, the cells' signing secrets.
//! - Every 5xx an adapter answered has its `request failure` event at `error` with a cause.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_conformance::drill::trace::capture_json_logs;
use paracell_conformance::{Backend, Suite};

fn captured_run(backend: &Backend) -> String {
    let suite = Suite::built_in().unwrap();
    // The suite runs on a current-thread runtime: every event of every adapter lands here.
    let (reports, logs) = capture_json_logs(tracing::Level::TRACE, || suite.run(backend));
    assert!(reports.iter().all(|r| r.passed()));
    logs
}

/// Every value a log must never show, from the corpus's own requests.
fn secrets() -> Vec<String> {
    let suite = Suite::built_in().unwrap();
    let mut secrets = vec![
        paracell_conformance::pairs::PAIR_SECRET.to_owned(),
        paracell_conformance::pairs::STRANGER_SECRET.to_owned(),
    ];
    for case in &suite.cases {
        for step in &case.steps {
            let Some(request) = &step.request else {
                continue;
            };
            for (name, value) in &request.headers {
                let name = name.to_ascii_lowercase();
                if matches!(
                    name.as_str(),
                    "idempotency-key" | "authorization" | "x-ms-client-principal"
                ) && !value.trim().is_empty()
                {
                    secrets.push(value.clone());
                }
            }
            if let Some(json) = &request.body_json {
                secrets.push(json.to_string());
            }
            if let Some(body) = &request.body
                && body.len() >= 8
            {
                secrets.push(body.clone());
            }
        }
    }
    // One- and two-character keys ("a", "3") cannot be told from any other token of a log line.
    secrets.retain(|s| s.len() >= 3);
    secrets.sort();
    secrets.dedup();
    secrets
}

/// Whether `secret` appears in `logs` as a whole token (a key `k-1` must not match inside
/// `bank-12`, but must match in `"k-1"` or `=k-1,`).
fn appears(logs: &str, secret: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'));
    logs.match_indices(secret).any(|(at, _)| {
        boundary(logs[..at].chars().next_back())
            && boundary(logs[at + secret.len()..].chars().next())
    })
}

fn check(logs: &str) {
    assert!(
        logs.lines().count() > 1_000,
        "the adapters logged almost nothing: the capture is broken"
    );
    let secrets = secrets();
    assert!(
        secrets.len() > 100,
        "the corpus's keys and bodies were not collected"
    );
    let leaked: Vec<&String> = secrets.iter().filter(|s| appears(logs, s)).collect();
    assert!(leaked.is_empty(), "secrets in the logs: {leaked:?}");

    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |e: &serde_json::Value| e["fields"]["status"].as_u64().unwrap_or(0);
    let failing_requests = events
        .iter()
        .filter(|e| e["fields"]["message"] == "request" && status(e) >= 500)
        .count();
    let explained = events
        .iter()
        .filter(|e| {
            e["fields"]["message"] == "request failure"
                && e["level"] == "ERROR"
                && status(e) >= 500
                && e["fields"]["cause"]
                    .as_str()
                    .is_some_and(|c| c != "unknown" && !c.is_empty())
        })
        .count();
    assert!(
        failing_requests > 0,
        "the corpus's fault cases answered no 5xx"
    );
    assert_eq!(
        explained, failing_requests,
        "every 5xx needs one error event with its cause"
    );
}

#[test]
fn no_secret_is_logged_and_every_5xx_explains_itself() {
    check(&captured_run(&Backend::in_process()));
}

#[test]
fn the_same_through_the_edge_router() {
    check(&captured_run(&Backend::behind_edge()));
}

#[test]
fn the_scan_finds_a_leaked_key() {
    let logs = r#"{"fields":{"message":"request","key":"k-1"}}"#;
    assert!(appears(logs, "k-1"));
    assert!(!appears(r#"{"fields":{"account":"bank-12"}}"#, "k-1"));
}

#[test]
fn one_trace_id_follows_a_create_from_an_aws_cell_to_its_azure_standby() {
    let run = paracell_conformance::drill::trace::run(3);
    assert!(run.report.passed(), "{}", run.report.render("trace drill"));
    // The request line, the relay's line and the standby's apply line, at least.
    assert!(run.lines.len() >= 3, "{:#?}", run.lines);
    assert!(run.lines.iter().all(|l| l.contains(&run.trace_id)));
}
