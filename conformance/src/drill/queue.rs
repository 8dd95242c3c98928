//! An SQS queue on moto that a drill reads what a bus delivered from (EventBridge rules target it).

use paracell_aws::outbound::sqs::{SqsConfig, SqsDeadLetters};
use serde_json::Value;

/// A fresh queue `name` on moto: its URL, its ARN (for a rule's target) and a client.
pub(crate) async fn create(
    moto: &str,
    name: &str,
) -> Result<(String, String, aws_sdk_sqs::Client), String> {
    let url = SqsDeadLetters::create_queue(
        &SqsConfig {
            queue_url: String::new(),
            endpoint: Some(moto.to_owned()),
        },
        name,
    )
    .await
    .map_err(|e| e.to_string())?;
    let queue = SqsDeadLetters::connect(&SqsConfig {
        queue_url: url.clone(),
        endpoint: Some(moto.to_owned()),
    })
    .await;
    let arn = queue.queue_arn().await.map_err(|e| e.to_string())?;
    Ok((url, arn, queue.client().clone()))
}

/// Every message the queue holds now, as JSON, each deleted once read.
pub(crate) async fn drain(client: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<Value>, String> {
    let mut bodies = Vec::new();
    loop {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "ReceiveMessage: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for message in messages {
            bodies.push(
                serde_json::from_str(message.body().unwrap_or_default())
                    .map_err(|e| format!("an SQS message is not JSON: {e}"))?,
            );
            if let Some(handle) = message.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| format!("DeleteMessage: {e}"))?;
            }
        }
    }
}
