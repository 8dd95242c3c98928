//! Structured JSON logs for CloudWatch. Never logged: bodies, `Authorization`, idempotency keys,
//! query strings, other headers. Only the fields of [`request_done`].

use paracell_domain::http::ApiResponse;
use std::time::Duration;

/// Installs a JSON `tracing` subscriber (level from `RUST_LOG`, default `info`). Safe to call twice.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .without_time() // CloudWatch stamps every line
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs one answered request.
pub fn request_done(
    request_id: &str,
    source: crate::Source,
    response: &ApiResponse,
    latency: Duration,
) {
    tracing::info!(
        request_id,
        source = ?source,
        route = response.telemetry.route,
        tenant = response.telemetry.tenant.as_deref().unwrap_or("-"),
        status = response.status,
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    if response.status >= 500 || response.telemetry.cause.is_some() {
        // Every 5xx, and every failure swallowed on the way to an answer, says why: never a body, a
        // key or a credential, only what failed below (store detail, SDK code, transport error).
        tracing::error!(
            request_id,
            route = response.telemetry.route,
            tenant = response.telemetry.tenant.as_deref().unwrap_or("-"),
            status = response.status,
            cause = response.telemetry.cause.as_deref().unwrap_or("unknown"),
            "request failure"
        );
    }
}

/// Logs what a relay run did (counts only: never entries, keys or bodies); entries that could not
/// even be dead-lettered are an error.
pub fn relay_done(
    request_id: &str,
    source: &str,
    report: &paracell_domain::replication::relay::RelayReport,
) {
    let summary = report.summary();
    if report.failed.is_empty() {
        tracing::info!(request_id, source, summary, "relay");
    } else {
        tracing::error!(
            request_id,
            source,
            summary,
            "relay: entries will be retried"
        );
    }
}

/// Logs a relay failure that is not about one delivery (an unreadable record, a store error).
pub fn relay_problem(request_id: &str, what: &str, detail: &str) {
    tracing::error!(request_id, detail, "relay: {what}");
}
