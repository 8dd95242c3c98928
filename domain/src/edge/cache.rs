//! The router's memory of routes: fresh for a bounded time, kept for as long as the registry cannot
//! be read (static stability: a registry outage of any length leaves every tenant already seen
//! routable), "no such tenant" remembered briefly, and epochs never lowered.
//!
//! Correctness does not rest on freshness: a route that is stale after a move reaches a cell that is
//! no longer the tenant's primary, which refuses the write (`421 tenant-moved`) and makes the router
//! refresh the entry ([`RouteCache::refresh`]).

use super::routes::{Route, RouteSource};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long answers from the registry are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// A route is used without asking the registry again for this long (default 30 s).
    pub fresh_for: Duration,
    /// "No such tenant" is remembered this long (default 5 s): a flood of unknown tenants does not
    /// reach the registry, and a newly placed tenant is routable within it.
    pub absent_for: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(30),
            absent_for: Duration::from_secs(5),
        }
    }
}

/// What the cache knows about a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Route here. `stale` when the registry could not be read and an older answer is served.
    Route {
        /// The route.
        route: Route,
        /// Served past its freshness because the registry could not be read.
        stale: bool,
    },
    /// The registry allocates the tenant to no cell.
    Absent,
    /// The registry could not be read and the tenant was never seen: nothing to route by.
    Unavailable(String),
}

#[derive(Debug, Clone)]
enum Known {
    Route(Route),
    Absent,
}

#[derive(Debug, Clone)]
struct Entry {
    known: Known,
    fetched_at: Timestamp,
}

/// The route cache. Cheap to share; every method takes `now` so hosts and tests control time.
#[derive(Debug, Default)]
pub struct RouteCache {
    policy: CachePolicy,
    entries: Mutex<HashMap<TenantId, Entry>>,
}

impl RouteCache {
    /// An empty cache.
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's route: from memory while fresh, else from `source`, else (the registry cannot
    /// be read) whatever was last known, however old.
    pub async fn lookup(
        &self,
        source: &dyn RouteSource,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Lookup {
        if let Some(entry) = self.held(tenant) {
            let age = now.unix_millis() - entry.fetched_at.unix_millis();
            let limit = match entry.known {
                Known::Route(_) => self.policy.fresh_for,
                Known::Absent => self.policy.absent_for,
            };
            if age >= 0 && (age as u128) < limit.as_millis() {
                return match entry.known {
                    Known::Route(route) => Lookup::Route {
                        route,
                        stale: false,
                    },
                    Known::Absent => Lookup::Absent,
                };
            }
        }
        self.refresh(source, tenant, now).await
    }

    /// Asks `source` now, whatever the cache holds (after a cell answered `421`). A registry that
    /// cannot be read leaves the entry as it was and serves it.
    pub async fn refresh(
        &self,
        source: &dyn RouteSource,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Lookup {
        let answer = source.route(tenant).await;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(Some(route)) => {
                // Never step back: a replica or a cache behind the authority may answer an older
                // placement after a newer one was seen.
                let route = match entries.get(tenant) {
                    Some(Entry {
                        known: Known::Route(held),
                        ..
                    }) if held.epoch > route.epoch => held.clone(),
                    _ => route,
                };
                entries.insert(
                    tenant.clone(),
                    Entry {
                        known: Known::Route(route.clone()),
                        fetched_at: now,
                    },
                );
                Lookup::Route {
                    route,
                    stale: false,
                }
            }
            Ok(None) => {
                // The registry's own answer: a tenant it no longer places stops being routed.
                entries.insert(
                    tenant.clone(),
                    Entry {
                        known: Known::Absent,
                        fetched_at: now,
                    },
                );
                Lookup::Absent
            }
            Err(e) => match entries.get(tenant) {
                Some(Entry {
                    known: Known::Route(route),
                    ..
                }) => Lookup::Route {
                    route: route.clone(),
                    stale: true,
                },
                Some(Entry {
                    known: Known::Absent,
                    ..
                }) => Lookup::Absent,
                None => Lookup::Unavailable(e.to_string()),
            },
        }
    }

    /// Every distinct route held (for active health probes).
    pub fn routes(&self) -> Vec<Route> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut routes: Vec<Route> = entries
            .values()
            .filter_map(|e| match &e.known {
                Known::Route(r) => Some(r.clone()),
                Known::Absent => None,
            })
            .collect();
        routes.sort_by(|a, b| (&a.cell, a.url.as_str()).cmp(&(&b.cell, b.url.as_str())));
        routes.dedup_by(|a, b| a.cell == b.cell && a.url == b.url);
        routes
    }

    fn held(&self, tenant: &TenantId) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(tenant).cloned()
    }
}
