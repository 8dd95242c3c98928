//! What the outage drill's controllers published: their decisions as CloudEvents on their buses —
//! EventBridge on moto (a bus per run, a rule sending every `dev.paracell.failover.decision.v1` to an
//! SQS queue the drill reads) for the observer on AWS, and the Event Grid topic stand-in for those on
//! Azure and on the witness's provider (which has no bus of ours: it publishes to Azure's, so an
//! Azure outage holds its events until the heal — they are sent then, in order).

use crate::wire;
use paracell_aws::outbound::eventbridge::SdkEventBridge;
use paracell_domain::placement::quorum::events::FAILOVER_DECISION;
use serde_json::Value;

/// The two buses of one run, and how to read them.
pub(crate) struct DecisionBuses {
    /// The EventBridge bus the AWS controller publishes to.
    pub(crate) bus: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
    topic_port: u16,
    /// Events the topic stand-in held before this run (other runs' and drills').
    topic_offset: usize,
    /// Every decision read so far (CloudEvents), both buses.
    read: Vec<Value>,
}

impl DecisionBuses {
    /// Creates the run's bus, rule and queue on moto, and notes where the topic stand-in is.
    pub(crate) async fn create(moto: &str, run: &str, topic_port: u16) -> Result<Self, String> {
        let (queue_url, arn, sqs) = super::queue::create(moto, &format!("decisions-{run}")).await?;
        let bus = format!("control-{run}");
        SdkEventBridge::connect(Some(moto))
            .await
            .create_bus_with_rule(
                &bus,
                &format!("decisions-{run}"),
                &format!(r#"{{"detail-type":["{FAILOVER_DECISION}"]}}"#),
                &arn,
            )
            .await?;
        let topic_offset = topic_events(topic_port)?.len();
        Ok(Self {
            bus,
            queue_url,
            sqs,
            topic_port,
            topic_offset,
            read: Vec::new(),
        })
    }

    /// Every decision published so far, both buses (each read once; duplicates kept).
    pub(crate) async fn decisions(&mut self) -> Result<&[Value], String> {
        for envelope in super::queue::drain(&self.sqs, &self.queue_url).await? {
            // The target gets EventBridge's envelope, the CloudEvent as its `detail`.
            self.read.push(envelope["detail"].clone());
        }
        let topic = topic_events(self.topic_port)?;
        let total = topic.len();
        self.read.extend(
            topic
                .into_iter()
                .skip(self.topic_offset)
                .filter(|e| e["type"] == FAILOVER_DECISION),
        );
        self.topic_offset = total;
        Ok(&self.read)
    }
}

/// Everything the topic stand-in accepted, in order.
fn topic_events(port: u16) -> Result<Vec<Value>, String> {
    let reply = wire::send(port, "GET", "/_sink/events", &[], b"", false)
        .map_err(|e| format!("the Event Grid stand-in did not answer: {e}"))?;
    serde_json::from_slice(&reply.body).map_err(|e| format!("/_sink/events is not JSON: {e}"))
}

/// Whether `events` carry the failover `observer` logged at promotion position `seq`: an event from
/// `/controllers/<observer>` whose `data.failovers` holds it.
pub(crate) fn published(events: &[Value], observer: &str, seq: u64) -> bool {
    let source = format!("/controllers/{observer}");
    events.iter().any(|e| {
        e["source"].as_str() == Some(source.as_str())
            && e["data"]["failovers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["to"].is_string() && f["promoted_at_seq"].as_u64() == Some(seq))
    })
}

/// The observers that published at least one decision.
pub(crate) fn publishers(events: &[Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter_map(|e| e["source"].as_str()?.strip_prefix("/controllers/"))
        .map(str::to_owned)
        .collect()
}
