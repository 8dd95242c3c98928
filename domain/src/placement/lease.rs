//! Primary leases: under leases, a primary books only while its lease holds, and renews it by asking
//! the placement registry (or its replica) whether it is still the tenant's primary at its epoch. The
//! lease is counted from the moment the question was asked, so a renewal can never outlive a change
//! of placement by more than one lease: an unplanned failover that changes the registry and then waits
//! one lease (plus clock skew and the longest invocation) can never leave two primaries. A primary
//! that learns another cell was promoted fences itself and answers `421` naming it.

use super::registry::{Placement, PlacementRegistry, PlacementReplica};
use super::{TenantHead, TenantRole};
use crate::ports::{Clock, CommitError, StoreError, TransactionStore};
use crate::tenancy::TenantId;
use std::sync::Arc;
use std::time::Duration;

/// Where a primary confirms its ownership.
#[derive(Clone)]
pub enum PlacementSource {
    /// The authority.
    Registry(Arc<dyn PlacementRegistry>),
    /// Its read replica (the Azure side; the failover writes the replica too before it waits).
    Replica(Arc<dyn PlacementReplica>),
}

impl PlacementSource {
    /// The tenant's placement as this source holds it.
    pub(crate) async fn get(&self, tenant: &TenantId) -> Result<Option<Placement>, StoreError> {
        match self {
            Self::Registry(r) => r.get(tenant).await,
            Self::Replica(r) => r.get(tenant).await,
        }
    }
}

/// A cell's lease settings.
#[derive(Clone)]
pub struct Ownership {
    /// Where ownership is confirmed.
    pub source: PlacementSource,
    /// How long a confirmation holds.
    pub ttl: Duration,
}

/// What a primary head turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Still the primary (its lease, possibly renewed, holds).
    Primary(TenantHead),
    /// Another cell was promoted: this one fenced itself (the head as now stored).
    Moved(TenantHead),
    /// The lease lapsed and could not be renewed: the cell must not book (`503`).
    Unconfirmed(TenantHead),
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Confirms that `head` (a primary) may book now. Reads the clock and the source only when a lease
/// is involved: a cell without leases and a head without one cost nothing here. `stored` says whether
/// the head exists in the store yet (a tenant's first write creates it with its commit, lease included).
pub async fn confirm(
    store: &dyn TransactionStore,
    head: TenantHead,
    stored: bool,
    ownership: Option<&Ownership>,
    clock: &dyn Clock,
) -> Result<Confirmed, StoreError> {
    let Some(ownership) = ownership else {
        // No leases configured: a lease left on the head still binds (it was granted under leases).
        return Ok(match head.lease_until {
            Some(until) if clock.now() >= until => Confirmed::Unconfirmed(head),
            _ => Confirmed::Primary(head),
        });
    };
    let ttl = millis(ownership.ttl);
    let asked_at = clock.now();
    if let Some(until) = head.lease_until
        && until.unix_millis() - asked_at.unix_millis() > ttl / 2
    {
        return Ok(Confirmed::Primary(head));
    }
    let still_valid = head.lease_until.is_some_and(|until| asked_at < until);
    let keep_or_refuse = |head: TenantHead| {
        if still_valid || head.lease_until.is_none() {
            Confirmed::Primary(head)
        } else {
            Confirmed::Unconfirmed(head)
        }
    };
    let placement = match ownership.source.get(&head.tenant).await {
        Ok(p) => p,
        // Unreachable: a head without a lease was never under one; one with a lease holds until it lapses.
        Err(_) if head.lease_until.is_none() => return Ok(Confirmed::Unconfirmed(head)),
        Err(_) => return Ok(keep_or_refuse(head)),
    };
    match placement {
        // Not registered: implicit placement, no lease regime for this tenant.
        None => Ok(Confirmed::Primary(head)),
        Some(p) if p.primary == head.primary && p.epoch == head.epoch => {
            let renewed = TenantHead {
                lease_until: Some(asked_at.plus_millis(ttl)),
                ..head.clone()
            };
            if !stored {
                return Ok(Confirmed::Primary(renewed));
            }
            match store.put_head(head.fence(), renewed.clone()).await {
                Ok(()) => Ok(Confirmed::Primary(renewed)),
                // Another request renewed it, or the head moved: decide on what is stored now.
                Err(CommitError::HeadMoved) => match store.head(&head.tenant).await? {
                    Some(now) if now.role == TenantRole::Primary && now.lease_until.is_some() => {
                        Ok(keep_or_refuse(now))
                    }
                    Some(now) if now.role == TenantRole::Primary => Ok(Confirmed::Unconfirmed(now)),
                    Some(now) => Ok(Confirmed::Moved(now)),
                    None => Ok(Confirmed::Unconfirmed(head)),
                },
                Err(CommitError::Store(e)) => Err(e),
                Err(other) => Err(StoreError::Failed(other.to_string())),
            }
        }
        // Never held here and registered elsewhere: not this cell's to create.
        Some(p) if !stored && p.primary != head.primary => {
            Ok(Confirmed::Moved(head.fenced_for(&p.primary, p.epoch)))
        }
        Some(p) if p.epoch > head.epoch && p.primary != head.primary => {
            // Promoted elsewhere: fence this cell, so it answers 421 naming the new primary.
            let fenced = head.fenced_for(&p.primary, p.epoch);
            match store.put_head(head.fence(), fenced.clone()).await {
                Ok(()) => Ok(Confirmed::Moved(fenced)),
                Err(CommitError::HeadMoved) => match store.head(&head.tenant).await? {
                    Some(now) if now.role != TenantRole::Primary => Ok(Confirmed::Moved(now)),
                    Some(now) => Ok(Confirmed::Unconfirmed(now)),
                    None => Ok(Confirmed::Unconfirmed(head)),
                },
                Err(CommitError::Store(e)) => Err(e),
                Err(other) => Err(StoreError::Failed(other.to_string())),
            }
        }
        // The registry is mid-change (a migration names this cell at the same epoch, say): keep
        // what holds, renew later.
        Some(_) => Ok(keep_or_refuse(head)),
    }
}
