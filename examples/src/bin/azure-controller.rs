//! The failover controller on Azure: a custom handler whose `FailoverController` function has a
//! timer trigger (every minute, `examples/azure/controller-app/`). Each invocation ticks for
//! `PARACELL_CONTROLLER_RUN_SECS` (default 50, under the app's 60 s `functionTimeout`) — a probe, a
//! vote, a decision every `PARACELL_WATCH_EVERY_MS` — and returns the ticks' evidence as
//! `ReturnValue` and one log line per tick. The controller and its watch of the lease live as long
//! as the handler process: a restart only delays a decision, never hastens one.
//!
//! Configuration: [`paracell_examples::quorum_admin::WatchConfig`] (`PARACELL_WATCH_*`), the quorum
//! (`PARACELL_QUORUM`, [`paracell_examples::quorum`]) and the cells' stores
//! (`PARACELL_ADMIN_CELLS`).

use paracell_azure::functions::{AsyncTriggerHandler, TriggerOutcome, run_async_triggers};
use std::process::ExitCode;
use std::sync::Arc;

/// The function's folder name under the app.
const FUNCTION: &str = "FailoverController";

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_azure();
    let scheduled = match paracell_examples::quorum_admin::scheduled_from_env().await {
        Ok(c) => Arc::new(c),
        Err(e) => return paracell_examples::logs::exit("azure-controller", e, 2),
    };
    let handler: Arc<AsyncTriggerHandler> = Arc::new(move |invocation| {
        let s = Arc::clone(&scheduled);
        Box::pin(async move {
            if invocation.function != FUNCTION {
                return Err(format!(
                    "this handler serves {FUNCTION}, not {}",
                    invocation.function
                ));
            }
            let reports = s.invocation().await;
            Ok(TriggerOutcome {
                logs: reports.iter().map(ToString::to_string).collect(),
                return_value: Some(serde_json::json!({ "ticks": reports })),
            })
        })
    });
    match run_async_triggers(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("azure-controller", e, 2),
    }
}
