//! A cell on your machine: plain HTTP on `127.0.0.1:$PORT` (default 8080), in-memory store.
//!
//! ```sh
//! cargo run -p paracell-examples --bin local-cell
//! curl -s localhost:8080/health
//! ```
//!
//! Configuration is the same as on the clouds (`PARACELL_*`), with local defaults:
//! `PARACELL_CELL_ID=local`, `PARACELL_TENANTS=*`. It is the Azure adapter's forwarding mode with no
//! route prefix, so what you `curl` here is exactly what an Azure cell answers.

use paracell_azure::listener::ServerLimits;
use paracell_azure::{AzureConfig, AzureHandler, Front, Mode, RoutePrefix, server};
use paracell_domain::CellConfig;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_azure();
    let defaults = |name: &str| match name {
        "PARACELL_CELL_ID" => Some("local".to_owned()),
        "PARACELL_TENANTS" => Some("*".to_owned()),
        _ => None,
    };
    let config = match CellConfig::from_lookup(|k| std::env::var(k).ok().or_else(|| defaults(k))) {
        Ok(config) => config,
        Err(e) => return paracell_examples::logs::exit("local-cell", e, 2),
    };
    let port = match std::env::var("PORT").map(|p| p.parse::<u16>()) {
        Err(_) => 8080,
        Ok(Ok(port)) => port,
        Ok(Err(_)) => {
            return paracell_examples::logs::exit("local-cell", "PORT must be a port number", 2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot listen on 127.0.0.1:{port}: {e}");
            return paracell_examples::logs::exit("local-cell", why, 1);
        }
    };
    tracing::info!(
        cell = config.cell_id.as_str(),
        url = format!("http://127.0.0.1:{port}").as_str(),
        "local-cell listening"
    );
    paracell_examples::telemetry::spawn_otlp_export(config.cell_id.as_str());
    let adapter = AzureConfig {
        mode: Mode::Forwarding,
        route_prefix: RoutePrefix::new(""),
        trust_client_principal: false,
        // Clients reach it straight: no readiness probe, no trigger route.
        front: Front::Direct,
        ..AzureConfig::default()
    };
    let limits = match ServerLimits::from_lookup(ServerLimits::default(), |k| std::env::var(k).ok())
    {
        Ok(limits) => limits,
        Err(e) => return paracell_examples::logs::exit("local-cell", e, 2),
    };
    let ports = match paracell_examples::ports_from_env().await {
        Ok(ports) => ports,
        Err(e) => return paracell_examples::logs::exit("local-cell", e, 2),
    };
    let relay = match paracell_examples::relay_from_lookup(&config, |n| std::env::var(n).ok()).await
    {
        Ok(relay) => relay,
        Err(e) => return paracell_examples::logs::exit("local-cell", e, 2),
    };
    // Locally the relay polls the store's pending entries (set PARACELL_RELAY_POLL_MS).
    paracell_examples::spawn_pull_relay(ports.store.clone(), relay);
    let ownership = match paracell_examples::ownership_from_lookup(|n| std::env::var(n).ok()).await
    {
        Ok(ownership) => ownership,
        Err(e) => return paracell_examples::logs::exit("local-cell", e, 2),
    };
    let handler = AzureHandler::new(
        paracell_examples::cell_with(ports, ownership)(config),
        adapter,
    )
    .with_limits(limits);
    match server::serve(listener, handler, server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("local-cell", e, 1),
    }
}
