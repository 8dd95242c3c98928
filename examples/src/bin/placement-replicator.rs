//! The placement registry's replicator: a Lambda on the registry table's DynamoDB stream that
//! upserts every placement change into the Cosmos DB read replica the Azure side routes by, only
//! forward (a replica never takes a lower epoch or an older version). A change it cannot read or
//! store fails the batch from that record on (`ReportBatchItemFailures`): Lambda retries it and, past
//! the retries, sends it to the event source mapping's on-failure destination (an SQS queue in the
//! templates). Nothing is dropped.
//!
//! Configuration: `PARACELL_COSMOS_*` (the replica's account, database and container), built with
//! `--features dynamodb,cosmos`.

use std::process::ExitCode;

#[cfg(all(feature = "dynamodb", feature = "cosmos"))]
#[tokio::main]
async fn main() -> ExitCode {
    paracell_examples::logs::init_aws();
    use paracell_aws::inbound::stream::{batch_response, placement_records};
    use paracell_azure::outbound::cosmos::{CosmosConfig, CosmosPlacementReplica, CosmosStore};
    use paracell_domain::placement::registry::{PlacementReplica, replicate};
    use std::sync::Arc;

    let replica: Arc<dyn PlacementReplica> = match async {
        let config = CosmosConfig::from_lookup(|n| std::env::var(n).ok())?;
        let store = CosmosStore::connect(&config)
            .await
            .map_err(|e| format!("opening the replica's container: {e}"))?;
        Ok::<_, String>(Arc::new(CosmosPlacementReplica::new(store)))
    }
    .await
    {
        Ok(replica) => replica,
        Err(e) => return paracell_examples::logs::exit("placement-replicator", e, 2),
    };
    let handle: Arc<paracell_aws::function::AsyncEventHandler> = Arc::new(move |event| {
        let replica = replica.clone();
        Box::pin(async move {
            let records = placement_records(&event);
            let report = replicate(&records, replica.as_ref()).await;
            if let Some((position, reason)) = &report.first_failure {
                tracing::error!(%position, %reason, "placement change not replicated; retried from here");
            }
            tracing::info!(
                applied = report.applied,
                ignored = report.ignored,
                "placement changes replicated"
            );
            Ok(batch_response(
                report.first_failure.as_ref().map(|(p, _)| p.as_str()),
            ))
        })
    });
    match paracell_aws::function::run_async_events(handle).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => paracell_examples::logs::exit("placement-replicator", e, 2),
    }
}

#[cfg(not(all(feature = "dynamodb", feature = "cosmos")))]
fn main() -> ExitCode {
    paracell_examples::logs::init_aws();
    paracell_examples::logs::exit(
        "placement-replicator",
        "built without its stores (cargo build -p paracell-examples --features dynamodb,cosmos --bin placement-replicator)",
        2,
    )
}
