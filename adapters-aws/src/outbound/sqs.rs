//! The relay's dead-letter queue on Amazon SQS (feature `sqs`): every entry a destination could not
//! take, as the full [`DeadLetter`] document (the stream's own on-failure destination would only get
//! metadata). An operator lists, replays and removes them (`paracell-admin dead-letters …`), or moves
//! them to the replay queue the function listens on.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use paracell_domain::ports::StoreError;
use paracell_domain::replication::relay::{DeadLetter, DeadLetters};
use std::time::Duration;

/// Where the queue is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// The queue's URL.
    pub queue_url: String,
    /// An endpoint override (a local stand-in).
    pub endpoint: Option<String>,
}

impl SqsConfig {
    /// Reads `PARACELL_DEAD_LETTER_QUEUE_URL` (required) and `PARACELL_SQS_ENDPOINT` (optional).
    ///
    /// ```
    /// use paracell_aws::outbound::sqs::SqsConfig;
    /// let env = |n: &str| (n == "PARACELL_DEAD_LETTER_QUEUE_URL").then(|| "http://q".to_string());
    /// assert_eq!(SqsConfig::from_lookup(env).unwrap().queue_url, "http://q");
    /// assert!(SqsConfig::from_lookup(|_| None).is_err());
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let queue_url = lookup("PARACELL_DEAD_LETTER_QUEUE_URL")
            .filter(|v| !v.is_empty())
            .ok_or("the relay needs PARACELL_DEAD_LETTER_QUEUE_URL (its SQS dead-letter queue)")?;
        Ok(Self {
            queue_url,
            endpoint: lookup("PARACELL_SQS_ENDPOINT").filter(|v| !v.is_empty()),
        })
    }
}

/// Dead letters on an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// Connects with the SDK's usual settings (region, credentials).
    pub async fn connect(config: &SqsConfig) -> Self {
        let mut loader =
            aws_config::from_env().retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self {
            client: Client::new(&loader.load().await),
            queue_url: config.queue_url.clone(),
        }
    }

    /// The SDK client (tests read other queues with it, such as an EventBridge rule's target).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates a queue named `name` (local runs and tests) and returns its URL.
    pub async fn create_queue(config: &SqsConfig, name: &str) -> Result<String, StoreError> {
        let this = Self::connect(config).await;
        let out = this
            .client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| failure("CreateQueue", e))?;
        out.queue_url
            .ok_or_else(|| StoreError::Failed("CreateQueue returned no URL".into()))
    }

    /// The queue's ARN (what an EventBridge rule targets).
    pub async fn queue_arn(&self) -> Result<String, StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| failure("GetQueueAttributes", e))?;
        out.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| StoreError::Failed("GetQueueAttributes returned no QueueArn".into()))
    }
}

fn failure<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &str,
    error: SdkError<E, R>,
) -> StoreError {
    let detail = format!("{operation}: {}", DisplayErrorContext(&error));
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable {
                retry_after_secs: 1,
                detail,
            }
        }
        _ => StoreError::Failed(detail),
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn put(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter.render())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure("SendMessage", e))
    }

    /// Up to `limit` letters, received with a zero visibility timeout so listing hides nothing; the
    /// ids are receipt handles, valid for [`DeadLetters::remove`] until the next receive.
    async fn list(&self, limit: usize) -> Result<Vec<(String, DeadLetter)>, StoreError> {
        let mut letters = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        // Messages stay visible, so every receive may return ones already listed: stop after two
        // receives that bring nothing new.
        let mut idle_rounds = 0;
        while letters.len() < limit && idle_rounds < 2 {
            let batch = i32::try_from((limit - letters.len()).min(10)).unwrap_or(10);
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(batch)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| failure("ReceiveMessage", e))?;
            let before = letters.len();
            for message in out.messages.unwrap_or_default() {
                let (Some(id), Some(handle), Some(body)) =
                    (message.message_id, message.receipt_handle, message.body)
                else {
                    continue;
                };
                if seen.insert(id) {
                    letters.push((
                        handle,
                        DeadLetter::parse(&body).map_err(|e| StoreError::Failed(e.to_string()))?,
                    ));
                }
            }
            if letters.len() == before {
                idle_rounds += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(letters)
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure("DeleteMessage", e))
    }
}
