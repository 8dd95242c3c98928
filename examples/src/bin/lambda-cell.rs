//! The AWS Lambda function (`bootstrap` for `provided.al2023`): one function behind API Gateway REST
//! and HTTP APIs, a Function URL and an ALB. Build it with `cargo lambda build --release --bin lambda-cell`.
//! Cell configuration comes from the function's environment (`PARACELL_*`).

use paracell_examples::logs;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    logs::init_aws();
    let ports = match paracell_examples::ports_from_env().await {
        Ok(ports) => ports,
        Err(e) => return logs::exit("lambda-cell", e, 2),
    };
    let ownership = match paracell_examples::ownership_from_lookup(|n| std::env::var(n).ok()).await
    {
        Ok(ownership) => ownership,
        Err(e) => return logs::exit("lambda-cell", e, 2),
    };
    let lambda = match paracell_aws::handler::start(paracell_examples::cell_with(
        ports.clone(),
        ownership,
    )) {
        Ok(lambda) => lambda,
        Err(e) => return logs::exit("lambda-cell", e, 2),
    };
    paracell_examples::telemetry::spawn_otlp_export(lambda.cell().config().cell_id.as_str());
    // Stream batches of the cell table and replay-queue batches go to the relay (when peers are set).
    let relay = paracell_examples::relay_from_lookup(lambda.cell().config(), |name| {
        std::env::var(name).ok()
    })
    .await;
    let lambda = match relay {
        Ok(Some(relay)) => lambda.with_relay(relay),
        Ok(None) => lambda,
        Err(e) => return logs::exit("lambda-cell", e, 2),
    };
    match lambda.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => logs::exit("lambda-cell", e, 1),
    }
}
