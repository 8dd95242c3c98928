//! Structured JSON logs for CloudWatch. Never logged: bodies, `Authorization`, idempotency keys,
//! query strings, other headers. Only the fields of [`request_done`].

use paracell_domain::http::ApiResponse;
use std::time::Duration;

/// The JSON `tracing` subscriber this cloud's log service expects (level from `RUST_LOG`, default
/// `info`), built but not installed: a library never installs a global subscriber, the binary does.
///
/// ```no_run
/// tracing::subscriber::set_global_default(paracell_aws::logging::subscriber())
///     .expect("no subscriber installed yet");
/// ```
pub fn subscriber() -> Box<dyn tracing::Subscriber + Send + Sync> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .without_time() // CloudWatch stamps every line
        .with_writer(std::io::stderr)
        .finish();
    // With the `otlp` feature and an OTLP endpoint configured, every event is also kept for export
    // (`paracell_domain::observability::otlp`); the host sends it.
    #[cfg(feature = "otlp")]
    let subscriber = paracell_domain::observability::otlp::with_export_if_configured(subscriber);
    Box::new(subscriber)
}

/// Logs one answered request.
pub fn request_done(
    request_id: &str,
    source: crate::Source,
    response: &ApiResponse,
    latency: Duration,
) {
    let trace_id = response.telemetry.trace_id();
    let trace_id = trace_id.as_str();
    tracing::info!(
        request_id,
        trace_id,
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
            trace_id,
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

/// Whether this process writes metrics: inside Lambda by default, elsewhere only with
/// `PARACELL_METRICS=1` (`0` turns them off everywhere).
fn metrics_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| match std::env::var("PARACELL_METRICS").as_deref() {
        Ok("1") => true,
        Ok(_) => false,
        Err(_) => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
    })
}

/// Writes `samples` as one CloudWatch Embedded Metric Format line on stdout, which Lambda sends to
/// CloudWatch Logs, where the metrics are extracted (no agent, no API call).
pub fn metrics(samples: &[paracell_domain::observability::metrics::Sample]) {
    if metrics_on() && !samples.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        println!("{}", emf(samples, now));
    }
}

/// The Embedded Metric Format document of `samples`: one directive per sample (each metric has its
/// own dimension set), every dimension and metric value as a root member.
///
/// ```
/// use paracell_domain::http::ApiResponse;
/// use paracell_domain::observability::metrics::request_samples;
/// let samples = request_samples("cell-a", &ApiResponse::json(200, vec![]), std::time::Duration::from_micros(250));
/// let line: serde_json::Value = serde_json::from_str(&paracell_aws::logging::emf(&samples, 1_700_000_000_000)).unwrap();
/// assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Paracell");
/// assert_eq!(line["requests"], 1);
/// assert_eq!(line["latency"], 250);
/// assert_eq!(line["service"], "cell-a");
/// ```
pub fn emf(
    samples: &[paracell_domain::observability::metrics::Sample],
    timestamp_ms: u64,
) -> String {
    use paracell_domain::observability::metrics::NAMESPACE;
    let mut root = serde_json::Map::new();
    let directives: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            for (name, value) in s.metric.dimensions.iter().zip(&s.values) {
                root.insert((*name).to_owned(), serde_json::Value::from(value.as_str()));
            }
            root.insert(s.metric.name.to_owned(), serde_json::Value::from(s.value));
            serde_json::json!({
                "Namespace": NAMESPACE,
                "Dimensions": [s.metric.dimensions],
                "Metrics": [{"Name": s.metric.name, "Unit": s.metric.unit.as_str()}],
            })
        })
        .collect();
    root.insert(
        "_aws".to_owned(),
        serde_json::json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
    );
    serde_json::Value::Object(root).to_string()
}
