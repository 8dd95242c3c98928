//! Drills: long, seeded scenarios that exercise a whole path end to end and report figures and
//! checks (`N passed, M failed`).
//!
//! ```text
//! paracell-conformance drill replication [--writes N] [--seed S] [--binaries]
//! paracell-conformance drill events [--writes N] [--seed S] [--binaries]
//! paracell-conformance drill failover [--schedules N] [--writes W] [--seed S]
//! paracell-conformance drill outage [--seed S] [--json]
//! paracell-conformance drill outage --binaries [--scenarios 1,4,5] [--seed S] [--json]
//! ```

#[cfg(feature = "drill-binaries")]
mod decision_events;
pub mod events;
#[cfg(feature = "drill-binaries")]
pub mod events_binaries;
pub mod failover;
#[cfg(feature = "drill-binaries")]
pub mod failover_binaries;
pub mod outage;
#[cfg(feature = "drill-binaries")]
pub mod outage_binaries;
#[cfg(feature = "drill-binaries")]
mod queue;
pub mod replication;
#[cfg(feature = "drill-binaries")]
pub mod replication_binaries;
#[cfg(feature = "drill-binaries")]
pub mod stream;
pub mod trace;

use crate::envelopes::{Exchange, aws, azure};
use crate::request::{ClientRequest, ClientResponse};
use paracell_aws::LambdaCell;
use paracell_azure::AzureHandler;
use paracell_domain::replication::SealedEntry;
use std::fmt::Write as _;
use std::time::Duration;

/// The AWS front doors the binaries drills pick from (one per event shape lambda-cell answers).
pub const BINARY_AWS_DOORS: [crate::envelopes::Envelope; 4] = [
    crate::envelopes::Envelope::AwsApigwV1,
    crate::envelopes::Envelope::AwsApigwV2,
    crate::envelopes::Envelope::AwsFunctionUrl,
    crate::envelopes::Envelope::AwsAlbMultivalue,
];

/// A drill's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Client writes.
    pub writes: usize,
    /// The schedule's seed.
    pub seed: u64,
}

/// A client's create of `cents` on (tenant, account) under `key`.
pub fn create_request(
    tenant: &str,
    key: &str,
    account: &str,
    debit: bool,
    cents: u64,
) -> ClientRequest {
    ClientRequest {
        method: "POST".into(),
        path: "/v1/transactions".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Tenant-ID".into(), tenant.into()),
            ("Idempotency-Key".into(), key.into()),
        ],
        body: format!(
            r#"{{"account_id":"{account}","type":"{}","amount":"{}.{:02}","currency":"EUR"}}"#,
            if debit { "debit" } else { "credit" },
            cents / 100,
            cents % 100
        )
        .into_bytes(),
        ..ClientRequest::default()
    }
}

/// A client's read of `path` for `tenant`.
pub fn read_request(tenant: &str, path: &str) -> ClientRequest {
    ClientRequest {
        method: "GET".into(),
        path: path.into(),
        headers: vec![("X-Tenant-ID".into(), tenant.into())],
        ..ClientRequest::default()
    }
}

/// A deterministic pseudo-random source (xorshift64*), so a drill's schedule is reproducible from
/// its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (a zero seed is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `true` with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Shuffles a slice in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}

/// One named check of a drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Figures or the first counterexample.
    pub detail: String,
}

/// What a drill measured and checked.
#[derive(Debug, Clone, Default)]
pub struct DrillReport {
    /// Figures, in order, for humans.
    pub figures: Vec<(String, String)>,
    /// The checks.
    pub checks: Vec<Check>,
}

impl DrillReport {
    /// Adds a figure.
    pub fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.to_owned(), value.to_string()));
    }

    /// Adds a check.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl ToString) {
        self.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail: detail.to_string(),
        });
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The report as text, ending with `N passed, M failed`.
    pub fn render(&self, title: &str) -> String {
        let mut out = format!("{title}\n\n");
        let width = self.figures.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, value) in &self.figures {
            let _ = writeln!(out, "  {name:<width$}  {value}");
        }
        out.push('\n');
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {}  {}{}",
                if c.passed { "ok  " } else { "FAIL" },
                c.name,
                if c.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.detail)
                }
            );
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        let _ = writeln!(
            out,
            "\n{} passed, {failed} failed",
            self.checks.len() - failed
        );
        out
    }
}

/// Percentiles of durations: `(p50, p99, max)` (nearest rank, no interpolation).
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    if samples.is_empty() {
        return Default::default();
    }
    samples.sort_unstable();
    let last = samples.len() - 1;
    let at = |percent: usize| samples[(last * percent / 100).min(last)];
    (at(50), at(99), samples[last])
}

/// Percentiles of counts: `(p50, p99, max)`.
pub fn count_percentiles(samples: &mut [u64]) -> (u64, u64, u64) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let last = samples.len() - 1;
    let at = |num: usize| samples[(last * num / 100).min(last)];
    (at(50), at(99), samples[last])
}

/// Runs a drill on a Tokio runtime (`workers` threads, or the current thread with 0); a drill that
/// stops early with an error fails with it rather than panicking.
pub fn run_on_runtime(
    workers: usize,
    drill: impl AsyncFnOnce(&mut DrillReport) -> Result<(), String>,
) -> DrillReport {
    let mut report = DrillReport::default();
    let built = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            report.check("runtime", false, e);
            return report;
        }
    };
    if let Err(e) = rt.block_on(drill(&mut report)) {
        report.check("the drill ran to the end", false, e);
    }
    report
}

/// A variable the local stand-ins' launcher exports.
pub fn dev_env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("{name} is not set: run the drill under scripts/dev-services.sh"))
}

/// The client's response of an exchange, or why there is none.
pub fn answer(exchange: Exchange) -> Result<ClientResponse, String> {
    match exchange {
        Exchange::Response(r) => Ok(r),
        Exchange::NotApplicable(r) => Err(r.to_owned()),
        Exchange::Failed(e) => Err(e),
    }
}

/// Splits entries into up to three non-empty groups, in a random order (how a stream or change
/// feed may hand a relay its batches).
pub fn random_groups<'a>(entries: &'a [SealedEntry], rng: &mut Rng) -> Vec<Vec<&'a SealedEntry>> {
    let groups = usize::try_from(rng.below(3) + 1)
        .unwrap_or(1)
        .min(entries.len());
    let mut split: Vec<Vec<&SealedEntry>> = vec![Vec::new(); groups];
    for entry in entries {
        let g = usize::try_from(rng.below(groups as u64)).unwrap_or(0);
        split[g].push(entry);
    }
    split.retain(|g| !g.is_empty());
    rng.shuffle(&mut split);
    split
}

/// The platform that relays: a Lambda given stream batches, or a custom handler given change-feed
/// invocations.
#[derive(Clone, Copy)]
pub enum RelayHost<'a> {
    /// DynamoDB Streams events to the Lambda adapter.
    Lambda(&'a LambdaCell),
    /// Cosmos DB trigger invocations to the custom handler.
    Azure(&'a AzureHandler),
}

impl RelayHost<'_> {
    /// Invokes the relay with `group` through the platform's trigger envelope; whether the
    /// invocation reported success.
    pub async fn invoke(&self, group: &[&SealedEntry], rng: &mut Rng) -> Result<bool, String> {
        self.invoke_with_received(group, &[], rng).await
    }

    /// [`RelayHost::invoke`] with entries the cell received as a standby in the same batch, as the
    /// platform's feed carries them (not pending): the relay must not send them anywhere.
    pub async fn invoke_with_received(
        &self,
        group: &[&SealedEntry],
        received: &[&SealedEntry],
        rng: &mut Rng,
    ) -> Result<bool, String> {
        let all = group
            .iter()
            .map(|e| (*e, true))
            .chain(received.iter().map(|e| (*e, false)));
        match self {
            Self::Lambda(lambda) => {
                let numbered: Vec<(u64, &SealedEntry, bool)> = all
                    .map(|(e, pending)| (rng.next_u64() >> 16, e, pending))
                    .collect();
                let event = aws::stream_event_of(&numbered);
                let answer = lambda
                    .invoke(&serde_json::to_vec(&event).unwrap_or_default())
                    .await
                    .map_err(|e| e.to_string())?;
                let answer: serde_json::Value =
                    serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
                Ok(answer["batchItemFailures"]
                    .as_array()
                    .is_some_and(Vec::is_empty))
            }
            Self::Azure(handler) => {
                let documents: Vec<(&SealedEntry, bool)> = all.collect();
                let invocation = azure::change_feed_invocation_of(&documents, "drill");
                Ok(handler.invoke(invocation).await.status == 200)
            }
        }
    }
}

/// Cents of a decimal amount's text (`"12.30"` → 1230).
pub fn cents(text: &str) -> i128 {
    let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let fraction = format!("{fraction:0<2}");
    units.parse::<i128>().unwrap_or(0) * 100 + fraction[..2].parse::<i128>().unwrap_or(0)
}

/// The signed cents a booking's answer carries (a credit positive, a debit negative; anything but
/// a `201` books nothing).
pub fn booked_cents(status: u16, body: &str) -> i128 {
    if status != 201 {
        return 0;
    }
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let amount = cents(body["amount"].as_str().unwrap_or("0"));
    if body["type"] == "debit" {
        -amount
    } else {
        amount
    }
}

/// What a reconciliation report says about money: the keys the old primary kept aside, how many of
/// them are lost bookings, and the signed cents the client was told were booked that the new primary
/// does not hold (lost bookings, and retries the new primary answered differently).
pub fn reconciled_money(
    report: &paracell_domain::placement::reconcile::ReconcileReport,
) -> (std::collections::BTreeSet<String>, usize, i128) {
    use paracell_domain::placement::reconcile::TailClass;
    let moved = booked_cents;
    let mut keys = std::collections::BTreeSet::new();
    let (mut lost, mut missing) = (0, 0);
    for entry in &report.entries {
        keys.insert(entry.key.clone());
        match entry.class {
            TailClass::Lost => {
                lost += 1;
                missing += moved(entry.status, &entry.body);
            }
            // What the client was first told is not what the new primary holds.
            TailClass::RetriedOtherOutcome => {
                missing += moved(entry.status, &entry.body);
                if let Some((status, body)) = &entry.new_answer {
                    missing -= moved(*status, body);
                }
            }
            TailClass::Retried | TailClass::Conflicting | TailClass::LostRefusal => {}
        }
    }
    (keys, lost, missing)
}
