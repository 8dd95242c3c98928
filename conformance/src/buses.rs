//! What each cloud's relay would publish on its event bus for a cell's entries: the CloudEvent
//! documents an AWS cell puts on EventBridge (`Detail` of each `PutEvents` entry) and those an Azure
//! cell posts to Event Grid (the elements of each CloudEvents batch), captured in process through
//! the adapters' own publishers. The runner compares them across envelopes: the same outcome must
//! yield the same event, byte for byte, on both clouds.

use paracell_aws::outbound::eventbridge::{BusEntry, EntryResult, EventBridgeBus, PutEvents};
use paracell_azure::outbound::eventgrid::{EventGridTopic, TopicAuth};
use paracell_domain::memory::{MemoryDeadLetters, MemoryStore, NoSleep};
use paracell_domain::ports::{
    HttpClient, OutboundRequest, OutboundResponse, SystemClock, TransactionStore, TransportError,
};
use paracell_domain::replication::relay::{DeliveryError, Destination, Relay};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Captured(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl PutEvents for Captured {
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
        let mut documents = self.0.lock().unwrap_or_else(|p| p.into_inner());
        documents.extend(entries.iter().map(|e| e.detail.clone()));
        Ok(entries
            .iter()
            .map(|_| EntryResult::Accepted("captured".into()))
            .collect())
    }
}

#[async_trait::async_trait]
impl HttpClient for Captured {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let events: Vec<Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&request.body)
                .map_err(|e| TransportError::Broken(e.to_string()))?;
        let mut documents = self.0.lock().unwrap_or_else(|p| p.into_inner());
        documents.extend(events.into_iter().map(|e| e.get().to_owned()));
        Ok(OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// The CloudEvent documents the cell's cloud bus would carry for every entry in `store`, in the
/// order the relay publishes them.
pub async fn published(store: &MemoryStore, aws: bool) -> Result<Vec<String>, String> {
    let captured = Arc::new(Captured::default());
    let bus: Arc<dyn Destination> = if aws {
        Arc::new(EventBridgeBus::new("conformance", captured.clone()))
    } else {
        Arc::new(EventGridTopic::new(
            "http://event-grid.invalid",
            TopicAuth::SasKey("conformance".into()),
            captured.clone(),
        ))
    };
    let entries = store
        .pending_entries(None, usize::MAX)
        .await
        .map_err(|e| e.to_string())?
        .entries;
    let relay = Relay::new(
        vec![bus],
        Arc::new(MemoryDeadLetters::new()),
        Arc::new(NoSleep),
        Arc::new(SystemClock),
    );
    let report = relay.relay(&entries).await;
    if report.dead_lettered > 0 || !report.failed.is_empty() {
        return Err(format!("the bus refused events: {}", report.summary()));
    }
    let documents = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(documents.iter().map(|d| untraced(d)).collect())
}

/// `document` without its `traceparent`/`tracestate` members, plain or inside an escaped JSON
/// string: the trace differs on every run (each request starts or continues its own), the rest of a
/// published document must not. What the cells write is otherwise compared byte for byte.
pub fn untraced(document: &str) -> String {
    let mut out = document.to_owned();
    for quote in ["\"", "\\\""] {
        for member in ["traceparent", "tracestate"] {
            let start = format!(",{quote}{member}{quote}:{quote}");
            while let Some(at) = out.find(&start) {
                let value = at + start.len();
                // The value ends at the next unescaped quote of this nesting level.
                let Some(end) = out[value..].find(quote).map(|e| value + e + quote.len()) else {
                    break;
                };
                out.replace_range(at..end, "");
            }
        }
    }
    out
}
