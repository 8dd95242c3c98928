//! Cell health as the router sees it: passive outlier detection (consecutive transport failures eject
//! a cell for a growing interval) and active probes of `/health` (down after three failed probes, up
//! after one good one).
//!
//! Health never moves a tenant — a tenant has one cell, and moving it is the failover operation's job
//! — it only turns a dead cell into a fast `503 cell-unavailable` instead of a slow timeout. A cell's
//! own answers (its `503 store-unavailable`, say) never count against it: one tenant's throttled
//! partition must not eject a whole cell. And when over half the known cells look down, health is
//! ignored (Envoy's panic threshold): a broken prober or a shared network fault must not become a
//! global outage, and the last cell is never ejected.

use crate::time::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// When cells are ejected (Envoy's outlier-detection defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Consecutive transport failures (connect, reset, timeout, a platform gateway error) that eject
    /// a cell (default 5).
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times as long (default 30 s).
    pub base_ejection: Duration,
    /// The longest ejection (default 300 s).
    pub max_ejection: Duration,
    /// Consecutive failed probes that mark a cell down until a probe succeeds (default 3).
    pub failed_probes: u32,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            failed_probes: 3,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct CellState {
    consecutive: u32,
    ejections: u32,
    ejected_until: Option<i64>,
    failed_probes: u32,
}

impl CellState {
    fn down_for_millis(&self, policy: &OutlierPolicy, now: i64) -> Option<i64> {
        let ejected = self.ejected_until.filter(|until| *until > now);
        let probed_down = self.failed_probes >= policy.failed_probes;
        match (ejected, probed_down) {
            (Some(until), _) => Some(until - now),
            // Down until a probe succeeds: probes run every few seconds.
            (None, true) => Some(1000),
            (None, false) => None,
        }
    }
}

/// The health of every cell the router has talked to.
#[derive(Debug, Default)]
pub struct CellHealth {
    policy: OutlierPolicy,
    cells: Mutex<HashMap<String, CellState>>,
}

impl CellHealth {
    /// No cell known yet.
    pub fn new(policy: OutlierPolicy) -> Self {
        Self {
            policy,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request may go to `cell` now; `Err(seconds)` (at least 1) while it is down.
    ///
    /// ```
    /// use paracell_domain::edge::health::{CellHealth, OutlierPolicy};
    /// use paracell_domain::Timestamp;
    /// let health = CellHealth::new(OutlierPolicy::default());
    /// let now = Timestamp::from_unix_millis(0);
    /// health.success("cell-b");
    /// for _ in 0..5 { health.transport_failure("cell-a", now); }
    /// assert_eq!(health.admits("cell-a", now), Err(30));
    /// assert_eq!(health.admits("cell-b", now), Ok(()));
    /// assert_eq!(health.admits("cell-a", Timestamp::from_unix_millis(30_000)), Ok(()));
    /// ```
    pub fn admits(&self, cell: &str, now: Timestamp) -> Result<(), u64> {
        let now = now.unix_millis();
        let cells = self.lock();
        let Some(wait) = cells
            .get(cell)
            .and_then(|s| s.down_for_millis(&self.policy, now))
        else {
            return Ok(());
        };
        let down = cells
            .values()
            .filter(|s| s.down_for_millis(&self.policy, now).is_some())
            .count();
        if down * 2 > cells.len() {
            // Panic threshold: most cells look down, so health is what is broken. Forward.
            return Ok(());
        }
        Err(
            u64::try_from(wait.div_euclid(1000) + i64::from(wait % 1000 != 0))
                .unwrap_or(1)
                .max(1),
        )
    }

    /// The cell answered (anything, as long as the cell itself produced it).
    pub fn success(&self, cell: &str) {
        let mut cells = self.lock();
        let state = cells.entry(cell.to_owned()).or_default();
        state.consecutive = 0;
    }

    /// A transport failure: no connection, a broken exchange, a timeout, or a platform's gateway
    /// error in front of the cell.
    pub fn transport_failure(&self, cell: &str, now: Timestamp) {
        let mut cells = self.lock();
        let state = cells.entry(cell.to_owned()).or_default();
        state.consecutive += 1;
        if state.consecutive >= self.policy.consecutive_failures {
            state.consecutive = 0;
            state.ejections += 1;
            let length = self
                .policy
                .base_ejection
                .saturating_mul(state.ejections)
                .min(self.policy.max_ejection);
            state.ejected_until = Some(
                now.unix_millis()
                    .saturating_add(i64::try_from(length.as_millis()).unwrap_or(i64::MAX)),
            );
        }
    }

    /// The result of an active probe of the cell's `/health`.
    pub fn probed(&self, cell: &str, healthy: bool) {
        let mut cells = self.lock();
        let state = cells.entry(cell.to_owned()).or_default();
        if healthy {
            state.failed_probes = 0;
            // A good probe ends an ejection early and starts the growth over.
            state.ejected_until = None;
            state.ejections = 0;
        } else {
            state.failed_probes = state.failed_probes.saturating_add(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CellState>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }
}
