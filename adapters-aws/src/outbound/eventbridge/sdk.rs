//! [`PutEvents`] with `aws-sdk-eventbridge` (feature `eventbridge`).

use super::{BusEntry, EntryResult, PutEvents};
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::retry::RetryConfig;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use paracell_domain::replication::relay::DeliveryError;

/// The SDK's EventBridge client as the [`PutEvents`] port.
#[derive(Debug, Clone)]
pub struct SdkEventBridge {
    client: Client,
}

impl SdkEventBridge {
    /// Connects with the SDK's usual settings (region, credentials), at `endpoint` if given (a local
    /// stand-in). The SDK's own retries are kept low: the relay retries with its own budget.
    pub async fn connect(endpoint: Option<&str>) -> Self {
        let mut loader =
            aws_config::from_env().retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        Self {
            client: Client::new(&loader.load().await),
        }
    }

    /// Creates the bus `bus` with a rule `rule` that sends every `TransactionAccepted` CloudEvent
    /// (matched on `source` prefix `/cells/` and `detail-type`) to the SQS queue `queue_arn` (local
    /// runs, drills and tests; deployments declare the same in their templates).
    pub async fn create_bus_with_queue_target(
        &self,
        bus: &str,
        rule: &str,
        queue_arn: &str,
    ) -> Result<(), String> {
        let pattern = format!(
            r#"{{"source":[{{"prefix":"/cells/"}}],"detail-type":["{}"]}}"#,
            paracell_domain::events::TRANSACTION_ACCEPTED
        );
        self.create_bus_with_rule(bus, rule, &pattern, queue_arn)
            .await
    }

    /// Creates the bus `bus` and a rule on it sending every event `pattern` matches to the SQS
    /// queue `queue_arn` (a failover controller's decisions, say).
    pub async fn create_bus_with_rule(
        &self,
        bus: &str,
        rule: &str,
        pattern: &str,
        queue_arn: &str,
    ) -> Result<(), String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        self.client
            .create_event_bus()
            .name(bus)
            .send()
            .await
            .map_err(|e| fail("CreateEventBus", &DisplayErrorContext(&e)))?;
        self.client
            .put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .send()
            .await
            .map_err(|e| fail("PutRule", &DisplayErrorContext(&e)))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(queue_arn)
            .build()
            .map_err(|e| fail("Target", &e))?;
        self.client
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| fail("PutTargets", &DisplayErrorContext(&e)))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl PutEvents for SdkEventBridge {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .source(&e.source)
                    .detail_type(&e.detail_type)
                    .detail(&e.detail)
                    .event_bus_name(&e.bus)
                    .build()
            })
            .collect();
        match self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
        {
            Ok(out) => Ok(out
                .entries()
                .iter()
                .map(|r| match r.error_code() {
                    Some(code) => EntryResult::Failed {
                        code: code.to_owned(),
                        message: r.error_message().unwrap_or_default().to_owned(),
                    },
                    None => EntryResult::Accepted(r.event_id().unwrap_or_default().to_owned()),
                })
                .collect()),
            Err(e) => {
                let reason = format!("PutEvents: {}", DisplayErrorContext(&e));
                let retry = match &e {
                    SdkError::ServiceError(service) => matches!(
                        service.err().code(),
                        Some("ThrottlingException" | "InternalException" | "InternalFailure")
                    ),
                    SdkError::ResponseError(_)
                    | SdkError::DispatchFailure(_)
                    | SdkError::TimeoutError(_) => true,
                    _ => false,
                };
                // The function's role may not publish (or its credentials expired): a configuration
                // fault, never the events' fault.
                let unauthorized = match &e {
                    SdkError::ServiceError(service) => matches!(
                        service.err().code(),
                        Some(
                            "AccessDeniedException"
                                | "UnrecognizedClientException"
                                | "ExpiredTokenException"
                                | "InvalidSignatureException"
                        )
                    ),
                    _ => false,
                };
                if unauthorized {
                    Err(DeliveryError::Unauthorized(reason))
                } else if retry {
                    Err(DeliveryError::Retryable {
                        reason,
                        retry_after: None,
                    })
                } else {
                    Err(DeliveryError::Rejected(reason))
                }
            }
        }
    }
}
