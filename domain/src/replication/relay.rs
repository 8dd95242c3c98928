//! The primary's use case: deliver every committed entry to every destination (the standby cells,
//! and the public event bus), at least once, retrying within bounds, and dead-lettering what cannot
//! be delivered, with the full entry and the reason. Nothing is dropped silently.
//!
//! A destination that refuses the relay's credentials (`401`/`403`: a peer secret that does not
//! match, an expired or unauthorised token) is a configuration fault, not a bad entry: the entries
//! stay pending (reported `failed`, relayed again by the next run), nothing is dead-lettered, and
//! every such refusal is alarmed (an `error` event and the `replication_unauthorized` metric).

use super::batch::{self, BATCH_CONTENT_TYPE};
use super::signature::{PeerSecret, SignatureHeaders};
use super::{Digest, SealedEntry};
use crate::contract::json;
use crate::ports::{
    Clock, EntryRef, HttpClient, IdGenerator, OutboundRequest, Sleep, StoreError, TransactionStore,
    TransportError,
};
use crate::tenancy::CellId;
use crate::time::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// What a destination did with one entry of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The destination has it.
    Delivered,
    /// Not taken this time (a bus's per-entry throttling, say): send this entry again, alone or
    /// with the others still due, within the retry budget.
    Retry(String),
    /// The destination refused it for good (the reason says why): dead-letter it.
    Poison(String),
    /// The destination refused the relay's credentials: a configuration fault. The entry stays
    /// pending (never dead-lettered) and the refusal is alarmed.
    Unauthorized(String),
}

/// Why a destination took nothing of a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later (unreachable, throttled, failing).
    #[error("{reason}")]
    Retryable {
        /// Why.
        reason: String,
        /// How long the destination asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Refused for good (malformed, too large): dead-letter the batch.
    #[error("{0}")]
    Rejected(String),
    /// The relay's credentials were refused (`401`/`403`): keep the batch pending and alarm.
    #[error("{0}")]
    Unauthorized(String),
}

/// Somewhere entries go. Implemented here for peer cells ([`PeerDestination`]) and by the adapters
/// for their cloud's event bus.
#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// A name for logs and dead letters (`peer:cell-b`, `eventbridge:bus`).
    fn name(&self) -> &str;

    /// Whether this destination takes `entry` (a bus takes only accepted entries).
    fn wants(&self, entry: &SealedEntry) -> bool;

    /// Delivers a batch (at most [`RelayPolicy::batch_size`] entries); on `Ok`, one result per
    /// entry, in order.
    async fn deliver(&self, entries: &[SealedEntry]) -> Result<Vec<Delivery>, DeliveryError>;
}

/// An entry a destination could not take, kept with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The destination's name.
    pub destination: String,
    /// The entry.
    pub entry: SealedEntry,
    /// Why it was given up on.
    pub reason: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it was given up on.
    pub time: Timestamp,
}

impl DeadLetter {
    /// The letter as a JSON document (what the dead-letter queue holds).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.entry.document().len() + 256);
        out.push('{');
        json::push_member(&mut out, "destination", &self.destination);
        out.push(',');
        json::push_member(&mut out, "reason", &self.reason);
        out.push_str(r#","attempts":"#);
        out.push_str(&self.attempts.to_string());
        out.push_str(r#","time":""#);
        self.time.push_rfc3339(&mut out);
        out.push_str(r#"","digest":""#);
        self.entry.digest().push_hex(&mut out);
        out.push_str(r#"","entry":"#);
        out.push_str(self.entry.document());
        out.push('}');
        out
    }

    /// Reads [`DeadLetter::render`]'s document back (the entry is re-digested and checked).
    pub fn parse(text: &str) -> Result<Self, crate::DecodeError> {
        let invalid = |detail: String| crate::DecodeError::new("dead letter", detail);
        #[derive(serde::Deserialize)]
        struct Doc<'a> {
            destination: String,
            reason: String,
            attempts: u32,
            time: String,
            digest: String,
            #[serde(borrow)]
            entry: &'a serde_json::value::RawValue,
        }
        let d: Doc<'_> = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let entry = SealedEntry::open(d.entry.get()).map_err(|e| invalid(e.to_string()))?;
        if Digest::parse(&d.digest) != Some(entry.digest()) {
            return Err(invalid("the entry does not match its digest".into()));
        }
        Ok(Self {
            destination: d.destination,
            reason: d.reason,
            attempts: d.attempts,
            time: Timestamp::parse_rfc3339(&d.time).ok_or_else(|| invalid("time".into()))?,
            entry,
        })
    }
}

/// Where dead letters are kept (an SQS queue on AWS, a container on Azure, memory in tests).
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync {
    /// Keeps a letter.
    async fn put(&self, letter: &DeadLetter) -> Result<(), StoreError>;
    /// Up to `limit` letters with their ids, oldest first where the store knows the order.
    async fn list(&self, limit: usize) -> Result<Vec<(String, DeadLetter)>, StoreError>;
    /// Removes a letter (after it was replayed).
    async fn remove(&self, id: &str) -> Result<(), StoreError>;
}

/// How hard the relay tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPolicy {
    /// Attempts per batch and destination before its entries are dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled each time, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Entries per delivery.
    pub batch_size: usize,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            batch_size: 50,
        }
    }
}

/// What a relay run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Entries every destination has or dead-lettered: done.
    pub relayed: Vec<EntryRef>,
    /// Entries that could not even be dead-lettered: relay them again later.
    pub failed: Vec<EntryRef>,
    /// Deliveries (entry × destination) that succeeded.
    pub delivered: usize,
    /// Deliveries that were dead-lettered.
    pub dead_lettered: usize,
    /// Attempts that failed and were retried.
    pub retries: usize,
    /// Deliveries (entry × destination) refused for the relay's credentials: kept pending, alarmed.
    pub unauthorized: usize,
    /// The replication lag of this run: the age (from its commit on the primary to the end of its
    /// delivery) of the oldest entry it relayed, in milliseconds; `None` when it relayed nothing.
    pub lag_millis: Option<u64>,
}

impl RelayReport {
    /// One line for logs: the counts, never entries, keys or bodies.
    ///
    /// ```
    /// let report = paracell_domain::replication::relay::RelayReport::default();
    /// assert_eq!(report.summary(), "0 relayed, 0 delivered, 0 dead-lettered, 0 retries, 0 failed, 0 unauthorized");
    /// ```
    pub fn summary(&self) -> String {
        format!(
            "{} relayed, {} delivered, {} dead-lettered, {} retries, {} failed, {} unauthorized",
            self.relayed.len(),
            self.delivered,
            self.dead_lettered,
            self.retries,
            self.failed.len(),
            self.unauthorized
        )
    }

    /// Adds another run's figures.
    pub fn absorb(&mut self, other: RelayReport) {
        self.relayed.extend(other.relayed);
        self.failed.extend(other.failed);
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.retries += other.retries;
        self.unauthorized += other.unauthorized;
        self.lag_millis = self.lag_millis.max(other.lag_millis);
    }
}

/// Delivers entries to destinations.
#[derive(Clone)]
pub struct Relay {
    destinations: Vec<Arc<dyn Destination>>,
    dead_letters: Arc<dyn DeadLetters>,
    sleep: Arc<dyn Sleep>,
    clock: Arc<dyn Clock>,
    policy: RelayPolicy,
}

impl Relay {
    /// A relay to `destinations`, dead-lettering into `dead_letters`.
    pub fn new(
        destinations: Vec<Arc<dyn Destination>>,
        dead_letters: Arc<dyn DeadLetters>,
        sleep: Arc<dyn Sleep>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            destinations,
            dead_letters,
            sleep,
            clock,
            policy: RelayPolicy::default(),
        }
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_policy(mut self, policy: RelayPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The destinations' names.
    pub fn destinations(&self) -> Vec<&str> {
        self.destinations.iter().map(|d| d.name()).collect()
    }

    /// Delivers `entries` to every destination that wants them, in (tenant, sequence) order.
    pub async fn relay(&self, entries: &[SealedEntry]) -> RelayReport {
        let all: Vec<&Arc<dyn Destination>> = self.destinations.iter().collect();
        self.relay_to(&all, entries).await
    }

    /// Delivers `entries` to the destination named `name` only (replaying its dead letters). With no
    /// such destination configured, every entry is reported failed, never dropped.
    pub async fn relay_only(&self, name: &str, entries: &[SealedEntry]) -> RelayReport {
        let chosen: Vec<&Arc<dyn Destination>> = self
            .destinations
            .iter()
            .filter(|d| d.name() == name)
            .collect();
        if chosen.is_empty() {
            return RelayReport {
                failed: entries
                    .iter()
                    .map(|e| EntryRef {
                        tenant: e.tenant().clone(),
                        seq: e.seq(),
                    })
                    .collect(),
                ..RelayReport::default()
            };
        }
        self.relay_to(&chosen, entries).await
    }

    async fn relay_to(
        &self,
        destinations: &[&Arc<dyn Destination>],
        entries: &[SealedEntry],
    ) -> RelayReport {
        let mut entries: Vec<&SealedEntry> = entries.iter().collect();
        entries.sort_by(|a, b| (a.tenant(), a.seq()).cmp(&(b.tenant(), b.seq())));
        let mut report = RelayReport::default();
        let mut failed = vec![false; entries.len()];
        for destination in destinations {
            let wanted: Vec<usize> = (0..entries.len())
                .filter(|i| destination.wants(entries[*i]))
                .collect();
            for chunk in wanted.chunks(self.policy.batch_size.max(1)) {
                let batch: Vec<SealedEntry> = chunk.iter().map(|i| entries[*i].clone()).collect();
                let outcome = self
                    .deliver(destination.as_ref(), &batch, &mut report)
                    .await;
                for (slot, (result, attempts)) in chunk.iter().zip(outcome) {
                    log_relayed(entries[*slot], destination.name(), &result);
                    match result {
                        Delivery::Delivered => report.delivered += 1,
                        Delivery::Unauthorized(_) => {
                            report.unauthorized += 1;
                            failed[*slot] = true;
                        }
                        Delivery::Poison(reason) | Delivery::Retry(reason) => {
                            let letter = DeadLetter {
                                destination: destination.name().to_owned(),
                                entry: entries[*slot].clone(),
                                reason,
                                attempts,
                                time: self.clock.now(),
                            };
                            match self.dead_letters.put(&letter).await {
                                Ok(()) => report.dead_lettered += 1,
                                Err(_) => failed[*slot] = true,
                            }
                        }
                    }
                }
            }
        }
        for (entry, failed) in entries.iter().zip(failed) {
            let r = EntryRef {
                tenant: entry.tenant().clone(),
                seq: entry.seq(),
            };
            if failed {
                report.failed.push(r);
            } else {
                let age = self.clock.now().unix_millis() - entry.entry().time.unix_millis();
                let age = u64::try_from(age).unwrap_or(0); // a clock behind the primary's: no lag
                report.lag_millis = report.lag_millis.max(Some(age));
                report.relayed.push(r);
            }
        }
        report
    }

    /// One batch to one destination, with retries: a final result (delivered or poison) and the
    /// attempts made, per entry. Only the entries still due are sent again.
    async fn deliver(
        &self,
        destination: &dyn Destination,
        batch: &[SealedEntry],
        report: &mut RelayReport,
    ) -> Vec<(Delivery, u32)> {
        let mut outcome: Vec<Option<(Delivery, u32)>> = vec![None; batch.len()];
        let mut due: Vec<usize> = (0..batch.len()).collect();
        let mut backoff = self.policy.first_backoff;
        let mut attempt = 0;
        let mut reason = String::new();
        while !due.is_empty() {
            attempt += 1;
            let sending: Vec<SealedEntry> = due.iter().map(|i| batch[*i].clone()).collect();
            let mut still_due = Vec::new();
            match destination.deliver(&sending).await {
                Ok(results) if results.len() == sending.len() => {
                    for (i, result) in due.iter().zip(results) {
                        match result {
                            Delivery::Retry(why) => {
                                reason = why;
                                still_due.push(*i);
                            }
                            done => outcome[*i] = Some((done, attempt)),
                        }
                    }
                }
                Ok(results) => {
                    reason = format!(
                        "{} answered {} results for {} entries",
                        destination.name(),
                        results.len(),
                        sending.len()
                    );
                    still_due = due.clone();
                }
                Err(DeliveryError::Rejected(why)) => {
                    for i in &due {
                        outcome[*i] = Some((Delivery::Poison(format!("rejected: {why}")), attempt));
                    }
                }
                // Retrying now would only repeat the refusal: the next run tries again.
                Err(DeliveryError::Unauthorized(why)) => {
                    for i in &due {
                        outcome[*i] = Some((Delivery::Unauthorized(why.clone()), attempt));
                    }
                }
                Err(DeliveryError::Retryable {
                    reason: why,
                    retry_after,
                }) => {
                    if let Some(wait) = retry_after {
                        backoff = backoff.max(wait.min(self.policy.max_backoff));
                    }
                    reason = why;
                    still_due = due.clone();
                }
            }
            due = still_due;
            if due.is_empty() {
                break;
            }
            if attempt >= self.policy.max_attempts {
                for i in &due {
                    outcome[*i] = Some((
                        Delivery::Poison(format!("gave up after {attempt} attempts: {reason}")),
                        attempt,
                    ));
                }
                break;
            }
            report.retries += 1;
            self.sleep.sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
        outcome
            .into_iter()
            .map(|o| o.unwrap_or((Delivery::Poison("no outcome".into()), attempt)))
            .collect()
    }
}

/// Relays every pending entry of `store`, page by page, marking each relayed one; stops early when an
/// entry could not even be dead-lettered (it stays pending for the next run).
pub async fn relay_pending(
    store: &dyn TransactionStore,
    relay: &Relay,
    page_size: usize,
) -> Result<RelayReport, StoreError> {
    let mut total = RelayReport::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.pending_entries(cursor.as_deref(), page_size).await?;
        if page.entries.is_empty() {
            break;
        }
        let report = relay.relay(&page.entries).await;
        store.mark_relayed(&report.relayed).await?;
        let stop = !report.failed.is_empty();
        total.absorb(report);
        match page.next {
            Some(next) if !stop => cursor = Some(next),
            _ => break,
        }
    }
    Ok(total)
}

/// A standby cell, reached over HTTP at its replication route with signed deliveries.
pub struct PeerDestination {
    name: String,
    url: String,
    /// Every secret shared with the peer (more than one while rotating): each signs every delivery.
    secrets: Vec<PeerSecret>,
    cell: CellId,
    client: Arc<dyn HttpClient>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    timeout: Duration,
}

/// The replication route, relative to a cell's base URL.
pub const ROUTE: &str = "/v1/replication/entries";

impl PeerDestination {
    /// The peer `secret.cell` at `base_url` (the cell's public base, with any stage or route prefix:
    /// [`ROUTE`] is appended).
    pub fn new(
        base_url: &str,
        secret: PeerSecret,
        client: Arc<dyn HttpClient>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            name: format!("peer:{}", secret.cell),
            url: format!("{}{ROUTE}", base_url.trim_end_matches('/')),
            cell: secret.cell.clone(),
            secrets: vec![secret],
            client,
            clock,
            ids,
            timeout: Duration::from_secs(10),
        }
    }

    /// Signs with these secrets too (all shared with the same peer: a rotation in progress); those
    /// for another cell are ignored.
    #[must_use]
    pub fn with_more_secrets(mut self, more: impl IntoIterator<Item = PeerSecret>) -> Self {
        for secret in more {
            if secret.cell == self.cell && !self.secrets.contains(&secret) {
                self.secrets.push(secret);
            }
        }
        self
    }

    /// The peer cell.
    pub fn cell(&self) -> &CellId {
        &self.cell
    }
}

#[async_trait::async_trait]
impl Destination for PeerDestination {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, _entry: &SealedEntry) -> bool {
        true
    }

    async fn deliver(&self, entries: &[SealedEntry]) -> Result<Vec<Delivery>, DeliveryError> {
        let body = batch::render(entries);
        // A fresh id per attempt: a retry must never look like a replay of the previous attempt
        // (which the receiver refuses), even within the same second. Entries are deduplicated by
        // their digests, not by this id.
        let id = self.ids.next_id().simple().to_string();
        let signed = SignatureHeaders::sign_all(
            &self.secrets,
            &id,
            self.clock.now().unix_millis().div_euclid(1000),
            body.as_bytes(),
        );
        let mut headers = vec![("content-type".to_owned(), BATCH_CONTENT_TYPE.to_owned())];
        headers.extend(signed.lines().into_iter().map(|(n, v)| (n.to_owned(), v)));
        let request = OutboundRequest {
            method: "POST".into(),
            url: self.url.clone(),
            headers,
            body: body.into_bytes(),
            timeout: self.timeout,
        };
        let response = match self.client.send(request).await {
            Ok(r) => r,
            Err(
                e @ (TransportError::Connect(_)
                | TransportError::Broken(_)
                | TransportError::Timeout),
            ) => {
                return Err(DeliveryError::Retryable {
                    reason: format!("{}: {e}", self.name),
                    retry_after: None,
                });
            }
        };
        let detail = || {
            let text = String::from_utf8_lossy(&response.body);
            format!(
                "{} answered {}: {}",
                self.name,
                response.status,
                text.chars().take(300).collect::<String>()
            )
        };
        match response.status {
            200 => {
                let results =
                    batch::parse_results(&response.body).map_err(|e| DeliveryError::Retryable {
                        reason: format!("{}: {e}", self.name),
                        retry_after: None,
                    })?;
                Ok(entries
                    .iter()
                    .map(|entry| {
                        let id = entry.digest().to_string();
                        match results.iter().find(|r| r.id == id) {
                            Some(r) if r.outcome.delivered() => Delivery::Delivered,
                            Some(r) => Delivery::Poison(format!(
                                "{}: {}{}",
                                self.name,
                                r.outcome.as_str(),
                                r.detail
                                    .as_deref()
                                    .map(|d| format!(": {d}"))
                                    .unwrap_or_default()
                            )),
                            None => {
                                Delivery::Poison(format!("{}: no result for the entry", self.name))
                            }
                        }
                    })
                    .collect())
            }
            // The peer does not take our signature (secrets that do not match, a rotation done in
            // the wrong order): a configuration fault, never the entries' fault.
            401 | 403 => Err(DeliveryError::Unauthorized(detail())),
            408 | 425 | 429 | 500..=599 => Err(DeliveryError::Retryable {
                reason: detail(),
                retry_after: response
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            }),
            _ => Err(DeliveryError::Rejected(detail())),
        }
    }
}

/// One log event per entry and destination, with the trace id the entry carries: how an operator
/// follows a create from its cell to every replica.
fn log_relayed(entry: &SealedEntry, destination: &str, result: &Delivery) {
    let trace_id = entry.entry().trace_id();
    let trace_id = trace_id.as_str();
    let origin = entry.entry().origin.as_str();
    let tenant = entry.tenant().as_str();
    let seq = entry.seq();
    match result {
        Delivery::Delivered => {
            tracing::info!(
                trace_id,
                origin,
                tenant,
                seq,
                destination,
                "replication relayed"
            );
        }
        Delivery::Poison(reason) | Delivery::Retry(reason) | Delivery::Unauthorized(reason) => {
            let what = if matches!(result, Delivery::Unauthorized(_)) {
                "replication unauthorized: the destination refused the relay's credentials; the entry stays pending (configuration fault)"
            } else {
                "replication dead-lettered"
            };
            tracing::error!(
                trace_id,
                origin,
                tenant,
                seq,
                destination,
                cause = reason.as_str(),
                "{what}"
            );
        }
    }
}
