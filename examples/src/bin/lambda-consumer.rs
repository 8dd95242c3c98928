//! A consumer of the cells' events on AWS: a Lambda function an EventBridge rule targets (see
//! `examples/aws/template.yaml`, `TransactionConsumer`). Each invocation is one EventBridge delivery;
//! the CloudEvent is read back with the adapter's decoder, every field through the domain's parser,
//! and applied to [`paracell_examples::consumer::Projection`] at most once per `source` + `id`.
//!
//! The answer (ignored by EventBridge, read by tests) is `{"seen": "applied" | "duplicate", "line":
//! …, "projection": …}`. A delivery it cannot read fails the invocation, so Lambda retries it and
//! then sends it to the target's dead-letter queue. Build: `cargo lambda build --release --bin
//! lambda-consumer`.

use paracell_aws::inbound::eventbridge::accepted_event;
use paracell_examples::consumer::Projection;
use std::process::ExitCode;
use std::sync::Mutex;

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_aws();
    let projection = Mutex::new(Projection::default());
    let run = paracell_aws::function::run_events(move |delivery| {
        let event = accepted_event(delivery)?;
        let mut projection = projection.lock().unwrap_or_else(|p| p.into_inner());
        let line = projection.apply_all(std::slice::from_ref(&event)).remove(0);
        tracing::info!(%line, "consumed");
        Ok(serde_json::json!({
            "seen": line.split(' ').next().unwrap_or_default(),
            "line": line,
            "projection": projection.report(),
        }))
    });
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("lambda-consumer", e, 2),
    }
}
