//! The public event bus on AWS: an EventBridge bus, published to with `PutEvents`.
//!
//! How the CloudEvent travels: each accepted entry's `TransactionAccepted` document becomes one
//! `PutEvents` entry with `Source` = the CloudEvent's `source` (`/cells/<cell>`), `DetailType` = its
//! `type` (`dev.paracell.transaction.accepted.v1`), `Detail` = the whole structured CloudEvent, and
//! `EventBusName` = the bus. Rules match on `source` and `detail-type`; a target receives the
//! EventBridge envelope with the CloudEvent as `detail` (an object, re-serialised by EventBridge):
//! `TransactionAccepted::parse` reads it and `TransactionAccepted::document` gives back the exact
//! bytes the cell rendered.
//!
//! The limits are checked before sending: at most [`MAX_ENTRIES`] entries per call, and an entry's
//! size (UTF-8 bytes of `Source` + `DetailType` + `Detail`, as AWS counts it) and a call's total at
//! most [`MAX_BYTES`]; an entry over the limit is never sent (poison, with the sizes). `PutEvents`
//! answers 200 even when entries failed: its `Entries` are positional, and only the failed ones are
//! sent again (`ThrottlingException`, `InternalFailure`), or dead-lettered with the error code and
//! message (anything else, such as `MalformedDetail`).
//!
//! The SDK call sits behind the [`PutEvents`] port (one method: send these entries, answer per
//! entry), so every rule above is tested without a network; [`SdkEventBridge`] implements it with
//! `aws-sdk-eventbridge` under the `eventbridge` feature.

use paracell_domain::events::TRANSACTION_ACCEPTED;
use paracell_domain::placement::quorum::events::{EventPublisher, PublishError};
use paracell_domain::replication::SealedEntry;
use paracell_domain::replication::bus::{BatchLimits, BusBatch};
use paracell_domain::replication::relay::{Delivery, DeliveryError, Destination};
use std::sync::Arc;

#[cfg(feature = "eventbridge")]
mod sdk;
#[cfg(feature = "eventbridge")]
pub use sdk::SdkEventBridge;

/// Entries per `PutEvents` call.
pub const MAX_ENTRIES: usize = 10;

/// The size limit of one entry and of one call: 1 MiB (raised from 256 KB in January 2026).
pub const MAX_BYTES: usize = 1_048_576;

/// One `PutEvents` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// `Source`: the CloudEvent's `source`.
    pub source: String,
    /// `DetailType`: the CloudEvent's `type`.
    pub detail_type: String,
    /// `Detail`: the structured CloudEvent document.
    pub detail: String,
    /// `EventBusName`.
    pub bus: String,
}

impl BusEntry {
    /// The entry carrying a `TransactionAccepted` document to `bus`.
    ///
    /// ```
    /// use paracell_aws::outbound::eventbridge::BusEntry;
    /// let entry = paracell_domain::testing::sample_entry();
    /// let bus = BusEntry::for_event(&entry.event().unwrap(), "cells").unwrap();
    /// assert_eq!(bus.detail_type, "dev.paracell.transaction.accepted.v1");
    /// assert!(bus.source.starts_with("/cells/"));
    /// assert_eq!(bus.detail, entry.event().unwrap().as_ref());
    /// ```
    pub fn for_event(document: &str, bus: &str) -> Result<Self, String> {
        let entry = Self::for_cloud_event(document, bus)?;
        if entry.detail_type != TRANSACTION_ACCEPTED {
            return Err(format!("unexpected event type {}", entry.detail_type));
        }
        Ok(entry)
    }

    /// The entry carrying any structured CloudEvent `document` to `bus` (a failover controller's
    /// decision, say): `Source` and `DetailType` from its `source` and `type`, as for
    /// [`Self::for_event`].
    ///
    /// ```
    /// use paracell_aws::outbound::eventbridge::BusEntry;
    /// let doc = r#"{"specversion":"1.0","id":"1","source":"/controllers/aws","type":"dev.paracell.failover.decision.v1","data":{}}"#;
    /// let entry = BusEntry::for_cloud_event(doc, "control").unwrap();
    /// assert_eq!((entry.source.as_str(), entry.detail_type.as_str()), ("/controllers/aws", "dev.paracell.failover.decision.v1"));
    /// assert!(BusEntry::for_cloud_event("{}", "control").is_err());
    /// ```
    pub fn for_cloud_event(document: &str, bus: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            source: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
        }
        let head: Head<'_> =
            serde_json::from_str(document).map_err(|e| format!("not a CloudEvent: {e}"))?;
        Ok(Self {
            source: head.source.to_owned(),
            detail_type: head.kind.to_owned(),
            detail: document.to_owned(),
            bus: bus.to_owned(),
        })
    }

    /// The entry's size as EventBridge counts it.
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// What `PutEvents` said of one entry (its `Entries`, in request order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Accepted: the bus's `EventId`.
    Accepted(String),
    /// Failed: `ErrorCode` and `ErrorMessage`.
    Failed {
        /// `ErrorCode`.
        code: String,
        /// `ErrorMessage`.
        message: String,
    },
}

/// The `PutEvents` call: the port the SDK (or a test) implements.
#[async_trait::async_trait]
pub trait PutEvents: Send + Sync {
    /// Sends at most [`MAX_ENTRIES`] entries; on `Ok`, one result per entry in order. A call the
    /// service refused whole is `Err` (throttled or unreachable: retryable; denied: rejected).
    async fn put_events(&self, entries: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError>;
}

/// Error codes of a failed entry that are worth sending again.
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "InternalFailure" | "InternalException" | "ServiceUnavailable"
    )
}

/// An EventBridge bus as a relay [`Destination`].
pub struct EventBridgeBus {
    name: String,
    bus: String,
    api: Arc<dyn PutEvents>,
    max_bytes: usize,
}

impl EventBridgeBus {
    /// The bus named `bus` (a name or an ARN), reached through `api`.
    pub fn new(bus: &str, api: Arc<dyn PutEvents>) -> Self {
        Self {
            name: format!("eventbridge:{bus}"),
            bus: bus.to_owned(),
            api,
            max_bytes: MAX_BYTES,
        }
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_items: MAX_ENTRIES,
            max_bytes: self.max_bytes,
            frame: 0,
            separator: 0,
        }
    }

    /// Lowers the size limit (tests; a bus reached through a tool with the old 256 KB limit).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }
}

impl EventBridgeBus {
    /// What `PutEvents` said of `sent` entries, entry by entry: the rule for the cells' events and
    /// the controllers' decisions alike.
    fn fates(&self, sent: usize, answer: Result<Vec<EntryResult>, DeliveryError>) -> Vec<Delivery> {
        match answer {
            Ok(answers) if answers.len() == sent => answers
                .into_iter()
                .map(|answer| match answer {
                    EntryResult::Accepted(_) => Delivery::Delivered,
                    EntryResult::Failed { code, message } => {
                        let reason = format!("{}: {code}: {message}", self.name);
                        if retryable(&code) {
                            Delivery::Retry(reason)
                        } else {
                            Delivery::Poison(reason)
                        }
                    }
                })
                .collect(),
            Ok(answers) => vec![
                Delivery::Retry(format!(
                    "{}: {} results for {sent} entries",
                    self.name,
                    answers.len(),
                ));
                sent
            ],
            Err(DeliveryError::Retryable { reason, .. }) => vec![Delivery::Retry(reason); sent],
            Err(DeliveryError::Rejected(reason)) => {
                vec![Delivery::Poison(format!("rejected: {reason}")); sent]
            }
            Err(DeliveryError::Unauthorized(reason)) => vec![Delivery::Unauthorized(reason); sent],
        }
    }
}

#[async_trait::async_trait]
impl Destination for EventBridgeBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, entry: &SealedEntry) -> bool {
        paracell_domain::replication::bus::carries_event(entry)
    }

    async fn deliver(&self, entries: &[SealedEntry]) -> Result<Vec<Delivery>, DeliveryError> {
        let mut batch = BusBatch::screen(
            entries,
            |event| BusEntry::for_event(event, &self.bus),
            BusEntry::size,
            self.limits(),
            |size| {
                format!(
                    "{}: the entry is {size} bytes, over EventBridge's limit of {} bytes",
                    self.name, self.max_bytes
                )
            },
        );
        for call in batch.calls() {
            let sent: Vec<BusEntry> = batch.items(&call).cloned().collect();
            let outcomes = self.fates(sent.len(), self.api.put_events(&sent).await);
            batch.settle(&call, &outcomes);
        }
        Ok(batch.finish())
    }
}

/// A failover controller's decisions on the bus (`PutEvents`, one entry each): throttling and
/// AWS's own failures are sent again later, a denied call is our credentials, anything else a
/// rejection.
#[async_trait::async_trait]
impl EventPublisher for EventBridgeBus {
    fn name(&self) -> &str {
        &self.name
    }

    async fn publish(&self, document: &str) -> Result<(), PublishError> {
        let entry = BusEntry::for_cloud_event(document, &self.bus)
            .map_err(|e| PublishError::Rejected(format!("{}: {e}", self.name)))?;
        if entry.size() > self.max_bytes {
            return Err(PublishError::Rejected(format!(
                "{}: the entry is {} bytes, over EventBridge's limit of {} bytes",
                self.name,
                entry.size(),
                self.max_bytes
            )));
        }
        let answer = self.api.put_events(std::slice::from_ref(&entry)).await;
        // `fates` gives one fate per entry sent: exactly one here.
        let fate = self.fates(1, answer).pop();
        PublishError::from_delivery(
            fate.unwrap_or_else(|| Delivery::Retry(format!("{}: no fate", self.name))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every call with `answer`, keeping the entries it got.
    struct Answers {
        answer: Result<Vec<EntryResult>, DeliveryError>,
        got: std::sync::Mutex<Vec<BusEntry>>,
    }
    #[async_trait::async_trait]
    impl PutEvents for Answers {
        async fn put_events(
            &self,
            entries: &[BusEntry],
        ) -> Result<Vec<EntryResult>, DeliveryError> {
            self.got
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(entries);
            self.answer.clone()
        }
    }

    #[test]
    fn a_controller_decision_is_one_entry_and_each_answer_has_its_fate() {
        let doc = r#"{"specversion":"1.0","id":"1","source":"/controllers/aws","type":"dev.paracell.failover.decision.v1","data":{}}"#;
        let publish = |answer| {
            let api = Arc::new(Answers {
                answer,
                got: std::sync::Mutex::new(vec![]),
            });
            let bus = EventBridgeBus::new("control", api.clone());
            let out = paracell_domain::testing::block_on(EventPublisher::publish(&bus, doc));
            let got = api.got.lock().map(|g| g.clone()).unwrap_or_default();
            (out, got)
        };
        let (out, got) = publish(Ok(vec![EntryResult::Accepted("e-1".into())]));
        assert_eq!(out, Ok(()));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (
                got[0].source.as_str(),
                got[0].detail_type.as_str(),
                got[0].bus.as_str()
            ),
            (
                "/controllers/aws",
                "dev.paracell.failover.decision.v1",
                "control"
            )
        );
        assert_eq!(got[0].detail, doc, "the document as rendered");
        let failed = |code: &str| {
            Ok(vec![EntryResult::Failed {
                code: code.into(),
                message: "m".into(),
            }])
        };
        assert!(matches!(
            publish(failed("ThrottlingException")).0,
            Err(PublishError::Unavailable(_))
        ));
        assert!(matches!(
            publish(failed("MalformedDetail")).0,
            Err(PublishError::Rejected(_))
        ));
        assert!(matches!(
            publish(Err(DeliveryError::Unauthorized("AccessDenied".into()))).0,
            Err(PublishError::Refused(_))
        ));
        assert!(matches!(
            publish(Ok(vec![])).0,
            Err(PublishError::Unavailable(_))
        ));
        let api = Arc::new(Answers {
            answer: Ok(vec![]),
            got: std::sync::Mutex::new(vec![]),
        });
        let small = EventBridgeBus::new("control", api.clone()).with_max_bytes(10);
        assert!(matches!(
            paracell_domain::testing::block_on(EventPublisher::publish(&small, doc)),
            Err(PublishError::Rejected(_))
        ));
        assert!(
            api.got.lock().map(|g| g.is_empty()).unwrap_or(false),
            "never sent"
        );
    }

    #[test]
    fn calls_hold_at_most_ten_entries_and_the_size_limit() {
        struct Never;
        #[async_trait::async_trait]
        impl PutEvents for Never {
            async fn put_events(&self, _: &[BusEntry]) -> Result<Vec<EntryResult>, DeliveryError> {
                Err(DeliveryError::Rejected("never".into()))
            }
        }
        let items: Vec<(usize, usize)> = (0..23).map(|i| (i, 10)).collect();
        let bus = EventBridgeBus::new("b", Arc::new(Never));
        let sizes: Vec<usize> = bus.limits().pack(&items).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let bus = bus.with_max_bytes(25);
        let sizes: Vec<usize> = bus.limits().pack(&items).iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 23);
        assert_eq!(sizes.len(), 12, "two entries of 10 bytes per 25-byte call");
    }
}
