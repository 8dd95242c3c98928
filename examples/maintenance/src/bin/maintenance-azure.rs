//! The maintenance-requests workload as an Azure Functions custom handler (payload or forwarding
//! mode, as `host.json` says).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing::subscriber::set_global_default(paracell_azure::logging::subscriber())?;
    paracell_azure::serve(maintenance_requests::router(
        maintenance_requests::MemoryRequests::shared(),
    ))
    .await?;
    Ok(())
}
