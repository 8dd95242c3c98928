//! One trace across both clouds, in process: a client's create, carrying a W3C `traceparent`, reaches
//! an AWS cell as an API Gateway REST event; the Lambda adapter's relay, invoked with a DynamoDB
//! Streams event, delivers the entry to the Azure standby through the custom handler's payload
//! envelope. Every log event of both adapters and of the domain is captured (JSON, as the cells write
//! them), and the trace id must be found where an operator would look for it: the AWS cell's
//! `request` line, the relay's `replication relayed` line and the Azure cell's `replication received`
//! line; the booked event and the delivered CloudEvent carry the `traceparent` too.
//!
//! `paracell-conformance drill trace` prints those lines: the local demo of `docs/operations.md`.

use super::replication::{AWS_DOORS, AZURE_DOORS, relay_to, side};
use super::{DrillReport, RelayHost, Rng, create_request};
use crate::envelopes::{Envelope, aws};
use crate::pairs::ledger;
use paracell_aws::LambdaCell;
use paracell_domain::events::TransactionAccepted;
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::batch;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What the drill found: its report and the captured log lines that carry the trace id.
pub struct TraceRun {
    /// The checks.
    pub report: DrillReport,
    /// The client's trace id.
    pub trace_id: String,
    /// Every captured log line (JSON) naming the trace id, in order.
    pub lines: Vec<String>,
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with every log event at `level` or above captured as the cells write them (JSON lines,
/// on this thread: drills and the suite run on a current-thread runtime); `f`'s result and the lines.
pub fn capture_json_logs<T>(level: tracing::Level, f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(level)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (result, String::from_utf8_lossy(&bytes).into_owned())
}

/// Runs the drill with a trace id drawn from `seed`.
pub fn run(seed: u64) -> TraceRun {
    let mut rng = Rng::new(seed);
    let trace_id = format!("{:016x}{:016x}", rng.next_u64() | 1, rng.next_u64());
    let traceparent = format!("00-{trace_id}-{:016x}-01", rng.next_u64() | 1);
    let (mut report, logs) = capture_json_logs(tracing::Level::INFO, || {
        super::run_on_runtime(0, async |report| {
            drill(&traceparent, &trace_id, seed, report).await
        })
    });
    let lines: Vec<String> = logs
        .lines()
        .filter(|line| line.contains(&trace_id))
        .map(str::to_owned)
        .collect();
    for (message, on) in [
        ("request", "the AWS cell's request line"),
        ("replication relayed", "the AWS relay's line"),
        ("replication received", "the Azure standby's apply line"),
    ] {
        let found = lines.iter().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                v["fields"]["message"] == message && v["fields"]["trace_id"] == trace_id.as_str()
            })
        });
        report.check(
            &format!("the trace id is on {on} ({message:?})"),
            found,
            if found { "found" } else { "missing" },
        );
    }
    TraceRun {
        report,
        trace_id,
        lines,
    }
}

async fn drill(
    traceparent: &str,
    trace_id: &str,
    seed: u64,
    report: &mut DrillReport,
) -> Result<(), String> {
    let aws_side = side("aws", "cell-aws", "cell-azure", &AWS_DOORS)?;
    let azure_side = side("azure", "cell-azure", "cell-aws", &AZURE_DOORS)?;
    let lambda =
        LambdaCell::new(aws_side.cell.clone()).with_relay(relay_to(&aws_side, &azure_side, seed)?);
    let mut request = create_request("coop-aws", "k-trace-1", "ACC-1", false, 1234);
    request
        .headers
        .push(("traceparent".into(), traceparent.to_owned()));
    let event = aws::event(Envelope::AwsApigwV1, &request);
    let answer = lambda
        .invoke(&serde_json::to_vec(&event).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let answer: serde_json::Value = serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
    let created = aws::client_view(Envelope::AwsApigwV1, "POST", &answer)?;
    report.check(
        "the create is booked on the AWS cell",
        created.status == 201,
        created.status,
    );
    let pending = aws_side
        .store
        .pending_entries(None, 100)
        .await
        .map_err(|e| e.to_string())?
        .entries;
    let entry = pending.first().ok_or("no entry was committed")?;
    let carried = entry.entry().trace.as_ref().map(|t| t.trace_id());
    report.check(
        "the committed entry carries the trace",
        carried.as_deref() == Some(trace_id),
        format!("{carried:?}"),
    );
    let event_trace = entry
        .event()
        .and_then(|event| TransactionAccepted::parse(&event).ok())
        .and_then(|e| e.trace)
        .map(|t| t.trace_id());
    report.check(
        "the CloudEvent published for consumers carries the trace (traceparent)",
        event_trace.as_deref() == Some(trace_id),
        format!("{event_trace:?}"),
    );
    let delivery = batch::render(&pending);
    report.check(
        "the replication CloudEvent carries the trace (traceparent)",
        delivery.contains(&format!(r#""traceparent":"00-{trace_id}-"#)),
        "checked in the delivery body",
    );
    let group: Vec<_> = pending.iter().collect();
    let mut rng = Rng::new(seed);
    let relayed = RelayHost::Lambda(&lambda).invoke(&group, &mut rng).await?;
    report.check(
        "the relay (DynamoDB Streams event) delivers to the Azure cell",
        relayed,
        relayed,
    );
    let (aws_ledger, azure_ledger) = (ledger(&aws_side.store), ledger(&azure_side.store));
    report.check(
        "the Azure standby holds the AWS cell's ledger",
        aws_ledger == azure_ledger,
        "compared",
    );
    Ok(())
}
