//! The failover controller on AWS: a Lambda function on an EventBridge schedule (`rate(1 minute)`,
//! see `examples/aws/template.yaml`, `ControllerFunction`). Each invocation ticks for
//! `PARACELL_CONTROLLER_RUN_SECS` (default 50, under the function's 60 s timeout) — a probe, a
//! vote, a decision every `PARACELL_WATCH_EVERY_MS` — and returns the ticks' evidence. The
//! controller, and its watch of the lease, live as long as the execution environment: a cold start
//! only delays a decision (the wait starts again), never hastens one.
//!
//! Configuration: [`paracell_examples::quorum_admin::WatchConfig`] (`PARACELL_WATCH_*`), the quorum
//! (`PARACELL_QUORUM`, [`paracell_examples::quorum`]) and the cells' stores
//! (`PARACELL_ADMIN_CELLS`). Build: `cargo lambda build --release --bin lambda-controller`.

use paracell_aws::function::{AsyncEventHandler, run_async_events};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_aws();
    let scheduled = match paracell_examples::quorum_admin::scheduled_from_env().await {
        Ok(c) => Arc::new(c),
        Err(e) => return paracell_examples::logs::exit("lambda-controller", e, 2),
    };
    let handler: Arc<AsyncEventHandler> = Arc::new(move |_scheduled| {
        let s = Arc::clone(&scheduled);
        Box::pin(async move {
            let reports = s.invocation().await;
            Ok(serde_json::json!({ "ticks": reports }))
        })
    });
    match run_async_events(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("lambda-controller", e, 2),
    }
}
