//! Every binary's logs: one JSON object per line, from the first line to the last — start-up
//! failures and panics included — so a log pipeline that parses JSON never meets a raw line.
//!
//! The binaries call [`init_aws`] or [`init_azure`] first thing (the adapters' JSON subscriber, as
//! each cloud's log service expects it, plus a panic hook that logs the panic as an event instead of
//! the standard library's plain-text message), and end a failed start with [`exit`].

use std::fmt::Display;
use std::process::ExitCode;

/// The JSON subscriber for Lambda (no timestamp: CloudWatch stamps every line) and the panic hook.
pub fn init_aws() {
    install(paracell_aws::logging::subscriber());
}

/// The JSON subscriber for the custom handler and local runs, and the panic hook.
pub fn init_azure() {
    install(paracell_azure::logging::subscriber());
}

/// Installs `subscriber` for the whole process (once: a second call keeps the first) and the panic
/// hook.
fn install(subscriber: Box<dyn tracing::Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
    log_panics();
}

/// A panic becomes an `error` event (its message and location); the handler's own catch still
/// turns a panic in a request into a `500` problem.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
        tracing::error!(
            panic = message.as_str(),
            location = location.as_str(),
            "panic"
        );
    }));
}

/// Logs why `binary` cannot go on (`start-up failed`, with the error) and returns its exit code.
pub fn exit(binary: &str, error: impl Display, code: u8) -> ExitCode {
    let error = error.to_string();
    tracing::error!(binary, error = error.as_str(), "start-up failed");
    ExitCode::from(code)
}

/// One JSON log line written without `tracing`, for the one place that must not log through it:
/// the OTLP exporter's own failures (logging them through `tracing` would export them, feeding
/// itself). Same shape as the subscriber's lines.
#[cfg(feature = "otlp")]
pub(crate) fn raw_line(level: &str, message: &str, error: &str) -> String {
    serde_json::json!({
        "level": level,
        "fields": {"message": message, "error": error},
        "target": "paracell_examples::telemetry",
    })
    .to_string()
}
