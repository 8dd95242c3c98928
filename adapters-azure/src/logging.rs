//! Structured JSON logs. Never logged: bodies, `Authorization`, `x-functions-key`, the `code` query
//! parameter, `X-MS-CLIENT-PRINCIPAL`, idempotency keys. Only the fields below are.

use paracell_domain::http::ApiResponse;
use std::time::Duration;

/// The JSON `tracing` subscriber this cloud's log service expects (level from `RUST_LOG`, default
/// `info`), built but not installed: a library never installs a global subscriber, the binary does.
///
/// ```no_run
/// tracing::subscriber::set_global_default(paracell_azure::logging::subscriber())
///     .expect("no subscriber installed yet");
/// ```
pub fn subscriber() -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .finish();
    // With the `otlp` feature and an OTLP endpoint configured, every event is also kept for export
    // (`paracell_domain::observability::otlp`); the host sends it.
    #[cfg(feature = "otlp")]
    let subscriber = paracell_domain::observability::otlp::with_export_if_configured(subscriber);
    Box::new(subscriber)
}

/// Logs one answered request and returns the line for payload mode's `Logs`. `leg_method` is the
/// method on the host leg, used only when the client's method is unknown (an untranslatable envelope).
pub fn request_done(
    invocation_id: Option<&str>,
    service: &str,
    leg_method: &str,
    response: &ApiResponse,
    latency: Duration,
) -> String {
    metrics(&paracell_domain::observability::metrics::request_samples(
        service, response, latency,
    ));
    let method = response.telemetry.method.as_deref().unwrap_or(leg_method);
    let route = response.telemetry.route;
    let tenant = response.telemetry.tenant.as_deref().unwrap_or("-");
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let trace_id = response.telemetry.trace_id();
    let trace_id = trace_id.as_str();
    tracing::info!(
        invocation_id = invocation_id.unwrap_or("-"),
        trace_id,
        method = safe_method(method),
        route,
        tenant,
        status = response.status,
        latency_us,
        "request"
    );
    if response.status >= 500 || response.telemetry.cause.is_some() {
        // Every 5xx, and every failure swallowed on the way to an answer, says why: never a body, a
        // key or a credential, only what failed below (store detail, SDK code, transport error).
        tracing::error!(
            invocation_id = invocation_id.unwrap_or("-"),
            trace_id,
            route,
            tenant,
            status = response.status,
            cause = response.telemetry.cause.as_deref().unwrap_or("unknown"),
            "request failure"
        );
    }
    // No latency here: the line is part of the reply envelope, which must be reproducible.
    format!(
        "{} {route} -> {} (tenant {tenant})",
        safe_method(method),
        response.status
    )
}

/// Methods are logged only when they are plain tokens (no log injection).
fn safe_method(method: &str) -> &str {
    if method.len() <= 16 && method.bytes().all(|b| b.is_ascii_alphabetic()) {
        method
    } else {
        "?"
    }
}

/// Logs what a relay run did (counts only) and returns the line for the invocation's `Logs`;
/// entries that could not even be dead-lettered are an error.
pub fn relay_done(
    invocation_id: Option<&str>,
    report: &paracell_domain::replication::relay::RelayReport,
) -> String {
    let summary = report.summary();
    let invocation_id = invocation_id.unwrap_or("-");
    if report.failed.is_empty() {
        tracing::info!(invocation_id, summary, "relay");
    } else {
        tracing::error!(
            invocation_id,
            summary,
            "relay: the invocation fails and is retried"
        );
    }
    format!("relay: {summary}")
}

/// Logs a relay failure that is not about one delivery, and returns the line for `Logs`.
pub fn relay_problem(invocation_id: Option<&str>, what: &str, detail: &str) -> String {
    tracing::error!(
        invocation_id = invocation_id.unwrap_or("-"),
        detail,
        "relay: {what}"
    );
    format!("relay: {what}")
}

/// Emits `samples` as structured events (target `paracell::metrics`, message `metric`), which the
/// Functions host forwards to Application Insights as traces with these fields as custom
/// dimensions: `metric`, `value`, `unit`, and the dimensions (`-` where a metric has none of that
/// name). `docs/operations.md` shows how to chart them.
pub fn metrics(samples: &[paracell_domain::observability::metrics::Sample]) {
    for sample in samples {
        let dimension = |name: &str| sample.dimension(name).unwrap_or("-");
        tracing::info!(
            target: "paracell::metrics",
            metric = sample.metric.name,
            value = sample.value,
            unit = sample.metric.unit.as_str(),
            service = dimension("service"),
            route = dimension("route"),
            status_class = dimension("status_class"),
            problem = dimension("problem"),
            "metric"
        );
    }
}
