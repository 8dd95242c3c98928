//! **One lease per cell**, kept in the quorum (register `lease/<cell>`), and the timing rules that
//! make it safe without ever comparing two machines' clocks.
//!
//! A cell books for its tenants only while it holds its lease; renewals cost the same whatever the
//! number of tenants (per-tenant placement records change only on moves). Each of a cell's
//! processes (a Lambda execution environment, a Function instance) renews the one record and keeps
//! its own deadline:
//!
//! - **Holder** ([`LeaseHolder`]): the deadline is measured on the process's *monotonic* clock from
//!   the moment the successful renewal was **sent**: `sent + L·(1−ρ)`. It stops starting commits at
//!   `deadline − g` (g ≥ the store's request timeout), and **acknowledges a write only if its commit
//!   returned before the deadline** ([`LeaseHolder::acknowledge`]); a commit that returned later is
//!   answered `503` and reported in the divergent tail at reconciliation — a store cannot see the
//!   time, and a delayed request can still commit after the lease ran out.
//! - **Promoter** ([`LeaseWatch`]): a controller that wants to move the cell's tenants notes when it
//!   *first saw* the lease's renewal counter `seq`, waits `L·(1+ρ) + margin` on its own monotonic
//!   clock without seeing it change, then **revokes** the lease conditionally on `seq` being
//!   unchanged ([`revoke`]). If that revocation is chosen, no renewal was chosen after the one it saw,
//!   so every holder's deadline has passed (proof in [`LeaseTiming::promoter_wait`]); and the cell
//!   cannot renew again — a revoked lease is sticky until the control plane grants a new tenure
//!   ([`reinstate`]), after which the cell re-confirms each tenant's placement before booking for it.
//!
//! The numbers (defaults from Chubby's and client-go's: L = 12 s, renewal every 4 s, ρ = 500 ppm,
//! g = 2 s, margin 2.5 s) and the timeline are in `docs/failover.md`.

use super::{QuorumError, QuorumRegistry};
use crate::tenancy::CellId;
use std::time::Duration;

/// Parts per million: the clock-rate error bound ρ.
const PPM: u128 = 1_000_000;

/// A duration scaled by `(1 ± ppm/10⁶)`, in whole nanoseconds, rounded towards safety by the caller's
/// choice of sign (no floating point).
fn scale(d: Duration, ppm: u32, up: bool) -> Duration {
    let nanos = d.as_nanos();
    let delta = nanos * u128::from(ppm) / PPM;
    let scaled = if up { nanos + delta } else { nanos - delta };
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// Why a set of lease timings is unsafe or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease timing: {0}")]
pub struct LeaseTimingError(String);

/// The lease's durations. Valid by construction ([`LeaseTiming::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTiming {
    lease: Duration,
    renew_every: Duration,
    drift_ppm: u32,
    stop_early: Duration,
    margin: Duration,
}

impl Default for LeaseTiming {
    /// L = 12 s, renewal every 4 s (three tries per lease), ρ = 500 ppm (what ntpd corrects), stop
    /// 2 s before the deadline (a store request times out after 1.5 s), promoter margin 2.5 s.
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(12),
            renew_every: Duration::from_secs(4),
            drift_ppm: 500,
            stop_early: Duration::from_secs(2),
            margin: Duration::from_millis(2_500),
        }
    }
}

impl LeaseTiming {
    /// Timings for a lease of `lease`, renewed every `renew_every`, clocks within `drift_ppm` of true
    /// rate, commits stopped `stop_early` before the deadline (at least the store's request timeout,
    /// so no commit is still in flight at the deadline), and a promoter margin of `margin` (at least
    /// the longest invocation: an in-flight request of a process that has not yet noticed).
    ///
    /// ```
    /// use paracell_domain::placement::quorum::LeaseTiming;
    /// use std::time::Duration;
    /// let s = Duration::from_secs;
    /// assert!(LeaseTiming::new(s(12), s(4), 500, s(2), Duration::from_millis(2_500)).is_ok());
    /// assert!(LeaseTiming::new(s(12), s(5), 500, s(2), s(2)).is_err(), "fewer than three renewals per lease");
    /// assert!(LeaseTiming::new(s(12), s(4), 500, s(12), s(2)).is_err(), "stops before it starts");
    /// ```
    pub fn new(
        lease: Duration,
        renew_every: Duration,
        drift_ppm: u32,
        stop_early: Duration,
        margin: Duration,
    ) -> Result<Self, LeaseTimingError> {
        let err = |m: &str| Err(LeaseTimingError(m.to_owned()));
        if renew_every.is_zero() || renew_every.saturating_mul(3) > lease {
            return err("renew at least three times per lease (renew_every ≤ lease / 3)");
        }
        if drift_ppm > 10_000 {
            return err("a clock-rate bound above 1 % (10,000 ppm) is not a working clock");
        }
        let timing = Self {
            lease,
            renew_every,
            drift_ppm,
            stop_early,
            margin,
        };
        if stop_early.saturating_add(renew_every) >= timing.holder_lease() {
            return err("the stop point must leave time to commit after a renewal");
        }
        if margin.is_zero() {
            return err("the promoter margin must cover the longest invocation (> 0)");
        }
        Ok(timing)
    }

    /// L.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How often a holder renews.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// ρ, in parts per million.
    pub fn drift_ppm(&self) -> u32 {
        self.drift_ppm
    }

    /// How long after a renewal's send time a holder may acknowledge: `L·(1−ρ)`.
    pub fn holder_lease(&self) -> Duration {
        scale(self.lease, self.drift_ppm, false)
    }

    /// How long after sending a renewal a holder may still *start* a commit: `L·(1−ρ) − g`.
    pub fn holder_stop(&self) -> Duration {
        self.holder_lease().saturating_sub(self.stop_early)
    }

    /// How long a promoter waits, from when it first saw a renewal counter, before it may revoke:
    /// `L·(1+ρ) + margin`.
    ///
    /// Why that suffices: the holder sent the renewal at real time `s`, before it was chosen, so
    /// before the promoter saw it at real time `o ≥ s`. A clock within ρ of true rate measures
    /// `L·(1−ρ)` in at most `L·(1−ρ)/(1−ρ) = L` real time, and `L·(1+ρ)+m` in at least
    /// `L + m/(1+ρ)`. So the holder's deadline falls by `s + L`, and the promoter acts no earlier
    /// than `o + L + m/(1+ρ) > s + L`. The margin covers a request already inside the holder when
    /// its deadline passes (the ack rule refuses to acknowledge it; the margin keeps its commit
    /// from racing the new primary's first one).
    pub fn promoter_wait(&self) -> Duration {
        scale(self.lease, self.drift_ppm, true).saturating_add(self.margin)
    }
}

/// The lease record a cell's register holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CellLease {
    /// The cell it belongs to.
    pub cell: CellId,
    /// Raised by every grant after a revocation: a new tenure makes the cell re-confirm each
    /// tenant's placement before booking for it.
    pub tenure: u64,
    /// Raised by every renewal (and by the revocation): what a promoter watches.
    pub seq: u64,
    /// Revoked: no renewal succeeds until the control plane grants a new tenure.
    pub revoked: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseDoc<'a> {
    cell: &'a str,
    tenure: u64,
    seq: u64,
    revoked: bool,
}

impl CellLease {
    /// The register's document.
    pub fn render(&self) -> String {
        let doc = LeaseDoc {
            cell: self.cell.as_str(),
            tenure: self.tenure,
            seq: self.seq,
            revoked: self.revoked,
        };
        // Serialising a plain struct of strings and integers cannot fail.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// A register's document, strictly: anything else is an error, never a missing lease.
    ///
    /// ```
    /// use paracell_domain::placement::quorum::CellLease;
    /// let text = r#"{"cell":"aws-1","tenure":2,"seq":41,"revoked":false}"#;
    /// assert_eq!(CellLease::parse(text).unwrap().render(), text);
    /// assert!(CellLease::parse(r#"{"cell":"aws-1","tenure":2,"seq":41}"#).is_err());
    /// assert!(CellLease::parse(r#"{"cell":"no spaces","tenure":2,"seq":41,"revoked":false}"#).is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, crate::DecodeError> {
        let invalid = |detail: String| crate::DecodeError::new("cell lease", detail);
        let doc: LeaseDoc<'_> = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            cell: CellId::parse(doc.cell)
                .map_err(|e| invalid(format!("cell {:?}: {e}", doc.cell)))?,
            tenure: doc.tenure,
            seq: doc.seq,
            revoked: doc.revoked,
        })
    }
}

/// The register a cell's lease lives in.
pub fn lease_key(cell: &CellId) -> String {
    format!("lease/{cell}")
}

/// What a lease change did.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeaseChange {
    /// Applied; the record as chosen.
    Applied(CellLease),
    /// Refused, with the record as the quorum holds it and why.
    Refused {
        /// The record as chosen (`None`: the cell never had a lease).
        current: Option<CellLease>,
        /// Why.
        reason: LeaseRefusal,
    },
}

/// Why a lease change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseRefusal {
    /// The lease is revoked: the cell must not book until a new tenure is granted.
    Revoked,
    /// The cell renewed after the promoter looked (`seq` moved): it is alive at a majority.
    Renewed,
    /// Nothing to revoke or reinstate in this state (no lease, already revoked, not revoked, or
    /// another tenure than the caller named).
    NotApplicable,
}

/// Why a lease change could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// No quorum, contention, or a bad acceptor set.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The register holds something that is not this cell's lease: reported, never acted on.
    #[error("the lease register of {cell} holds a malformed record: {detail}")]
    Malformed {
        /// The cell.
        cell: CellId,
        /// What is wrong.
        detail: String,
    },
}

/// Runs `decide` on the cell's lease register: `Ok(Some(new))` writes it, `Err(reason)` refuses.
async fn lease_change(
    quorum: &QuorumRegistry,
    cell: &CellId,
    decide: impl Fn(Option<&CellLease>) -> Result<CellLease, LeaseRefusal>,
) -> Result<LeaseChange, LeaseError> {
    enum Decline {
        Refused(Option<CellLease>, LeaseRefusal),
        Malformed(String),
    }
    let decided = quorum
        .change(&lease_key(cell), |text| {
            let current = text
                .map(CellLease::parse)
                .transpose()
                .map_err(|e| Decline::Malformed(e.to_string()))?;
            if let Some(c) = &current
                && &c.cell != cell
            {
                return Err(Decline::Malformed(format!("it names cell {}", c.cell)));
            }
            match decide(current.as_ref()) {
                Ok(new) => Ok(Some(new.render())),
                Err(reason) => Err(Decline::Refused(current, reason)),
            }
        })
        .await?;
    match decided {
        Ok(Some(text)) => CellLease::parse(&text)
            .map(LeaseChange::Applied)
            .map_err(|e| LeaseError::Malformed {
                cell: cell.clone(),
                detail: e.to_string(),
            }),
        Ok(None) => Err(LeaseError::Malformed {
            cell: cell.clone(),
            detail: "a change wrote nothing".into(),
        }),
        Err(Decline::Refused(current, reason)) => Ok(LeaseChange::Refused { current, reason }),
        Err(Decline::Malformed(detail)) => Err(LeaseError::Malformed {
            cell: cell.clone(),
            detail,
        }),
    }
}

/// The lease changes as pure decisions on the register's current record (`None`: never granted):
/// the async calls below run them inside a quorum change, and the lease model check runs them as
/// they are.
pub mod decide {
    use super::{CellLease, LeaseRefusal};
    use crate::tenancy::CellId;

    /// A renewal raises `seq` on a lease that is not revoked; a cell that never had one starts
    /// tenure 1.
    pub fn renew(current: Option<&CellLease>, cell: &CellId) -> Result<CellLease, LeaseRefusal> {
        match current {
            None => Ok(CellLease {
                cell: cell.clone(),
                tenure: 1,
                seq: 1,
                revoked: false,
            }),
            Some(l) if l.revoked => Err(LeaseRefusal::Revoked),
            Some(l) => Ok(CellLease {
                seq: l.seq + 1,
                ..l.clone()
            }),
        }
    }

    /// A revocation applies only to a lease still at `seen_seq`.
    pub fn revoke(current: Option<&CellLease>, seen_seq: u64) -> Result<CellLease, LeaseRefusal> {
        match current {
            Some(l) if !l.revoked && l.seq == seen_seq => Ok(CellLease {
                seq: l.seq + 1,
                revoked: true,
                ..l.clone()
            }),
            Some(l) if !l.revoked => Err(LeaseRefusal::Renewed),
            _ => Err(LeaseRefusal::NotApplicable),
        }
    }

    /// A new tenure only for a lease revoked at `tenure`.
    pub fn reinstate(current: Option<&CellLease>, tenure: u64) -> Result<CellLease, LeaseRefusal> {
        match current {
            Some(l) if l.revoked && l.tenure == tenure => Ok(CellLease {
                tenure: l.tenure + 1,
                seq: l.seq + 1,
                revoked: false,
                ..l.clone()
            }),
            _ => Err(LeaseRefusal::NotApplicable),
        }
    }
}

/// The cell's lease as a majority holds it (a full round that writes back what it read:
/// linearisable); `None` before its first renewal. A record that is not this cell's lease is
/// [`LeaseError::Malformed`].
pub async fn read(quorum: &QuorumRegistry, cell: &CellId) -> Result<Option<CellLease>, LeaseError> {
    let text = quorum
        .change(&lease_key(cell), |_| {
            Ok::<_, std::convert::Infallible>(None)
        })
        .await?
        .unwrap_or_else(|never| match never {});
    lease_of(cell, text)
}

/// The register's text as `cell`'s lease; a record that is not this cell's lease is
/// [`LeaseError::Malformed`].
fn lease_of(cell: &CellId, text: Option<String>) -> Result<Option<CellLease>, LeaseError> {
    let malformed = |detail: String| LeaseError::Malformed {
        cell: cell.clone(),
        detail,
    };
    let Some(text) = text else {
        return Ok(None);
    };
    let lease = CellLease::parse(&text).map_err(|e| malformed(e.to_string()))?;
    if &lease.cell != cell {
        return Err(malformed(format!("it names cell {}", lease.cell)));
    }
    Ok(Some(lease))
}

/// The cell's lease as the first majority of acceptors to answer holds it, writing nothing
/// ([`QuorumRegistry::peek`]): the lease last chosen or a newer one still being proposed. Enough to
/// **watch** the counter — a promoter that first sees a counter this way sees it no earlier than
/// the holder sent that renewal, and its revocation checks the counter inside its own round — but
/// never to act on: a `revoked` seen here may not be chosen yet (read it with [`read`] first).
pub async fn peek(quorum: &QuorumRegistry, cell: &CellId) -> Result<Option<CellLease>, LeaseError> {
    let text = quorum.peek(&lease_key(cell)).await?;
    lease_of(cell, text)
}

/// A cell's renewal ([`decide::renew`]). The caller sends it through a [`LeaseHolder`], which
/// measures the deadline.
pub async fn renew(quorum: &QuorumRegistry, cell: &CellId) -> Result<LeaseChange, LeaseError> {
    lease_change(quorum, cell, |current| decide::renew(current, cell)).await
}

/// A promoter's revocation ([`decide::revoke`]), only if the lease is still at `seen_seq` (the
/// counter it watched unchanged for [`LeaseTiming::promoter_wait`]). Applied: every holder's
/// deadline has passed and none can renew; the cell's tenants may be promoted elsewhere.
pub async fn revoke(
    quorum: &QuorumRegistry,
    cell: &CellId,
    seen_seq: u64,
) -> Result<LeaseChange, LeaseError> {
    lease_change(quorum, cell, |current| decide::revoke(current, seen_seq)).await
}

/// The control plane's grant of a new tenure to a revoked cell (after its tenants were moved, or an
/// operator decided; [`decide::reinstate`]): only if the lease is revoked at `tenure`.
pub async fn reinstate(
    quorum: &QuorumRegistry,
    cell: &CellId,
    tenure: u64,
) -> Result<LeaseChange, LeaseError> {
    lease_change(quorum, cell, |current| decide::reinstate(current, tenure)).await
}

/// An instant on a process's monotonic clock: time since an arbitrary origin fixed at start-up
/// (hosts take the larger of elapsed monotonic and elapsed wall time, since `CLOCK_MONOTONIC` stops
/// while a machine is suspended).
pub type Monotonic = Duration;

/// What one process of a cell knows of its lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseHolder {
    timing: LeaseTiming,
    /// The send time of the last renewal known to be chosen, and the tenure it was in.
    held: Option<(Monotonic, u64)>,
    /// The send time of the last renewal sent (chosen or not).
    last_sent: Option<Monotonic>,
    /// The last renewal did not succeed (failed or revoked): retry sooner than a renewal is due.
    failing: bool,
}

/// What a renewal's outcome means for the process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Renewed {
    /// Renewed in the tenure it already knew.
    Extended,
    /// Renewed in a tenure it did not know (its first, or one granted after a revocation): re-confirm
    /// each tenant's placement before booking for it.
    NewTenure(u64),
    /// Revoked: stop booking now (whatever the deadline says) and answer `503`.
    Revoked,
    /// Not renewed (no quorum, contention): the deadline of the last renewal still stands.
    Failed,
}

/// Whether a commit may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MayCommit {
    /// Yes, under this tenure.
    Yes(u64),
    /// No: no lease, revoked, or past the stop point.
    No,
}

impl LeaseHolder {
    /// A process that holds nothing yet.
    pub fn new(timing: LeaseTiming) -> Self {
        Self {
            timing,
            held: None,
            last_sent: None,
            failing: false,
        }
    }

    /// Whether a renewal is due at `now`: none sent yet, `renew_every` since the last one, or — when
    /// the last one did not succeed — a quarter of that (client-go's retry period is a fifth of its
    /// lease; a cell cut off retries a few times per lease, not on every request).
    pub fn renewal_due(&self, now: Monotonic) -> bool {
        let every = if self.failing {
            self.timing.renew_every / 4
        } else {
            self.timing.renew_every
        };
        self.last_sent
            .is_none_or(|sent| now.saturating_sub(sent) >= every)
    }

    /// Notes that a renewal is being sent at `sent`; pass the same instant to [`Self::on_renewal`].
    pub fn sending(&mut self, sent: Monotonic) {
        self.last_sent = Some(sent);
    }

    /// Takes a renewal's outcome: the renewal was *sent* at `sent`.
    pub fn on_renewal(
        &mut self,
        sent: Monotonic,
        outcome: &Result<LeaseChange, LeaseError>,
    ) -> Renewed {
        match outcome {
            Ok(LeaseChange::Applied(lease)) => {
                self.failing = false;
                let known = self.held.map(|(_, tenure)| tenure);
                // A late answer to an older renewal never moves the deadline back.
                let newer = self.held.is_none_or(|(at, _)| sent >= at);
                if newer {
                    self.held = Some((sent, lease.tenure));
                }
                if known == Some(lease.tenure) {
                    Renewed::Extended
                } else {
                    Renewed::NewTenure(lease.tenure)
                }
            }
            Ok(LeaseChange::Refused {
                reason: LeaseRefusal::Revoked,
                ..
            }) => {
                self.held = None;
                self.failing = true;
                Renewed::Revoked
            }
            Ok(LeaseChange::Refused { .. }) | Err(_) => {
                self.failing = true;
                Renewed::Failed
            }
        }
    }

    /// The deadline: no acknowledgement at or after it.
    pub fn deadline(&self) -> Option<Monotonic> {
        self.held
            .map(|(sent, _)| sent.saturating_add(self.timing.holder_lease()))
    }

    /// Whether a commit may start at `now` (before the stop point).
    pub fn may_commit(&self, now: Monotonic) -> MayCommit {
        match self.held {
            Some((sent, tenure)) if now < sent.saturating_add(self.timing.holder_stop()) => {
                MayCommit::Yes(tenure)
            }
            _ => MayCommit::No,
        }
    }

    /// The ack rule: a commit that returned at `returned` may be acknowledged only if that is before
    /// the deadline. `false`: answer `503`, and the entry belongs to the divergent tail.
    pub fn acknowledge(&self, returned: Monotonic) -> bool {
        self.deadline().is_some_and(|deadline| returned < deadline)
    }
}

/// A promoter's view of one cell's lease: when it first saw the current renewal counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseWatch {
    timing: LeaseTiming,
    seen: Option<(u64, Monotonic)>,
}

impl LeaseWatch {
    /// A watch that has seen nothing.
    pub fn new(timing: LeaseTiming) -> Self {
        Self { timing, seen: None }
    }

    /// Notes the lease as read at `now` (a majority read). A new counter restarts the wait.
    pub fn observe(&mut self, lease: &CellLease, now: Monotonic) {
        match self.seen {
            Some((seq, _)) if seq == lease.seq => {}
            _ => self.seen = Some((lease.seq, now)),
        }
    }

    /// The counter to revoke at, once it has stood unchanged for [`LeaseTiming::promoter_wait`].
    pub fn expired(&self, now: Monotonic) -> Option<u64> {
        let (seq, first) = self.seen?;
        (now.saturating_sub(first) >= self.timing.promoter_wait()).then_some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Acceptor, MemoryAcceptor};
    use super::*;
    use crate::testing::block_on;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The worked timeline of `docs/failover.md`, computed by the code the cells run.
    #[test]
    fn the_default_timeline() {
        let t = LeaseTiming::default();
        assert_eq!(t.holder_lease(), ms(11_994));
        assert_eq!(t.holder_stop(), ms(9_994));
        assert_eq!(t.promoter_wait(), ms(14_506));
        let mut holder = LeaseHolder::new(t);
        let cell = CellId::parse("aws-1").unwrap();
        let lease = CellLease {
            cell,
            tenure: 1,
            seq: 41,
            revoked: false,
        };
        holder.sending(ms(0));
        assert_eq!(
            holder.on_renewal(ms(0), &Ok(LeaseChange::Applied(lease.clone()))),
            Renewed::NewTenure(1)
        );
        assert_eq!(holder.may_commit(ms(9_993)), MayCommit::Yes(1));
        assert_eq!(holder.may_commit(ms(9_994)), MayCommit::No);
        assert!(holder.acknowledge(ms(11_993)));
        assert!(
            !holder.acknowledge(ms(11_994)),
            "a commit back at the deadline is not acknowledged"
        );
        let mut watch = LeaseWatch::new(t);
        watch.observe(&lease, ms(400));
        assert_eq!(watch.expired(ms(14_905)), None);
        assert_eq!(watch.expired(ms(14_906)), Some(41));
    }

    /// The safety argument of [`LeaseTiming::promoter_wait`] checked over clock rates at the bound
    /// and send/observe gaps: in true time, the holder's deadline always falls before the promoter
    /// may act. (Rates are exact rationals: true time = clock time · 10⁶ / (10⁶ ± ρ).)
    #[test]
    fn the_holder_deadline_falls_before_the_promoter_acts_at_any_rate_within_the_bound() {
        for timing in [
            LeaseTiming::default(),
            LeaseTiming::new(ms(3_000), ms(1_000), 10_000, ms(500), ms(1)).unwrap(),
        ] {
            let rho = u128::from(timing.drift_ppm());
            for holder_rate in [PPM - rho, PPM, PPM + rho] {
                for promoter_rate in [PPM - rho, PPM, PPM + rho] {
                    for gap in [0u128, 1, 1_000_000] {
                        // Real nanoseconds: the holder sends at 0, the promoter first sees at `gap`.
                        let holder_deadline = timing.holder_lease().as_nanos() * PPM / holder_rate;
                        let promoter_acts =
                            gap + timing.promoter_wait().as_nanos() * PPM / promoter_rate;
                        assert!(
                            holder_deadline < promoter_acts,
                            "{timing:?}: rates {holder_rate}/{promoter_rate}, gap {gap}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_late_answer_never_moves_the_deadline_back_and_a_revocation_stops_at_once() {
        let mut holder = LeaseHolder::new(LeaseTiming::default());
        let lease = |tenure| {
            Ok(LeaseChange::Applied(CellLease {
                cell: CellId::parse("c").unwrap(),
                tenure,
                seq: 1,
                revoked: false,
            }))
        };
        holder.on_renewal(ms(4_000), &lease(1));
        holder.on_renewal(ms(0), &lease(1));
        assert_eq!(holder.deadline(), Some(ms(15_994)));
        assert_eq!(
            holder.on_renewal(ms(8_000), &lease(2)),
            Renewed::NewTenure(2)
        );
        let revoked = Ok(LeaseChange::Refused {
            current: None,
            reason: LeaseRefusal::Revoked,
        });
        assert_eq!(holder.on_renewal(ms(9_000), &revoked), Renewed::Revoked);
        assert_eq!(holder.may_commit(ms(9_001)), MayCommit::No);
        assert!(!holder.acknowledge(ms(9_001)));
        assert!(holder.renewal_due(ms(9_001)));
    }

    fn quorum() -> (Vec<Arc<MemoryAcceptor>>, QuorumRegistry) {
        super::super::memory_quorum(1)
    }

    #[test]
    fn renew_revoke_reinstate() {
        let (_, q) = quorum();
        let cell = CellId::parse("aws-1").unwrap();
        let applied = |c| match c {
            Ok(LeaseChange::Applied(l)) => l,
            other => panic!("{other:?}"),
        };
        let first = applied(block_on(renew(&q, &cell)));
        assert_eq!((first.tenure, first.seq, first.revoked), (1, 1, false));
        assert_eq!(applied(block_on(renew(&q, &cell))).seq, 2);
        // The promoter saw seq 1; the cell renewed since: it is alive, nothing is revoked.
        assert!(matches!(
            block_on(revoke(&q, &cell, 1)),
            Ok(LeaseChange::Refused {
                reason: LeaseRefusal::Renewed,
                ..
            })
        ));
        let revoked = applied(block_on(revoke(&q, &cell, 2)));
        assert!(revoked.revoked);
        // Sticky: the cell cannot renew, a second revocation has nothing to do.
        for refused in [block_on(renew(&q, &cell)), block_on(revoke(&q, &cell, 3))] {
            assert!(
                matches!(refused, Ok(LeaseChange::Refused { .. })),
                "{refused:?}"
            );
        }
        assert!(matches!(
            block_on(reinstate(&q, &cell, 9)),
            Ok(LeaseChange::Refused {
                reason: LeaseRefusal::NotApplicable,
                ..
            })
        ));
        let granted = applied(block_on(reinstate(&q, &cell, 1)));
        assert_eq!((granted.tenure, granted.revoked), (2, false));
        assert_eq!(applied(block_on(renew(&q, &cell))).tenure, 2);
    }

    #[test]
    fn a_foreign_record_in_a_lease_register_is_reported() {
        let (acceptors, q) = quorum();
        let cell = CellId::parse("aws-1").unwrap();
        let other = CellLease {
            cell: CellId::parse("azure-1").unwrap(),
            tenure: 1,
            seq: 1,
            revoked: false,
        };
        for a in &acceptors {
            block_on(a.accept(
                &lease_key(&cell),
                super::super::Ballot {
                    counter: 1,
                    proposer: 9,
                },
                &other.render(),
            ))
            .unwrap();
        }
        assert!(matches!(
            block_on(renew(&q, &cell)),
            Err(LeaseError::Malformed { detail, .. }) if detail.contains("azure-1")
        ));
    }
}
