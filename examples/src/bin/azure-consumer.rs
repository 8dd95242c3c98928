//! A consumer of the cells' events on Azure: a custom handler whose `TransactionAccepted` function
//! has an Event Grid trigger (see `examples/azure/consumer-app/`). Each invocation carries one event
//! (or, with `"cardinality": "many"`, several); they are read back with the adapter's decoder, every
//! field through the domain's parser, and applied to [`paracell_examples::consumer::Projection`] at
//! most once per `source` + `id`.
//!
//! `ReturnValue` (read by tests) is `{"lines": […], "projection": …}`. An invocation it cannot read
//! answers 500, so Event Grid retries it and then dead-letters it.

use paracell_azure::functions::{TriggerOutcome, run_triggers};
use paracell_azure::inbound::eventgrid::accepted_events;
use paracell_examples::consumer::Projection;
use std::process::ExitCode;
use std::sync::Mutex;

/// The function's folder name under the app.
const FUNCTION: &str = "TransactionAccepted";

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_azure();
    let projection = Mutex::new(Projection::default());
    let run = run_triggers(move |invocation| {
        if invocation.function != FUNCTION {
            return Err(format!(
                "this handler serves {FUNCTION}, not {}",
                invocation.function
            ));
        }
        let events = accepted_events(&invocation.data)?;
        let mut projection = projection.lock().unwrap_or_else(|p| p.into_inner());
        let lines = projection.apply_all(&events);
        Ok(TriggerOutcome {
            logs: lines.clone(),
            return_value: Some(serde_json::json!({
                "lines": lines,
                "projection": projection.report(),
            })),
        })
    });
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("azure-consumer", e, 2),
    }
}
