//! The automatic failover controller: observers in several failure domains probe a primary cell,
//! vote in the quorum, and promote its standbys only when **two domains other than the primary's**
//! agree it is unreachable *and* its cell lease has gone unrenewed long enough to be revoked. No
//! single observer, store or cloud can trigger a failover.
//!
//! One [`Controller`] runs in each domain (a scheduled Lambda looping for its minute, a timer
//! Function, `paracell-admin watch` locally) and calls [`Controller::tick`] every
//! [`ControllerPolicy::probe_every`]. A tick:
//!
//! 1. probes the cell's `/health` ([`ProbeWindow`]: suspect after `failures` failures in a row);
//! 2. writes its vote — down or up, with the lease counter it saw — into the cell's verdict register
//!    (`verdict/<cell>`, a quorum register like the others);
//! 3. reads the cell lease (a majority read) into its [`LeaseWatch`];
//! 4. [`decide`]s, and if the decision is to promote: **revokes** the lease at the counter it
//!    watched (conditional: a cell that renewed since keeps it), then fails each tenant over to its
//!    standby ([`crate::placement::failover::failover`], no further wait: the revocation's own wait
//!    was longer than the lease), recording the move in both cells' verdicts.
//!
//! **Probes only gate the decision; the lease decides.** A cell that still renews at a majority is
//! never failed over automatically, however its probes look (a gray failure: page a person).
//!
//! **Damping.** After an automatic move, both cells are held down for
//! [`ControllerPolicy::hold_down`] (no automatic move of either, so a flapping primary never
//! ping-pongs), and at most [`ControllerPolicy::max_moves`] automatic moves per cell happen within
//! [`ControllerPolicy::move_window`]; past that the controller only pages. The hold-down is measured
//! on the wall clock recorded in the verdict: it is damping, not safety, and seconds of clock
//! disagreement do not matter against minutes — safety comes from the lease alone.
//!
//! **A controller that dies mid-promotion** leaves the lease revoked: the next tick (of any
//! observer) sees it and finishes the tenants still placed on the old cell; each failover is itself
//! resumable.

use super::QuorumRegistry;
use super::lease::{self, CellLease, LeaseChange, LeaseTiming, LeaseWatch};
use crate::placement::failover::{FailoverPolicy, FailoverReport, failover};
use crate::placement::migrate::{CellHandle, MovePorts};
use crate::placement::registry::PlacementRegistry;
use crate::ports::{Clock, HttpClient, MonotonicClock, OutboundRequest};
use crate::tenancy::{CellId, TenantId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How the controller probes and damps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerPolicy {
    /// Between two ticks (2 s).
    pub probe_every: Duration,
    /// A probe's timeout (1 s).
    pub probe_timeout: Duration,
    /// Failed probes in a row before an observer votes "down" (3, as Azure Front Door's and
    /// Patroni's defaults suggest).
    pub failures: u32,
    /// Observers in distinct domains, other than the cell's own, that must vote down (2).
    pub observers_required: usize,
    /// No automatic move of a cell within this of its last one (10 min; Vitess blocks 30 s,
    /// Orchestrator 1 h).
    pub hold_down: Duration,
    /// At most this many automatic moves per cell within [`Self::move_window`] (3 in 6 h, as a
    /// Windows failover cluster caps them); past it, page.
    pub max_moves: usize,
    /// The window [`Self::max_moves`] counts in.
    pub move_window: Duration,
}

impl Default for ControllerPolicy {
    fn default() -> Self {
        Self {
            probe_every: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            failures: 3,
            observers_required: 2,
            hold_down: Duration::from_secs(600),
            max_moves: 3,
            move_window: Duration::from_secs(6 * 3600),
        }
    }
}

/// One observer's recent probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeWindow {
    failed_in_a_row: u32,
}

impl ProbeWindow {
    /// Records a probe; returns whether the observer now suspects the cell.
    pub fn record(&mut self, ok: bool, policy: &ControllerPolicy) -> bool {
        self.failed_in_a_row = if ok {
            0
        } else {
            self.failed_in_a_row.saturating_add(1)
        };
        self.suspects(policy)
    }

    /// Whether the last `failures` probes all failed.
    pub fn suspects(&self, policy: &ControllerPolicy) -> bool {
        self.failed_in_a_row >= policy.failures
    }
}

/// One observer's vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// Whether it suspects the cell.
    pub down: bool,
    /// The lease counter it saw when it voted (votes count only for the counter now current).
    pub lease_seq: u64,
}

/// A cell's verdict register: every observer's vote and the cell's automatic moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdicts {
    /// Votes by observer domain.
    pub votes: BTreeMap<String, Vote>,
    /// Wall-clock times (Unix milliseconds) of the automatic moves from or to this cell.
    pub moves: Vec<i64>,
}

impl Verdicts {
    fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("malformed verdict record: {e}"))
    }

    fn render(&self) -> String {
        // A map of strings to plain structs and a list of integers: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn verdict_key(cell: &CellId) -> String {
    format!("verdict/{cell}")
}

/// Why the controller did not promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Fewer observers in other domains vote down (for the current lease counter) than required.
    TooFewObservers {
        /// Domains voting down.
        down: Vec<String>,
        /// How many are required.
        required: usize,
    },
    /// The lease counter changed within the promoter's wait: the cell renews at a majority.
    LeaseAlive,
    /// Within the hold-down after the cell's last automatic move (until this Unix millisecond).
    HoldDown {
        /// When the hold-down ends.
        until_ms: i64,
    },
}

/// What a tick decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Hold(Hold),
    /// Revoke the lease at this counter and fail the cell's tenants over.
    Promote {
        /// The counter watched unchanged.
        seq: u64,
    },
    /// The lease is revoked already: finish failing over the tenants still placed on the cell.
    Finish,
    /// Too many automatic moves: a person decides.
    Page(String),
}

/// The decision, from the evidence alone (pure: the controller and its tests run this).
pub fn decide(
    policy: &ControllerPolicy,
    cell_domain: &str,
    verdicts: &Verdicts,
    lease: &CellLease,
    expired: Option<u64>,
    now_ms: i64,
) -> Decision {
    if lease.revoked {
        return Decision::Finish;
    }
    let down: Vec<String> = verdicts
        .votes
        .iter()
        .filter(|(domain, vote)| {
            domain.as_str() != cell_domain && vote.down && vote.lease_seq == lease.seq
        })
        .map(|(domain, _)| domain.clone())
        .collect();
    if down.len() < policy.observers_required {
        return Decision::Hold(Hold::TooFewObservers {
            down,
            required: policy.observers_required,
        });
    }
    if expired != Some(lease.seq) {
        return Decision::Hold(Hold::LeaseAlive);
    }
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let recent = verdicts
        .moves
        .iter()
        .filter(|&&at| now_ms.saturating_sub(at) < millis(policy.move_window))
        .count();
    if recent >= policy.max_moves {
        return Decision::Page(format!(
            "{recent} automatic moves within {} s: not moving again without a person",
            policy.move_window.as_secs()
        ));
    }
    if let Some(&last) = verdicts.moves.iter().max() {
        let until_ms = last.saturating_add(millis(policy.hold_down));
        if now_ms < until_ms {
            return Decision::Hold(Hold::HoldDown { until_ms });
        }
    }
    Decision::Promote { seq: lease.seq }
}

/// A tenant the controller fails over, and where to.
#[derive(Clone)]
pub struct Protected {
    /// The tenant.
    pub tenant: TenantId,
    /// Its standby cell (store access, as an operator has).
    pub standby: CellHandle,
}

/// What one tick saw and did: the evidence a host logs and emits as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// The observer's domain.
    pub observer: String,
    /// The watched cell.
    pub cell: CellId,
    /// Whether the probe answered `200`.
    pub probe_ok: bool,
    /// The lease as read (`None`: no majority answered, or no lease yet).
    pub lease: Option<CellLease>,
    /// The votes as the quorum holds them after this observer's.
    pub votes: BTreeMap<String, Vote>,
    /// The decision (`None`: the quorum could not be read).
    pub decision: Option<Decision>,
    /// Failovers performed, or why each stopped.
    pub failovers: Vec<Result<FailoverReport, String>>,
    /// Anything that went wrong on the way (the quorum unreachable, a malformed record).
    pub problems: Vec<String>,
}

/// One observer of one cell.
pub struct Controller {
    observer: String,
    cell: CellId,
    cell_domain: String,
    health_url: String,
    tenants: Vec<Protected>,
    old: Option<CellHandle>,
    http: Arc<dyn HttpClient>,
    quorum: Arc<QuorumRegistry>,
    ports: MovePorts,
    mono: Arc<dyn MonotonicClock>,
    wall: Arc<dyn Clock>,
    policy: ControllerPolicy,
    state: Mutex<(ProbeWindow, LeaseWatch)>,
    /// The revoked lease (tenure, counter) whose failover this controller saw complete, read by
    /// rounds: every protected tenant placed elsewhere. Its later `Finish` ticks then write nothing
    /// (each would be a lease round and a placement round per tenant, every tick, for as long as the
    /// lease stays revoked — contending with the new primary's own rounds, and over the witness's
    /// per-object write rate with three observers).
    finished: Mutex<Option<(u64, u64)>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("observer", &self.observer)
            .field("cell", &self.cell)
            .field("cell_domain", &self.cell_domain)
            .finish_non_exhaustive()
    }
}

/// Where a controller runs and what it watches.
#[derive(Clone)]
pub struct Watched {
    /// The observer's own failure domain.
    pub observer: String,
    /// The watched cell.
    pub cell: CellId,
    /// The cell's failure domain (its votes do not count).
    pub cell_domain: String,
    /// The cell's health URL.
    pub health_url: String,
    /// Its tenants and their standbys.
    pub tenants: Vec<Protected>,
    /// The watched cell's own store, when this observer can read it (exact loss in the reports).
    pub old: Option<CellHandle>,
}

impl Controller {
    /// An observer of `watched`, reaching it through `http`, deciding in `quorum` (which is also the
    /// placement registry in `ports`), measuring the lease on `mono` and the damping on `wall`.
    pub fn new(
        watched: Watched,
        http: Arc<dyn HttpClient>,
        quorum: Arc<QuorumRegistry>,
        ports: MovePorts,
        mono: Arc<dyn MonotonicClock>,
        policy: ControllerPolicy,
        timing: LeaseTiming,
    ) -> Self {
        let wall = Arc::clone(&ports.clock);
        Self {
            observer: watched.observer,
            cell: watched.cell,
            cell_domain: watched.cell_domain,
            health_url: watched.health_url,
            tenants: watched.tenants,
            old: watched.old,
            http,
            quorum,
            ports,
            mono,
            wall,
            policy,
            state: Mutex::new((ProbeWindow::default(), LeaseWatch::new(timing))),
            finished: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, (ProbeWindow, LeaseWatch)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn probe(&self) -> bool {
        let request = OutboundRequest {
            method: "GET".into(),
            url: self.health_url.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: self.policy.probe_timeout,
        };
        matches!(self.http.send(request).await, Ok(r) if r.status == 200)
    }

    /// One round of probe, vote, watch, decide and act.
    pub async fn tick(&self) -> TickReport {
        let probe_ok = self.probe().await;
        let suspects = self.state().0.record(probe_ok, &self.policy);
        let mut report = TickReport {
            observer: self.observer.clone(),
            cell: self.cell.clone(),
            probe_ok,
            lease: None,
            votes: BTreeMap::new(),
            decision: None,
            failovers: Vec::new(),
            problems: Vec::new(),
        };
        let lease = match self.read_lease().await {
            Ok(Some(lease)) => lease,
            Ok(None) => return report,
            Err(problem) => {
                report.problems.push(problem);
                return report;
            }
        };
        self.state().1.observe(&lease, self.mono.now());
        report.lease = Some(lease.clone());
        let vote = Vote {
            down: suspects,
            lease_seq: lease.seq,
        };
        let verdicts = match self.vote(vote).await {
            Ok(v) => v,
            Err(problem) => {
                report.problems.push(problem);
                return report;
            }
        };
        report.votes = verdicts.votes.clone();
        let expired = self.state().1.expired(self.mono.now());
        let now_ms = self.wall.now().unix_millis();
        let decision = decide(
            &self.policy,
            &self.cell_domain,
            &verdicts,
            &lease,
            expired,
            now_ms,
        );
        report.decision = Some(decision.clone());
        match decision {
            Decision::Promote { seq } => match lease::revoke(&self.quorum, &self.cell, seq).await {
                Ok(LeaseChange::Applied(revoked)) => self.fail_over(&mut report, &revoked).await,
                Ok(LeaseChange::Refused { reason, .. }) => report
                    .problems
                    .push(format!("revocation refused ({reason:?}): the cell renewed")),
                Err(e) => report.problems.push(format!("revocation: {e}")),
            },
            // The revocation was seen by a read that writes nothing: it may still be in flight, and
            // a renewal may yet win. Acted on only once a round reads it chosen.
            Decision::Finish if self.finished_for(&lease) => {}
            Decision::Finish => match lease::read(&self.quorum, &self.cell).await {
                Ok(Some(chosen)) if chosen.revoked => self.fail_over(&mut report, &chosen).await,
                Ok(chosen) => report.problems.push(format!(
                    "the revocation seen is not chosen (the lease is {chosen:?}): nothing done"
                )),
                Err(e) => report.problems.push(format!("lease: {e}")),
            },
            Decision::Hold(_) | Decision::Page(_) => {}
        }
        report
    }

    /// The lease as a majority holds it, **writing nothing** ([`lease::peek`]): every observer reads
    /// it every tick, and on an object store with a per-object write limit (the witness on Cloud
    /// Storage) a round per read would not fit. Watching is all it is used for: the revocation
    /// checks the counter inside its own round, and a revocation seen is confirmed by a round before
    /// anything moves.
    async fn read_lease(&self) -> Result<Option<CellLease>, String> {
        lease::peek(&self.quorum, &self.cell)
            .await
            .map_err(|e| format!("lease: {e}"))
    }

    /// Records this observer's vote — only when it changed (down ↔ up, or a down vote for a new
    /// counter: votes count only for the counter now current, and an up vote for none), so a
    /// healthy cell's observers write nothing — and returns every vote as a majority holds them.
    async fn vote(&self, vote: Vote) -> Result<Verdicts, String> {
        let seen = self
            .quorum
            .peek(&verdict_key(&self.cell))
            .await
            .map_err(|e| format!("verdicts of {}: {e}", self.cell))?;
        let verdicts = seen
            .as_deref()
            .map(Verdicts::parse)
            .transpose()?
            .unwrap_or_default();
        let unchanged = verdicts.votes.get(&self.observer).is_some_and(|mine| {
            mine.down == vote.down && (!vote.down || mine.lease_seq == vote.lease_seq)
        });
        if unchanged {
            return Ok(verdicts);
        }
        self.update_verdicts(&self.cell, |v| {
            v.votes.insert(self.observer.clone(), vote);
        })
        .await
    }

    async fn update_verdicts(
        &self,
        cell: &CellId,
        change: impl Fn(&mut Verdicts),
    ) -> Result<Verdicts, String> {
        let written = self
            .quorum
            .change(&verdict_key(cell), |current| {
                let mut verdicts = current
                    .map(Verdicts::parse)
                    .transpose()?
                    .unwrap_or_default();
                change(&mut verdicts);
                Ok::<_, String>(Some(verdicts.render()))
            })
            .await
            .map_err(|e| format!("verdicts of {cell}: {e}"))??;
        Verdicts::parse(&written.unwrap_or_default())
    }

    /// Whether this controller saw the failover under `lease` (revoked) complete.
    fn finished_for(&self, lease: &CellLease) -> bool {
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) == Some((lease.tenure, lease.seq))
    }

    /// Fails over every protected tenant the registry still places on the cell, then records the
    /// move in both cells' verdicts. When every protected tenant is now placed elsewhere (read by a
    /// round, or moved by this call), the failover under `revoked` is finished for this controller.
    async fn fail_over(&self, report: &mut TickReport, revoked: &CellLease) {
        let mut moved_to = Vec::new();
        let mut all_moved = true;
        for protected in &self.tenants {
            match self.quorum.get(&protected.tenant).await {
                Ok(Some(p)) if p.primary == self.cell => {}
                // Moved already (a previous tick, another observer), or never placed here.
                Ok(_) => continue,
                Err(e) => {
                    all_moved = false;
                    report
                        .failovers
                        .push(Err(format!("{}: {e}", protected.tenant)));
                    continue;
                }
            }
            let outcome = failover(
                &protected.tenant,
                &self.cell,
                self.old.as_ref(),
                &protected.standby,
                &self.ports,
                None,
                FailoverPolicy::after_revocation(),
            )
            .await;
            all_moved &= outcome.is_ok();
            if outcome.is_ok() && !moved_to.contains(&protected.standby.id) {
                moved_to.push(protected.standby.id.clone());
            }
            report
                .failovers
                .push(outcome.map_err(|e| format!("{}: {e}", protected.tenant)));
        }
        if all_moved {
            *self.finished.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((revoked.tenure, revoked.seq));
        }
        if moved_to.is_empty() {
            return;
        }
        let now_ms = self.wall.now().unix_millis();
        for cell in std::iter::once(&self.cell).chain(moved_to.iter()) {
            if let Err(problem) = self.update_verdicts(cell, |v| v.moves.push(now_ms)).await {
                // The hold-down is damping, not safety: the failover stands, and is finished.
                report.problems.push(problem);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(seq: u64, revoked: bool) -> CellLease {
        CellLease {
            cell: CellId::parse("aws-1").unwrap(),
            tenure: 1,
            seq,
            revoked,
        }
    }

    fn votes(entries: &[(&str, bool, u64)]) -> Verdicts {
        Verdicts {
            votes: entries
                .iter()
                .map(|(d, down, seq)| {
                    (
                        (*d).to_owned(),
                        Vote {
                            down: *down,
                            lease_seq: *seq,
                        },
                    )
                })
                .collect(),
            moves: Vec::new(),
        }
    }

    #[test]
    fn two_other_domains_and_an_expired_lease_are_needed() {
        let p = ControllerPolicy::default();
        let both = votes(&[("azure", true, 7), ("gcp", true, 7)]);
        assert_eq!(
            decide(&p, "aws", &both, &lease(7, false), Some(7), 0),
            Decision::Promote { seq: 7 }
        );
        // The lease moved on since the votes: stale votes do not count.
        assert!(matches!(
            decide(&p, "aws", &both, &lease(8, false), Some(8), 0),
            Decision::Hold(Hold::TooFewObservers { .. })
        ));
        // One observer alone, or the cell's own domain, is not enough.
        let one = votes(&[("azure", true, 7), ("aws", true, 7), ("gcp", false, 7)]);
        assert_eq!(
            decide(&p, "aws", &one, &lease(7, false), Some(7), 0),
            Decision::Hold(Hold::TooFewObservers {
                down: vec!["azure".into()],
                required: 2
            })
        );
        // Everyone agrees, but the lease is still renewed: the lease decides.
        assert_eq!(
            decide(&p, "aws", &both, &lease(7, false), None, 0),
            Decision::Hold(Hold::LeaseAlive)
        );
        assert_eq!(
            decide(&p, "aws", &both, &lease(7, true), None, 0),
            Decision::Finish
        );
    }

    #[test]
    fn a_recent_move_holds_down_and_too_many_page() {
        let p = ControllerPolicy::default();
        let mut v = votes(&[("azure", true, 7), ("gcp", true, 7)]);
        v.moves = vec![1_000];
        assert_eq!(
            decide(&p, "aws", &v, &lease(7, false), Some(7), 1_000 + 599_999),
            Decision::Hold(Hold::HoldDown { until_ms: 601_000 })
        );
        assert_eq!(
            decide(&p, "aws", &v, &lease(7, false), Some(7), 601_000),
            Decision::Promote { seq: 7 }
        );
        v.moves = vec![0, 1_000_000, 2_000_000];
        assert!(matches!(
            decide(&p, "aws", &v, &lease(7, false), Some(7), 3_000_000),
            Decision::Page(_)
        ));
    }

    #[test]
    fn an_observer_suspects_after_failures_in_a_row() {
        let p = ControllerPolicy::default();
        let mut w = ProbeWindow::default();
        assert!(!w.record(false, &p));
        assert!(!w.record(false, &p));
        assert!(!w.record(true, &p), "a success starts the count again");
        assert!(!w.record(false, &p));
        assert!(!w.record(false, &p));
        assert!(w.record(false, &p));
    }
}
