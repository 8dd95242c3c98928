//! Optional OpenTelemetry export (feature `otlp`, off by default): every log event a cell, relay or
//! router writes is also sent, as an OTLP log record, to an OTLP/HTTP receiver (an OpenTelemetry
//! Collector, or any backend that speaks OTLP) — the cloud-neutral observability path, next to the
//! CloudWatch and Application Insights ones the platforms give for free.
//!
//! Configured by the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` (the full
//! URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL; `/v1/logs` is appended), `OTEL_SERVICE_NAME`
//! (the `service.name` resource attribute) and `OTEL_BLRP_SCHEDULE_DELAY` (milliseconds between
//! exports, default 1000). Requests are protobuf (`application/x-protobuf`, OTLP's default
//! encoding), written here by hand: the five messages OTLP logs need, no code generator, no SDK.
//!
//! The pieces: [`layer`] is a `tracing` layer the adapters install next to their JSON logs; it keeps
//! records in a bounded buffer (the oldest dropped, and counted, when an exporter falls behind).
//! [`OtlpExport::export`] sends what the buffer holds through the domain's [`HttpClient`] port; the
//! host decides when (the example binaries run it on a timer). The records carry exactly the
//! fields of the log events, so what `docs/operations.md` says is never logged is never exported.
//!
//! ```
//! use paracell_domain::observability::otlp::{AttributeValue, LogRecord, encode_logs};
//! let record = LogRecord {
//!     time_unix_nano: 1_700_000_000_000_000_000,
//!     severity: tracing::Level::INFO,
//!     body: "request".into(),
//!     attributes: vec![("status".into(), AttributeValue::Int(201))],
//!     trace_id: Some([0xab; 16]),
//! };
//! let bytes = encode_logs("cell-a", &[record]);
//! assert_eq!(bytes[0], 0x0a); // field 1 (resource_logs), length-delimited
//! ```

use crate::ports::{HttpClient, OutboundRequest};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing::field::{Field, Visit};

/// Records kept while no export has taken them.
pub const BUFFER_CAPACITY: usize = 10_000;
/// Records sent per export request.
pub const MAX_BATCH: usize = 512;

/// One log record, as OTLP carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When the event happened (nanoseconds since the Unix epoch).
    pub time_unix_nano: u64,
    /// Its level.
    pub severity: tracing::Level,
    /// The event's message (`request`, `replication relayed`, …).
    pub body: String,
    /// The event's other fields, and its `target`.
    pub attributes: Vec<(String, AttributeValue)>,
    /// The W3C trace id, when the event has a `trace_id` field that is one.
    pub trace_id: Option<[u8; 16]>,
}

/// Why an export lost records (they are not retried: logs stay on the platform's own path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The receiver answered, but not with success.
    #[error("OTLP receiver answered {status} ({lost} records lost)")]
    Refused {
        /// Its status.
        status: u16,
        /// Records lost.
        lost: usize,
    },
    /// The receiver could not be reached.
    #[error("OTLP receiver: {reason} ({lost} records lost)")]
    Unreachable {
        /// The transport's error.
        reason: String,
        /// Records lost.
        lost: usize,
    },
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A number that is not an integer (never money: money is not logged).
    Double(f64),
}

// ---- protobuf ------------------------------------------------------------------------------------

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, field << 3 | wire_type);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn message(out: &mut Vec<u8>, field: u64, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes_field(out, field, &inner);
}

fn fixed64(out: &mut Vec<u8>, field: u64, value: u64) {
    key(out, field, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

/// `opentelemetry.proto.common.v1.KeyValue` (key 1, value 2 → `AnyValue`).
fn key_value(out: &mut Vec<u8>, field: u64, name: &str, value: &AttributeValue) {
    message(out, field, |kv| {
        bytes_field(kv, 1, name.as_bytes());
        message(kv, 2, |any| match value {
            AttributeValue::Str(text) => bytes_field(any, 1, text.as_bytes()),
            AttributeValue::Bool(flag) => {
                key(any, 2, 0);
                varint(any, u64::from(*flag));
            }
            AttributeValue::Int(n) => {
                key(any, 3, 0);
                varint(any, *n as u64); // int64: two's complement, ten bytes when negative
            }
            AttributeValue::Double(x) => fixed64(any, 4, x.to_bits()),
        });
    });
}

fn severity_number(level: tracing::Level) -> u64 {
    match level {
        tracing::Level::TRACE => 1,
        tracing::Level::DEBUG => 5,
        tracing::Level::INFO => 9,
        tracing::Level::WARN => 13,
        tracing::Level::ERROR => 17,
    }
}

/// Encodes an `ExportLogsServiceRequest`: one resource (`service.name` = `service`), one scope
/// (`paracell`), the records in order.
pub fn encode_logs(service: &str, records: &[LogRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + records.len() * 160);
    // ExportLogsServiceRequest.resource_logs (1) → ResourceLogs
    message(&mut out, 1, |resource_logs| {
        // ResourceLogs.resource (1) → Resource.attributes (1)
        message(resource_logs, 1, |resource| {
            key_value(
                resource,
                1,
                "service.name",
                &AttributeValue::Str(service.to_owned()),
            );
        });
        // ResourceLogs.scope_logs (2) → ScopeLogs
        message(resource_logs, 2, |scope_logs| {
            message(scope_logs, 1, |scope| {
                bytes_field(scope, 1, b"paracell");
                bytes_field(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for record in records {
                // ScopeLogs.log_records (2) → LogRecord
                message(scope_logs, 2, |r| {
                    fixed64(r, 1, record.time_unix_nano);
                    key(r, 2, 0);
                    varint(r, severity_number(record.severity));
                    bytes_field(r, 3, record.severity.as_str().as_bytes());
                    message(r, 5, |body| bytes_field(body, 1, record.body.as_bytes()));
                    for (name, value) in &record.attributes {
                        key_value(r, 6, name, value);
                    }
                    if let Some(trace_id) = &record.trace_id {
                        bytes_field(r, 9, trace_id);
                    }
                    fixed64(r, 11, record.time_unix_nano);
                });
            }
        });
    });
    out
}

// ---- the buffer and the tracing layer --------------------------------------------------------------

/// Records waiting for an export: bounded, oldest dropped first.
#[derive(Debug, Default)]
pub struct Buffer {
    records: Mutex<VecDeque<LogRecord>>,
    dropped: AtomicU64,
}

impl Buffer {
    fn push(&self, record: LogRecord) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= BUFFER_CAPACITY {
            records.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        records.push_back(record);
    }

    /// Takes up to `max` records, oldest first.
    pub fn take(&self, max: usize) -> Vec<LogRecord> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let n = max.min(records.len());
        records.drain(..n).collect()
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The process's buffer, filled by [`layer`], drained by [`OtlpExport::export`].
pub fn buffer() -> &'static Arc<Buffer> {
    static BUFFER: OnceLock<Arc<Buffer>> = OnceLock::new();
    BUFFER.get_or_init(Arc::default)
}

/// The `tracing` layer that copies every event into [`buffer`].
pub fn layer() -> OtlpLayer {
    OtlpLayer {
        buffer: buffer().clone(),
    }
}

/// `subscriber` with [`layer`] on top when an OTLP endpoint is configured ([`OtlpExport::from_env`]),
/// else `subscriber` alone: what each adapter's `logging::subscriber` builds (the binary installs it).
pub fn with_export_if_configured<S>(subscriber: S) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    S: tracing::Subscriber + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    if OtlpExport::from_env("-").is_some() {
        Box::new(subscriber.with(layer()))
    } else {
        Box::new(subscriber)
    }
}

/// See [`layer`].
#[derive(Debug, Clone)]
pub struct OtlpLayer {
    buffer: Arc<Buffer>,
}

struct Fields {
    body: String,
    attributes: Vec<(String, AttributeValue)>,
    trace_id: Option<[u8; 16]>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if name == "message" {
            value.clone_into(&mut self.body);
            return;
        }
        if name == "trace_id" {
            // A trace id goes in the record's own field; anything else (`-`) stays an attribute.
            if let Some(id) = crate::observability::trace::TraceContext::trace_id_from_hex(value) {
                self.trace_id = Some(id);
                return;
            }
        }
        self.attributes
            .push((name.to_owned(), AttributeValue::Str(value.to_owned())));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes
            .push((field.name().to_owned(), AttributeValue::Int(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let value = i64::try_from(value).map_or_else(
            |_| AttributeValue::Str(value.to_string()),
            AttributeValue::Int,
        );
        self.attributes.push((field.name().to_owned(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes
            .push((field.name().to_owned(), AttributeValue::Bool(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes
            .push((field.name().to_owned(), AttributeValue::Double(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OtlpLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields {
            body: String::new(),
            attributes: Vec::new(),
            trace_id: None,
        };
        event.record(&mut fields);
        let metadata = event.metadata();
        fields.attributes.push((
            "target".to_owned(),
            AttributeValue::Str(metadata.target().to_owned()),
        ));
        let time_unix_nano = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.buffer.push(LogRecord {
            time_unix_nano,
            severity: *metadata.level(),
            body: fields.body,
            attributes: fields.attributes,
            trace_id: fields.trace_id,
        });
    }
}

// ---- the export ---------------------------------------------------------------------------------

/// Where and as whom to export, from the standard OpenTelemetry variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExport {
    /// The logs endpoint (`…/v1/logs`).
    pub endpoint: String,
    /// `service.name`.
    pub service: String,
    /// Time between exports.
    pub interval: Duration,
}

impl OtlpExport {
    /// Reads the configuration; `None` when no endpoint is set (export off). `service` is used when
    /// `OTEL_SERVICE_NAME` is not set.
    ///
    /// ```
    /// use paracell_domain::observability::otlp::OtlpExport;
    /// let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://collector:4318/".to_owned());
    /// let export = OtlpExport::from_lookup(env, "cell-a").unwrap();
    /// assert_eq!(export.endpoint, "http://collector:4318/v1/logs");
    /// assert_eq!(export.service, "cell-a");
    /// assert!(OtlpExport::from_lookup(|_| None, "cell-a").is_none());
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, service: &str) -> Option<Self> {
        let endpoint = lookup("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
            .filter(|v| !v.trim().is_empty())
            .or_else(|| {
                lookup("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .filter(|v| !v.trim().is_empty())
                    .map(|base| format!("{}/v1/logs", base.trim().trim_end_matches('/')))
            })?;
        Some(Self {
            endpoint,
            service: lookup("OTEL_SERVICE_NAME")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| service.to_owned()),
            interval: lookup("OTEL_BLRP_SCHEDULE_DELAY")
                .and_then(|v| v.trim().parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis),
        })
    }

    /// [`OtlpExport::from_lookup`] on the process environment.
    pub fn from_env(service: &str) -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok(), service)
    }

    /// Sends what [`buffer`] holds, in requests of at most [`MAX_BATCH`] records; the number sent.
    /// A refused or failed request loses its records (they are not retried: logs stay on the
    /// platform's own path) and says why.
    pub async fn export(&self, client: &dyn HttpClient) -> Result<usize, ExportError> {
        let mut sent = 0;
        loop {
            let records = buffer().take(MAX_BATCH);
            if records.is_empty() {
                return Ok(sent);
            }
            let request = OutboundRequest {
                method: "POST".into(),
                url: self.endpoint.clone(),
                headers: vec![("content-type".into(), "application/x-protobuf".into())],
                body: encode_logs(&self.service, &records),
                timeout: Duration::from_secs(10),
            };
            match client.send(request).await {
                Ok(answer) if (200..300).contains(&answer.status) => sent += records.len(),
                Ok(answer) => {
                    return Err(ExportError::Refused {
                        status: answer.status,
                        lost: records.len(),
                    });
                }
                Err(e) => {
                    return Err(ExportError::Unreachable {
                        reason: e.to_string(),
                        lost: records.len(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_int64s_follow_the_protobuf_wire_format() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        key_value(&mut out, 6, "n", &AttributeValue::Int(-1));
        // KeyValue{key:"n", value:AnyValue{int_value:-1}}: ten bytes of varint for -1.
        assert_eq!(
            out,
            [
                0x32, 0x10, 0x0a, 0x01, b'n', 0x12, 0x0b, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0x01
            ]
        );
    }

    #[test]
    fn the_layer_copies_fields_and_the_trace_id() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                trace_id = "0af7651916cd43dd8448eb211c80319c",
                tenant = "coop-1",
                status = 503_u16,
                ok = false,
                "request failure"
            );
        });
        let records = buffer().take(usize::MAX);
        let record = records
            .iter()
            .find(|r| r.body == "request failure")
            .unwrap();
        assert_eq!(record.severity, tracing::Level::ERROR);
        assert_eq!(record.trace_id.unwrap()[0], 0x0a);
        assert!(
            record
                .attributes
                .contains(&("tenant".into(), AttributeValue::Str("coop-1".into())))
        );
        assert!(
            record
                .attributes
                .contains(&("status".into(), AttributeValue::Int(503)))
        );
        assert!(!record.attributes.iter().any(|(n, _)| n == "trace_id"));
    }
}
