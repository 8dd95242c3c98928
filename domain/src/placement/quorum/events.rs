//! A failover controller's decisions as CloudEvents on its cloud's event bus, so that an automatic
//! failover is never silent: every tick's evidence goes to the log ([`evidence`]), and every tick
//! that **decides something new** is also published ([`DecisionEvents`]) — to EventBridge from a
//! controller on AWS, to Event Grid from one on Azure (the adapters implement [`EventPublisher`]).
//!
//! **Which ticks are published.** A controller ticks every 500 ms–2 s and almost always holds; an
//! event per tick would bury the few that matter. A tick is published when it performed a failover
//! (with each tenant's report: from, to, epoch, promotion position, entries lost), or when its
//! *decision key* differs from the last published one: the decision (hold and why, promote, finish,
//! page), this observer's own vote, and whether the quorum could be read. So an outage gives a short
//! story — vote down, hold while the lease lives, promote (with the failovers), finish — and a
//! healthy cell gives one event when the controller starts.
//!
//! **Delivery.** At least once, in order, from one controller process: an event the bus did not take
//! (unreachable, throttled, our credentials refused) stays queued and is sent again before any newer
//! one on the next tick; the queue keeps the newest [`MAX_PENDING`] (older ones are dropped and
//! counted in the next [`Emitted`], which the host logs). An event the bus rejects as malformed is
//! dropped and reported: sending it again cannot succeed. The decision never waits for the bus —
//! the failover is already done when its event is sent; the log line is the record of last resort.
//!
//! The document (`type` [`FAILOVER_DECISION`], `source` `/controllers/<observer>`, `subject` the
//! watched cell, `data` the evidence) is rendered here once, so both buses carry the same bytes.

use super::controller::{Decision, TickReport};
use crate::ports::{Clock, IdGenerator};
use crate::replication::relay::Delivery;
use crate::time::Timestamp;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// CloudEvents `type` of a controller's decision.
pub const FAILOVER_DECISION: &str = "dev.paracell.failover.decision.v1";

/// How many unsent events a controller keeps (the newest).
pub const MAX_PENDING: usize = 64;

/// Why a bus did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Not reached, throttled, or a server error: sent again later.
    #[error("the bus did not take the event: {0}")]
    Unavailable(String),
    /// Our credentials were refused (a configuration fault): sent again later, and alarmed.
    #[error("the bus refused our credentials: {0}")]
    Refused(String),
    /// The bus rejected the event itself: dropped (sending it again cannot succeed), reported.
    #[error("the bus rejected the event: {0}")]
    Rejected(String),
}

impl PublishError {
    /// A decision's publish as a bus adapter judged the answer with its relay's own rule (one
    /// rule per bus for the cells' events and the controllers'): taken, sent again later (`Retry`),
    /// our credentials (`Unauthorized`), or rejected (`Poison`).
    pub fn from_delivery(fate: Delivery) -> Result<(), Self> {
        match fate {
            Delivery::Delivered => Ok(()),
            Delivery::Retry(why) => Err(Self::Unavailable(why)),
            Delivery::Unauthorized(why) => Err(Self::Refused(why)),
            Delivery::Poison(why) => Err(Self::Rejected(why)),
        }
    }
}

/// Where a controller's events go: its cloud's event bus.
#[async_trait::async_trait]
pub trait EventPublisher: Send + Sync {
    /// A name for logs (`eventbridge:<bus>`, `eventgrid:<host>`).
    fn name(&self) -> &str;

    /// Publishes one structured-mode CloudEvent document, exactly as given.
    async fn publish(&self, document: &str) -> Result<(), PublishError>;
}

/// A tick's evidence as JSON: what the controller saw (probe, lease, votes), decided, did
/// (failovers, each with its report or why it stopped) and could not do (problems). The log line
/// (with `"event": "failover-controller-tick"`) and the published event's `data` are this document.
///
/// ```
/// use paracell_domain::placement::quorum::controller::{Decision, Hold, TickReport};
/// use paracell_domain::placement::quorum::events::evidence;
/// let tick = TickReport {
///     observer: "gcp".into(),
///     cell: paracell_domain::CellId::parse("cell-aws").unwrap(),
///     probe_ok: true,
///     lease: None,
///     votes: Default::default(),
///     decision: Some(Decision::Hold(Hold::LeaseAlive)),
///     failovers: vec![],
///     problems: vec![],
/// };
/// let json = evidence(&tick);
/// assert_eq!(json["event"], "failover-controller-tick");
/// assert_eq!(json["decision"], "hold: LeaseAlive");
/// ```
pub fn evidence(r: &TickReport) -> Value {
    json!({
        "event": "failover-controller-tick",
        "observer": r.observer,
        "cell": r.cell.as_str(),
        "probe_ok": r.probe_ok,
        "lease": r.lease.as_ref().map(|l| json!({ "tenure": l.tenure, "seq": l.seq, "revoked": l.revoked })),
        "votes": r.votes.iter().map(|(d, v)| (d.clone(), json!({ "down": v.down, "lease_seq": v.lease_seq }))).collect::<serde_json::Map<_, _>>(),
        "decision": r.decision.as_ref().map(describe),
        "failovers": r.failovers.iter().map(|f| match f {
            Ok(f) => json!({ "tenant": f.tenant.as_str(), "from": f.from.as_str(), "to": f.to.as_str(),
                "epoch_after": f.epochs.1, "promoted_at_seq": f.promoted_at.seq, "lost_entries": f.lost_entries,
                "steps": f.steps }),
            Err(e) => json!({ "error": e }),
        }).collect::<Vec<_>>(),
        "problems": r.problems,
    })
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Hold(h) => format!("hold: {h:?}"),
        Decision::Promote { seq } => format!("promote (revoke at seq {seq})"),
        Decision::Finish => "finish the promotion".to_owned(),
        Decision::Page(why) => format!("page: {why}"),
    }
}

/// The CloudEvent of `report`, with `id` at `time`.
///
/// ```
/// use paracell_domain::placement::quorum::controller::{Decision, TickReport};
/// use paracell_domain::placement::quorum::events::{FAILOVER_DECISION, render};
/// let tick = TickReport {
///     observer: "azure".into(),
///     cell: paracell_domain::CellId::parse("cell-aws").unwrap(),
///     probe_ok: false,
///     lease: None,
///     votes: Default::default(),
///     decision: Some(Decision::Finish),
///     failovers: vec![],
///     problems: vec![],
/// };
/// let doc = render(&tick, uuid::Uuid::nil(), paracell_domain::Timestamp::from_unix_millis(0));
/// let event: serde_json::Value = serde_json::from_str(&doc).unwrap();
/// assert_eq!(event["type"], FAILOVER_DECISION);
/// assert_eq!(event["source"], "/controllers/azure");
/// assert_eq!(event["subject"], "cells/cell-aws");
/// assert_eq!(event["data"]["decision"], "finish the promotion");
/// ```
pub fn render(report: &TickReport, id: uuid::Uuid, time: Timestamp) -> String {
    let mut data = evidence(report);
    if let Some(map) = data.as_object_mut() {
        // The log line's tag; the event's `type` says it.
        map.remove("event");
    }
    json!({
        "specversion": "1.0",
        "id": id.to_string(),
        "source": format!("/controllers/{}", report.observer),
        "type": FAILOVER_DECISION,
        "subject": format!("cells/{}", report.cell),
        "time": time.to_string(),
        "datacontenttype": "application/json",
        "data": data,
    })
    .to_string()
}

/// What a tick's decision is, for "has it changed?": the decision, this observer's vote, and
/// whether the quorum could be read.
fn key(report: &TickReport) -> String {
    let own = report.votes.get(&report.observer).map(|v| v.down);
    match &report.decision {
        Some(d) => format!("{} | own vote down: {own:?}", describe(d)),
        None => "the quorum could not be read".to_owned(),
    }
}

/// What one [`DecisionEvents::observe`] did, for the host's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Emitted {
    /// Ids of the events the bus took (older queued ones first).
    pub published: Vec<String>,
    /// Events still queued.
    pub pending: usize,
    /// Why the queue stopped (the bus did not take its oldest event), if it did.
    pub failed: Option<PublishError>,
    /// Events rejected by the bus and dropped (each id with why).
    pub rejected: Vec<(String, String)>,
    /// Queued events dropped because the queue was full, since the last report.
    pub overflowed: u64,
}

struct Queue {
    last_key: Option<String>,
    pending: VecDeque<(String, String)>,
    overflowed: u64,
}

/// Publishes the ticks that decide something new (see the module), in order, at least once.
pub struct DecisionEvents {
    bus: Arc<dyn EventPublisher>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    queue: Mutex<Queue>,
}

impl DecisionEvents {
    /// Events to `bus`, with ids from `ids` and times from `clock`.
    pub fn new(
        bus: Arc<dyn EventPublisher>,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            bus,
            ids,
            clock,
            queue: Mutex::new(Queue {
                last_key: None,
                pending: VecDeque::new(),
                overflowed: 0,
            }),
        }
    }

    /// The bus's name.
    pub fn bus(&self) -> &str {
        self.bus.name()
    }

    /// Queues `report`'s event if it decides something new, then sends the queue in order until the
    /// bus stops taking events.
    pub async fn observe(&self, report: &TickReport) -> Emitted {
        {
            let mut queue = self.lock();
            let key = key(report);
            if !report.failovers.is_empty() || queue.last_key.as_ref() != Some(&key) {
                let id = self.ids.next_id();
                queue
                    .pending
                    .push_back((id.to_string(), render(report, id, self.clock.now())));
                queue.last_key = Some(key);
                while queue.pending.len() > MAX_PENDING {
                    queue.pending.pop_front();
                    queue.overflowed += 1;
                }
            }
        }
        let mut emitted = Emitted::default();
        // One send at a time, never holding the lock across it (a `while let` on the guard would
        // keep it for the whole body).
        loop {
            let front = self.lock().pending.front().cloned();
            let Some((id, document)) = front else { break };
            match self.bus.publish(&document).await {
                Ok(()) => emitted.published.push(id.clone()),
                Err(PublishError::Rejected(why)) => emitted.rejected.push((id.clone(), why)),
                Err(e) => {
                    emitted.failed = Some(e);
                    break;
                }
            }
            let mut queue = self.lock();
            if queue.pending.front().is_some_and(|(front, _)| *front == id) {
                queue.pending.pop_front();
            }
        }
        let mut queue = self.lock();
        emitted.pending = queue.pending.len();
        emitted.overflowed = std::mem::take(&mut queue.overflowed);
        emitted
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellId;
    use crate::memory::ManualClock;
    use crate::placement::quorum::controller::{Hold, Vote};
    use crate::ports::UuidV7;
    use crate::testing::block_on;

    /// A bus that records what it took, and fails while told to.
    #[derive(Default)]
    struct Bus {
        took: Mutex<Vec<String>>,
        failing: Mutex<Option<PublishError>>,
    }

    #[async_trait::async_trait]
    impl EventPublisher for Bus {
        fn name(&self) -> &str {
            "test-bus"
        }
        async fn publish(&self, document: &str) -> Result<(), PublishError> {
            if let Some(e) = self.failing.lock().unwrap().clone() {
                return Err(e);
            }
            self.took.lock().unwrap().push(document.to_owned());
            Ok(())
        }
    }

    fn tick(decision: Option<Decision>, down: bool) -> TickReport {
        TickReport {
            observer: "gcp".into(),
            cell: CellId::parse("cell-aws").unwrap(),
            probe_ok: !down,
            lease: None,
            votes: [("gcp".to_owned(), Vote { down, lease_seq: 1 })].into(),
            decision,
            failovers: vec![],
            problems: vec![],
        }
    }

    fn events(bus: &Arc<Bus>) -> DecisionEvents {
        DecisionEvents::new(
            bus.clone(),
            Arc::new(UuidV7),
            Arc::new(ManualClock::default()),
        )
    }

    fn decisions(bus: &Bus) -> Vec<String> {
        bus.took
            .lock()
            .unwrap()
            .iter()
            .map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["data"]["decision"].as_str().unwrap_or("-").to_owned()
            })
            .collect()
    }

    #[test]
    fn only_ticks_that_decide_something_new_are_published_in_order() {
        let bus = Arc::new(Bus::default());
        let events = events(&bus);
        let too_few = || {
            Some(Decision::Hold(Hold::TooFewObservers {
                down: vec![],
                required: 2,
            }))
        };
        for _ in 0..5 {
            block_on(events.observe(&tick(too_few(), false)));
        }
        block_on(events.observe(&tick(too_few(), true)));
        block_on(events.observe(&tick(Some(Decision::Hold(Hold::LeaseAlive)), true)));
        block_on(events.observe(&tick(Some(Decision::Hold(Hold::LeaseAlive)), true)));
        block_on(events.observe(&tick(Some(Decision::Promote { seq: 3 }), true)));
        for _ in 0..3 {
            block_on(events.observe(&tick(Some(Decision::Finish), true)));
        }
        block_on(events.observe(&tick(None, true)));
        assert_eq!(
            decisions(&bus),
            [
                "hold: TooFewObservers { down: [], required: 2 }",
                "hold: TooFewObservers { down: [], required: 2 }",
                "hold: LeaseAlive",
                "promote (revoke at seq 3)",
                "finish the promotion",
                "-",
            ],
            "a healthy cell once, then each change (the second: this observer's vote went down)"
        );
    }

    #[test]
    fn an_event_the_bus_did_not_take_is_sent_again_first_and_a_rejected_one_is_reported() {
        let bus = Arc::new(Bus::default());
        let events = events(&bus);
        *bus.failing.lock().unwrap() = Some(PublishError::Unavailable("503".into()));
        let out = block_on(events.observe(&tick(Some(Decision::Promote { seq: 3 }), true)));
        assert_eq!(
            (out.published.len(), out.pending, out.failed.is_some()),
            (0, 1, true)
        );
        *bus.failing.lock().unwrap() = None;
        let out = block_on(events.observe(&tick(Some(Decision::Finish), true)));
        assert_eq!((out.published.len(), out.pending), (2, 0));
        assert_eq!(
            decisions(&bus),
            ["promote (revoke at seq 3)", "finish the promotion"]
        );

        *bus.failing.lock().unwrap() = Some(PublishError::Rejected("400".into()));
        let out = block_on(events.observe(&tick(None, true)));
        assert_eq!((out.rejected.len(), out.pending), (1, 0), "{out:?}");
    }

    #[test]
    fn a_full_queue_keeps_the_newest_and_counts_what_it_dropped() {
        let bus = Arc::new(Bus::default());
        let events = events(&bus);
        *bus.failing.lock().unwrap() = Some(PublishError::Refused("403".into()));
        let mut overflowed = 0;
        for seq in 0..(MAX_PENDING as u64 + 10) {
            let out = block_on(events.observe(&tick(Some(Decision::Promote { seq }), true)));
            overflowed += out.overflowed;
            assert!(matches!(out.failed, Some(PublishError::Refused(_))));
        }
        assert_eq!(overflowed, 10);
        *bus.failing.lock().unwrap() = None;
        let out = block_on(events.observe(&tick(Some(Decision::Finish), true)));
        assert_eq!(out.published.len(), MAX_PENDING);
        assert_eq!(
            decisions(&bus).first().map(String::as_str),
            Some("promote (revoke at seq 11)")
        );
    }
}
