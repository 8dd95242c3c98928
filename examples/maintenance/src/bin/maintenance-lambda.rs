//! The maintenance-requests workload as an AWS Lambda function (any HTTP source in front of it).

#[tokio::main]
async fn main() -> Result<(), paracell_aws::LambdaError> {
    tracing::subscriber::set_global_default(paracell_aws::logging::subscriber())?;
    paracell_aws::run(maintenance_requests::router(
        maintenance_requests::MemoryRequests::shared(),
    ))
    .await
}
