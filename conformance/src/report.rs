//! Reports: a table for people, JSON for tools, JUnit for CI systems.

use crate::envelopes::Envelope;
use crate::runner::{CaseReport, Outcome};
use std::fmt::Write as _;

/// The summary line: `N passed, M failed`.
pub fn summary(reports: &[CaseReport]) -> String {
    let passed = reports.iter().filter(|r| r.passed()).count();
    format!("{passed} passed, {} failed", reports.len() - passed)
}

fn short(envelope: Envelope) -> &'static str {
    match envelope {
        Envelope::Direct => "direct",
        Envelope::AwsApigwV1 => "v1",
        Envelope::AwsApigwV2 => "v2",
        Envelope::AwsApigwV2Stage => "v2-stg",
        Envelope::AwsFunctionUrl => "fn-url",
        Envelope::AwsAlb => "alb",
        Envelope::AwsAlbMultivalue => "alb-mv",
        Envelope::AzurePayload => "az-pay",
        Envelope::AzureForwarding => "az-fwd",
    }
}

/// A case × envelope table, the first divergence of every failed case, and the summary line.
pub fn table(reports: &[CaseReport], envelopes: &[Envelope]) -> String {
    let width = reports.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:width$}", "case");
    for e in envelopes {
        let _ = write!(out, " {:>7}", short(*e));
    }
    out.push('\n');
    for report in reports {
        let _ = write!(out, "{:width$}", report.id);
        for e in envelopes {
            let cell = match report.outcomes.get(e) {
                Some(Outcome::Pass) => "ok",
                Some(Outcome::Fail) => "FAIL",
                Some(Outcome::NotApplicable(_)) => "n/a",
                None => "-",
            };
            let _ = write!(out, " {cell:>7}");
        }
        if !report.facts.is_empty() {
            let facts: Vec<&str> = report.facts.iter().map(|(f, _)| f.name()).collect();
            let _ = write!(out, "  (facts: {})", facts.join(", "));
        }
        out.push('\n');
    }
    let failed: Vec<&CaseReport> = reports.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        out.push_str("\nFailures:\n");
        for report in failed {
            let _ = writeln!(out, "{} — {}", report.id, report.title);
            for failure in &report.failures {
                let _ = writeln!(out, "  {failure}");
            }
        }
    }
    let na: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.outcomes.iter().filter_map(move |(e, o)| match o {
                Outcome::NotApplicable(why) => Some(format!("{} on {}: {why}", r.id, e.name())),
                _ => None,
            })
        })
        .collect();
    if !na.is_empty() {
        let _ = writeln!(out, "\nNot applicable ({}):", na.len());
        for line in na {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "\n{}", summary(reports));
    out
}

/// Machine-readable results.
pub fn json(reports: &[CaseReport]) -> String {
    let cases: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let outcomes: serde_json::Map<String, serde_json::Value> = r
                .outcomes
                .iter()
                .map(|(e, o)| {
                    let v = match o {
                        Outcome::Pass => serde_json::json!("pass"),
                        Outcome::Fail => serde_json::json!("fail"),
                        Outcome::NotApplicable(why) => serde_json::json!({"not_applicable": why}),
                    };
                    (e.name().to_owned(), v)
                })
                .collect();
            serde_json::json!({
                "id": r.id, "title": r.title, "requirements": r.requirements, "passed": r.passed(),
                "envelopes": outcomes, "failures": r.failures,
                "facts": r.facts.iter().map(|(f, es)| serde_json::json!({"fact": f.name(), "envelopes": es.iter().map(|e| e.name()).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let passed = reports.iter().filter(|r| r.passed()).count();
    serde_json::to_string_pretty(
        &serde_json::json!({"passed": passed, "failed": reports.len() - passed, "cases": cases}),
    )
    .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one test case per (case, envelope).
pub fn junit(reports: &[CaseReport]) -> String {
    let tests: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    let failures: usize = reports
        .iter()
        .map(|r| r.outcomes.values().filter(|o| **o == Outcome::Fail).count())
        .sum();
    let skipped: usize = reports
        .iter()
        .map(|r| {
            r.outcomes
                .values()
                .filter(|o| matches!(o, Outcome::NotApplicable(_)))
                .count()
        })
        .sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"paracell-conformance\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\">\n"
    );
    for r in reports {
        for (e, o) in &r.outcomes {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{}\">",
                xml_escape(&r.id),
                e.name()
            );
            match o {
                Outcome::Pass => {}
                Outcome::Fail => {
                    let mine: Vec<&String> = r
                        .failures
                        .iter()
                        .filter(|f| f.starts_with(e.name()))
                        .collect();
                    let text = mine
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let _ = write!(
                        out,
                        "<failure message=\"{}\">{}</failure>",
                        xml_escape(mine.first().map_or("failed", |f| f.as_str())),
                        xml_escape(&text)
                    );
                }
                Outcome::NotApplicable(why) => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml_escape(why));
                }
            }
            out.push_str("</testcase>\n");
        }
    }
    out.push_str("</testsuite>\n");
    out
}
