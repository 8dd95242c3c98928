//! The Azure Functions custom handler: the Functions host starts it (see `examples/azure/app/`),
//! passes `FUNCTIONS_CUSTOMHANDLER_PORT`, probes `GET /`, then invokes it in payload or forwarding
//! mode as `host.json` says. Cell configuration comes from app settings (`PARACELL_*`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_azure();
    let ports = match paracell_examples::ports_from_env().await {
        Ok(ports) => ports,
        Err(e) => return paracell_examples::logs::exit("azure-cell", e, 2),
    };
    let run = paracell_azure::server::run(async |config| {
        paracell_examples::telemetry::spawn_otlp_export(config.cell_id.as_str());
        let relay =
            paracell_examples::relay_from_lookup(&config, |n| std::env::var(n).ok()).await?;
        // The Cosmos DB stand-in has no change feed: locally the relay can poll the store instead.
        paracell_examples::spawn_pull_relay(ports.store.clone(), relay.clone());
        let ownership = paracell_examples::ownership_from_lookup(|n| std::env::var(n).ok()).await?;
        Ok((
            paracell_examples::cell_with(ports, ownership)(config),
            relay,
        ))
    });
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("azure-cell", e, 2),
    }
}
