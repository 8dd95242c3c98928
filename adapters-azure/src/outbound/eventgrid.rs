//! The public event bus on Azure: an Event Grid custom topic in the CloudEvents schema.
//!
//! The relay hands this destination the entries the cell committed; it publishes the
//! `TransactionAccepted` CloudEvent each accepted entry carries, byte for byte as the domain rendered
//! it (the same document the AWS relay puts on EventBridge), as a CloudEvents batch:
//! `POST <topic>/api/events?api-version=2018-01-01` with
//! `Content-Type: application/cloudevents-batch+json; charset=utf-8` and an `aeg-sas-key` or an Entra
//! ID bearer token.
//!
//! Event Grid answers a batch all or nothing, so the answer decides the fate of every event in it:
//! 2xx delivered; 413 splits the batch in halves and sends each (a single event that is still too
//! large is poison); 408, 429 and 5xx, or no answer, ask the relay to retry those events with backoff;
//! 401 and 403 refuse our credentials — a configuration fault: the events stay pending and the
//! refusal is alarmed (never dead-lettered); 400, 404 and anything else are poison, dead-lettered
//! with the status and the service's message. Sizes are checked before sending: an event over [`MAX_BYTES`] is never sent.

use paracell_domain::placement::quorum::events::{
    EventPublisher, PublishError as ControlPublishError,
};
use paracell_domain::ports::{HttpClient, OutboundRequest, OutboundResponse};
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::bus::{BatchLimits, BusBatch};
use paracell_domain::replication::relay::{Delivery, DeliveryError, Destination};
use std::sync::Arc;
use std::time::Duration;

/// Event Grid's limit for one event and for one publish request: 1 MB.
pub const MAX_BYTES: usize = 1_048_576;

/// The content type of a CloudEvents batch, with the charset Event Grid expects.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json; charset=utf-8";

/// The publish API version.
pub const API_VERSION: &str = "2018-01-01";

/// Where bearer tokens come from (the port is the domain's); Entra ID through `azure_identity`,
/// feature `entra`: [`crate::outbound::entra::EntraTokens`].
pub use paracell_domain::ports::AccessTokens;

/// How the relay proves it may publish to the topic.
#[derive(Clone)]
pub enum TopicAuth {
    /// The topic's access key, sent as `aeg-sas-key`.
    SasKey(String),
    /// Microsoft Entra ID access tokens for `https://eventgrid.azure.net/.default` (role "EventGrid
    /// Data Sender"), sent as `Authorization: Bearer`; a refused token is dropped and the call made
    /// once more with a fresh one.
    Entra(Arc<dyn AccessTokens>),
}

impl std::fmt::Debug for TopicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str(match self {
            Self::SasKey(_) => "SasKey(..)",
            Self::Entra(_) => "Entra(..)",
        })
    }
}

/// An Event Grid custom topic as a relay [`Destination`].
///
/// ```
/// use paracell_azure::outbound::eventgrid::{EventGridTopic, TopicAuth};
/// # struct Nowhere;
/// # #[async_trait::async_trait]
/// # impl paracell_domain::ports::HttpClient for Nowhere {
/// #     async fn send(&self, _: paracell_domain::ports::OutboundRequest)
/// #         -> Result<paracell_domain::ports::OutboundResponse, paracell_domain::ports::TransportError> {
/// #         Err(paracell_domain::ports::TransportError::Connect("offline".into()))
/// #     }
/// # }
/// use paracell_domain::replication::relay::Destination;
/// let topic = EventGridTopic::new(
///     "https://cells.westeurope-1.eventgrid.azure.net",
///     TopicAuth::SasKey("key".into()),
///     std::sync::Arc::new(Nowhere),
/// );
/// assert_eq!(topic.name(), "eventgrid:cells.westeurope-1.eventgrid.azure.net");
/// ```
pub struct EventGridTopic {
    name: String,
    url: String,
    auth: TopicAuth,
    client: Arc<dyn HttpClient>,
    timeout: Duration,
    max_bytes: usize,
}

impl EventGridTopic {
    /// The topic at `endpoint` (its base URL, `https://<topic>.<region>-1.eventgrid.azure.net`, or a
    /// full `…/api/events` URL).
    pub fn new(endpoint: &str, auth: TopicAuth, client: Arc<dyn HttpClient>) -> Self {
        let base = endpoint.trim_end_matches('/');
        let base = base
            .split_once("/api/events")
            .map_or(base, |(before, _)| before);
        let host = base
            .split_once("://")
            .map_or(base, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or(base);
        Self {
            name: format!("eventgrid:{host}"),
            url: format!("{base}/api/events?api-version={API_VERSION}"),
            auth,
            client,
            timeout: Duration::from_secs(30),
            max_bytes: MAX_BYTES,
        }
    }

    /// Lowers the size limit (tests; a topic behind a proxy with a smaller limit).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(2);
        self
    }

    /// A JSON array: `[`, `]` and a comma between events.
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_items: usize::MAX,
            max_bytes: self.max_bytes,
            frame: 2,
            separator: 1,
        }
    }

    /// The publish request, or why no credential could be had (a token source that failed).
    async fn request(&self, events: &[&str]) -> Result<OutboundRequest, String> {
        let mut headers = vec![("content-type".to_owned(), BATCH_CONTENT_TYPE.to_owned())];
        headers.push(match &self.auth {
            TopicAuth::SasKey(key) => ("aeg-sas-key".to_owned(), key.clone()),
            TopicAuth::Entra(tokens) => (
                "authorization".to_owned(),
                format!(
                    "Bearer {}",
                    tokens.token().await.map_err(|e| e.to_string())?
                ),
            ),
        });
        Ok(OutboundRequest {
            method: "POST".into(),
            url: self.url.clone(),
            headers,
            body: batch_body(events).into_bytes(),
            timeout: self.timeout,
        })
    }

    /// One publish; a refused token is dropped and the publish made once more with a fresh one.
    async fn post(&self, events: &[&str]) -> Result<OutboundResponse, PublishError> {
        let response = self.send(events).await?;
        match (&self.auth, response.status) {
            (TopicAuth::Entra(tokens), 401 | 403) => {
                tokens.invalidate();
                self.send(events).await
            }
            _ => Ok(response),
        }
    }

    async fn send(&self, events: &[&str]) -> Result<OutboundResponse, PublishError> {
        let request = self
            .request(events)
            .await
            .map_err(|e| PublishError::Credential(format!("{}: {e}", self.name)))?;
        self.client
            .send(request)
            .await
            .map_err(|e| PublishError::Transport(format!("{}: {e}", self.name)))
    }

    /// What the topic's answer to one publish means for every event in it (a 413 for more than one
    /// event is split by the relay first): the rule for the cells' events and the controllers'
    /// decisions alike.
    fn fate(&self, answer: Result<OutboundResponse, PublishError>) -> Delivery {
        match answer {
            Err(PublishError::Transport(e)) => Delivery::Retry(e),
            Err(PublishError::Credential(e)) => Delivery::Unauthorized(e),
            Ok(response) => match response.status {
                200..=299 => Delivery::Delivered,
                // Our key or token is refused: a configuration fault (an expired token, a
                // rotated key, a missing role), kept pending and alarmed, never poison.
                401 | 403 => Delivery::Unauthorized(self.describe(&response)),
                408 | 429 | 500..=599 => Delivery::Retry(self.describe(&response)),
                _ => Delivery::Poison(self.describe(&response)),
            },
        }
    }

    fn describe(&self, response: &OutboundResponse) -> String {
        let text = String::from_utf8_lossy(&response.body);
        format!(
            "{} answered {}: {}",
            self.name,
            response.status,
            text.chars().take(300).collect::<String>()
        )
    }
}

/// Why a publish got no answer.
enum PublishError {
    /// No token could be had: a configuration fault (kept pending, alarmed).
    Credential(String),
    /// The topic could not be reached: retried.
    Transport(String),
}

/// A JSON array of the documents, each embedded as it is.
fn batch_body(events: &[&str]) -> String {
    let mut body = String::with_capacity(2 + events.iter().map(|e| e.len() + 1).sum::<usize>());
    body.push('[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push(']');
    body
}

#[async_trait::async_trait]
impl Destination for EventGridTopic {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, entry: &SealedEntry) -> bool {
        paracell_domain::replication::bus::carries_event(entry)
    }

    async fn deliver(&self, entries: &[SealedEntry]) -> Result<Vec<Delivery>, DeliveryError> {
        let mut batch = BusBatch::screen(
            entries,
            |event: &str| Ok(event.to_owned()),
            |event: &String| event.len(),
            self.limits(),
            |size| {
                format!(
                    "{}: the event is {size} bytes, over Event Grid's limit of {} bytes",
                    self.name, self.max_bytes
                )
            },
        );
        // A stack of calls still to make; a 413 pushes the two halves of its call.
        let mut pending = batch.calls();
        pending.reverse();
        while let Some(call) = pending.pop() {
            let events: Vec<&str> = batch.items(&call).map(String::as_str).collect();
            let answer = self.post(&events).await;
            if matches!(&answer, Ok(r) if r.status == 413) && call.len() > 1 {
                let (first, second) = call.split_at(call.len() / 2);
                pending.push(second.to_vec());
                pending.push(first.to_vec());
                continue;
            }
            let outcome = self.fate(answer);
            batch.settle_all(&call, &outcome);
        }
        Ok(batch.finish())
    }
}

/// A failover controller's decisions on the topic (a batch of one): 2xx taken; 401/403 our
/// credentials; 408, 429, 5xx or no answer sent again later; anything else (400, 404, 413) a
/// rejection. Sizes are checked before sending, as for the relay.
#[async_trait::async_trait]
impl EventPublisher for EventGridTopic {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, document: &str) -> Result<(), ControlPublishError> {
        if document.len() + 2 > self.max_bytes {
            return Err(ControlPublishError::Rejected(format!(
                "{}: the event is {} bytes, over Event Grid's limit of {} bytes",
                self.name,
                document.len(),
                self.max_bytes
            )));
        }
        ControlPublishError::from_delivery(self.fate(self.post(&[document]).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Offline;
    #[async_trait::async_trait]
    impl HttpClient for Offline {
        async fn send(
            &self,
            _: OutboundRequest,
        ) -> Result<OutboundResponse, paracell_domain::ports::TransportError> {
            Err(paracell_domain::ports::TransportError::Timeout)
        }
    }

    fn topic(endpoint: &str) -> EventGridTopic {
        EventGridTopic::new(endpoint, TopicAuth::SasKey("k".into()), Arc::new(Offline))
    }

    #[test]
    fn batches_fit_the_limit_and_keep_the_order() {
        // "[aaaa,bbbb]" is 11 bytes, as the limits count it; a third event makes 16.
        assert_eq!(batch_body(&["aaaa", "bbbb"]).len(), 11);
        let items = [(0, 4), (1, 4), (2, 4), (3, 9)];
        let limits = topic("http://x").with_max_bytes(11).limits();
        assert_eq!(limits.pack(&items), vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(
            topic("http://x").limits().pack(&items),
            vec![vec![0, 1, 2, 3]]
        );
        assert!(!limits.fits(10) && limits.fits(9));
    }

    /// Answers every publish with `status`, keeping the bodies it got.
    struct Answers {
        status: u16,
        bodies: std::sync::Mutex<Vec<String>>,
    }
    #[async_trait::async_trait]
    impl HttpClient for Answers {
        async fn send(
            &self,
            request: OutboundRequest,
        ) -> Result<OutboundResponse, paracell_domain::ports::TransportError> {
            self.bodies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from_utf8_lossy(&request.body).into_owned());
            Ok(OutboundResponse {
                status: self.status,
                headers: vec![],
                body: b"{}".to_vec(),
            })
        }
    }

    #[test]
    fn a_controller_decision_is_one_event_batch_and_each_answer_has_its_fate() {
        let doc =
            r#"{"specversion":"1.0","id":"1","source":"/controllers/azure","type":"t","data":{}}"#;
        let publish = |status| {
            let client = Arc::new(Answers {
                status,
                bodies: std::sync::Mutex::new(vec![]),
            });
            let topic =
                EventGridTopic::new("http://x", TopicAuth::SasKey("k".into()), client.clone());
            let out = paracell_domain::testing::block_on(EventPublisher::publish(&topic, doc));
            let bodies = client.bodies.lock().map(|b| b.clone()).unwrap_or_default();
            (out, bodies)
        };
        let (out, bodies) = publish(200);
        assert_eq!(out, Ok(()));
        assert_eq!(bodies, vec![format!("[{doc}]")]);
        assert!(matches!(
            publish(403).0,
            Err(ControlPublishError::Refused(_))
        ));
        assert!(matches!(
            publish(429).0,
            Err(ControlPublishError::Unavailable(_))
        ));
        assert!(matches!(
            publish(503).0,
            Err(ControlPublishError::Unavailable(_))
        ));
        assert!(matches!(
            publish(400).0,
            Err(ControlPublishError::Rejected(_))
        ));
        let topic = topic("http://x");
        assert!(matches!(
            paracell_domain::testing::block_on(EventPublisher::publish(&topic, doc)),
            Err(ControlPublishError::Unavailable(_))
        ));
        let small = topic.with_max_bytes(10);
        assert!(matches!(
            paracell_domain::testing::block_on(EventPublisher::publish(&small, doc)),
            Err(ControlPublishError::Rejected(_))
        ));
    }

    #[test]
    fn the_endpoint_may_be_a_base_or_the_full_publish_url() {
        for endpoint in [
            "http://127.0.0.1:9/",
            "http://127.0.0.1:9/api/events?api-version=2018-01-01",
        ] {
            let topic = topic(endpoint);
            assert_eq!(
                topic.url,
                "http://127.0.0.1:9/api/events?api-version=2018-01-01"
            );
            assert_eq!(topic.name, "eventgrid:127.0.0.1:9");
        }
    }
}
