//! The standby's use case: receive entries from a primary, hold the ones that arrive early, apply
//! each exactly once and in order, and say what happened to every one.
//!
//! Receiving stores the entry (if its position is free) before anything is applied, so delivery may
//! duplicate and reorder freely: applying is always "the entry right after my head, if I have it",
//! repeated until the next one is missing. The result is a function of the entries received, never
//! of the order they came in.

use super::batch::{EntryResult, Incoming, Outcome};
use super::{Digest, Effect, SealedEntry};
use crate::config::CellConfig;
use crate::ledger;
use crate::placement::lease::PlacementSource;
use crate::placement::{Fence, TenantHead, TenantRole};
use crate::ports::{
    BalanceUpdate, Commit, CommitError, EntrySource, LedgerWrite, ReadStamps, Received, StoreError,
    TransactionStore,
};
use crate::tenancy::{CellId, TenantId};
use rust_decimal::Decimal;
use std::collections::BTreeSet;

/// How many entries one delivery may apply for a tenant (a delivery that fills a gap applies the
/// held entries behind it too). A bound, not a limit anyone should meet.
const MAX_DRAIN: usize = 100_000;

/// How many times applying one entry is retried when another delivery moved the head at the same
/// moment.
const MAX_APPLY_ROUNDS: usize = 16;

/// Receives a delivery's entries and applies what can be applied. Results come in the order of
/// `incoming`, followed by results for held entries the delivery unblocked or found diverged.
///
/// `sender` is the peer whose secret verified the delivery. An entry is taken only from the cell
/// that committed it ([`Entry::origin`](super::Entry::origin)), and only while that cell is the
/// tenant's primary at the entry's epoch: as this cell's head records it, or — for an epoch this
/// cell has not followed yet — as `placement` (the placement authority, when the cell has one)
/// says. Anything else is `refused` with the reason and writes nothing: a peer's secret lets it
/// deliver its own entries, never another cell's, and never for a tenant it does not hold.
///
/// `Err` only when the store failed: nothing may be assumed about the delivery then, and the sender
/// retries it (every step is idempotent).
pub async fn receive(
    config: &CellConfig,
    store: &dyn TransactionStore,
    sender: &CellId,
    placement: Option<&PlacementSource>,
    incoming: Vec<Incoming>,
) -> Result<Vec<EntryResult>, StoreError> {
    let mut results = Vec::with_capacity(incoming.len());
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut extra = Vec::new();
    for item in incoming {
        let entry = match item {
            Ok(entry) => entry,
            Err(unreadable) => {
                results.push(EntryResult {
                    id: unreadable.id,
                    tenant: None,
                    seq: None,
                    outcome: Outcome::Refused,
                    detail: Some(unreadable.reason),
                });
                continue;
            }
        };
        // One read of the tenant's head serves both the admission check and the receipt.
        let head = store.head(entry.tenant()).await?;
        let (result, drained) = match admissible(sender, placement, &entry, head.as_ref()).await {
            Ok(()) => receive_one(config, store, &entry, head).await?,
            Err(reason) => (
                EntryResult::of(&entry, Outcome::Refused, Some(reason)),
                Vec::new(),
            ),
        };
        log_received(config, &entry, &result);
        reported.insert(result.id.clone());
        results.push(result);
        extra.extend(drained);
    }
    for result in extra {
        if reported.insert(result.id.clone()) {
            results.push(result);
        }
    }
    Ok(results)
}

/// One log event per entry received, with the trace id the entry carries (the trace of the request
/// that committed it on the primary): the standby's end of that trace.
fn log_received(config: &CellConfig, entry: &SealedEntry, result: &EntryResult) {
    let cell = config.cell_id.as_str();
    let trace_id = entry.entry().trace_id();
    let trace_id = trace_id.as_str();
    let tenant = entry.tenant().as_str();
    let seq = entry.seq();
    let outcome = result.outcome.as_str();
    match result.outcome {
        Outcome::Diverged | Outcome::Refused => tracing::error!(
            trace_id,
            cell,
            tenant,
            seq,
            outcome,
            cause = result.detail.as_deref().unwrap_or("-"),
            "replication received"
        ),
        _ => tracing::info!(trace_id, cell, tenant, seq, outcome, "replication received"),
    }
}

/// Whether `sender` may deliver `entry` here: it must be the entry's origin, and the tenant's primary
/// at the entry's epoch (`head`: this cell's head of the tenant). `Err(reason)` refuses the entry.
async fn admissible(
    sender: &CellId,
    placement: Option<&PlacementSource>,
    entry: &SealedEntry,
    head: Option<&TenantHead>,
) -> Result<(), String> {
    let e = entry.entry();
    let tenant = entry.tenant();
    if &e.origin != sender {
        return Err(format!(
            "entry {} of tenant {tenant} was committed by {}, but delivered by peer {sender}: a peer delivers only its own entries",
            e.seq, e.origin
        ));
    }
    if let Some(h) = head {
        // Entries of older epochs are judged by the chain (stale, duplicate or diverged) below.
        if e.epoch == h.epoch && e.origin != h.primary {
            return Err(format!(
                "tenant {tenant}'s primary at epoch {} is {}, not {}",
                h.epoch, h.primary, e.origin
            ));
        }
        if e.epoch <= h.epoch {
            return Ok(());
        }
    }
    // A new epoch (or a tenant this cell never held): the authority, when there is one, must name the
    // origin as primary at exactly that epoch.
    let Some(source) = placement else {
        return Ok(());
    };
    let registered = match source.get(tenant).await {
        Ok(p) => p,
        // Unknown now: refuse, the relay delivers it again (or dead-letters it, never silently).
        Err(e) => {
            return Err(format!(
                "the placement authority could not be read to check epoch {} of tenant {tenant}: {e}",
                entry.entry().epoch
            ));
        }
    };
    match registered {
        // Not registered: implicit placement, the cell that books is the primary.
        None => Ok(()),
        Some(p) if p.epoch == e.epoch && p.primary == e.origin => Ok(()),
        Some(p) => Err(format!(
            "the placement authority names {} as tenant {tenant}'s primary at epoch {}, not {} at epoch {}",
            p.primary, p.epoch, e.origin, e.epoch
        )),
    }
}

async fn receive_one(
    config: &CellConfig,
    store: &dyn TransactionStore,
    entry: &SealedEntry,
    head: Option<TenantHead>,
) -> Result<(EntryResult, Vec<EntryResult>), StoreError> {
    let tenant = entry.tenant();
    let e = entry.entry();
    let done =
        |outcome, detail: Option<String>| Ok((EntryResult::of(entry, outcome, detail), vec![]));
    if !config.tenants.serves(tenant) {
        return done(
            Outcome::Refused,
            Some(format!(
                "cell {} may not hold tenant {tenant} (PARACELL_TENANTS)",
                config.cell_id
            )),
        );
    }
    if let Some(h) = &head {
        match h.role {
            TenantRole::Primary | TenantRole::Frozen => {
                let ours = store.entry(tenant, e.seq).await?;
                return if ours.is_some_and(|o| o.digest() == entry.digest()) {
                    done(Outcome::Duplicate, None)
                } else {
                    done(
                        Outcome::Refused,
                        Some(format!(
                            "cell {} is the primary of tenant {tenant} (epoch {})",
                            config.cell_id, h.epoch
                        )),
                    )
                };
            }
            TenantRole::Fenced => {
                return done(
                    Outcome::Refused,
                    Some(format!(
                        "cell {} is fenced for tenant {tenant}: it must be reseeded before it follows again",
                        config.cell_id
                    )),
                );
            }
            TenantRole::Standby => {}
        }
        if e.epoch < h.epoch && e.seq > h.epoch_start {
            return done(
                Outcome::Stale,
                Some(format!(
                    "epoch {} ended at entry {}; this cell follows epoch {}",
                    e.epoch, h.epoch_start, h.epoch
                )),
            );
        }
    }
    match store.receive(entry).await? {
        Received::Existing(digest) if digest != entry.digest() => {
            return done(
                Outcome::Diverged,
                Some(format!(
                    "entry {} of tenant {tenant} already holds another entry (digest {digest})",
                    e.seq
                )),
            );
        }
        Received::Existing(_) if head.as_ref().is_some_and(|h| h.position.seq >= e.seq) => {
            return done(Outcome::Duplicate, None);
        }
        Received::Existing(_) | Received::Stored => {}
    }
    let drained = drain(store, tenant).await?;
    let mine = drained.iter().find(|r| r.id == entry.digest().to_string());
    let result = match mine {
        Some(r) => r.clone(),
        None => {
            let at = store.head(tenant).await?.map_or(0, |h| h.position.seq);
            if at >= e.seq {
                EntryResult::of(entry, Outcome::Duplicate, None)
            } else {
                EntryResult::of(
                    entry,
                    Outcome::Held,
                    Some(format!("waiting for entry {}", at + 1)),
                )
            }
        }
    };
    Ok((result, drained))
}

/// Applies the tenant's received entries in order from its head until the next one is missing or
/// cannot be applied. Returns what happened to each entry it looked at.
async fn drain(
    store: &dyn TransactionStore,
    tenant: &TenantId,
) -> Result<Vec<EntryResult>, StoreError> {
    let mut results = Vec::new();
    let mut rounds = 0;
    while results.len() < MAX_DRAIN {
        let head = store.head(tenant).await?;
        let next = head.as_ref().map_or(1, |h| h.position.seq + 1);
        let Some(entry) = store.entry(tenant, next).await? else {
            break;
        };
        match apply_next(store, head.as_ref(), &entry).await? {
            Step::Applied => {
                rounds = 0;
                results.push(EntryResult::of(&entry, Outcome::Applied, None));
            }
            Step::Raced if rounds < MAX_APPLY_ROUNDS => rounds += 1,
            Step::Raced => {
                return Err(StoreError::Unavailable {
                    retry_after_secs: 1,
                    detail: format!("tenant {tenant}'s head still contended applying entry {next}"),
                });
            }
            Step::Refused(outcome, detail) => {
                results.push(EntryResult::of(&entry, outcome, Some(detail)));
                break;
            }
        }
    }
    Ok(results)
}

enum Step {
    Applied,
    /// Another delivery moved the head meanwhile: read it again.
    Raced,
    Refused(Outcome, String),
}

/// Applies `entry`, the one right after `head`, in one atomic commit.
async fn apply_next(
    store: &dyn TransactionStore,
    head: Option<&TenantHead>,
    sealed: &SealedEntry,
) -> Result<Step, StoreError> {
    let entry = sealed.entry();
    let diverged = |detail: String| Ok(Step::Refused(Outcome::Diverged, detail));
    let expected_prev = head.map_or(Digest::ZERO, |h| h.position.digest);
    if entry.prev != expected_prev {
        return diverged(format!(
            "entry {} follows digest {}, but this cell's entry {} has digest {expected_prev}",
            entry.seq,
            entry.prev,
            entry.seq - 1
        ));
    }
    if let Some(h) = head
        && entry.epoch < h.epoch
        && entry.seq > h.epoch_start
    {
        return Ok(Step::Refused(
            Outcome::Stale,
            format!("epoch {} ended at entry {}", entry.epoch, h.epoch_start),
        ));
    }
    let ledger = match &entry.effect {
        Effect::Refused => None,
        Effect::Accepted {
            balance_version, ..
        } => {
            let tx = match entry.transaction() {
                Ok(Some(tx)) => tx,
                Ok(None) => return diverged("an accepted entry without a transaction".into()),
                Err(e) => return diverged(e.to_string()),
            };
            if tx.tenant_id != entry.tenant {
                return diverged("the entry's transaction belongs to another tenant".into());
            }
            let current = store
                .balance(&entry.tenant, &tx.account_id, tx.currency)
                .await?;
            let (available, version) =
                current.map_or((Decimal::ZERO, 0), |b| (b.available, b.version));
            if *balance_version != version + 1 {
                return diverged(format!(
                    "the entry moves balance {}/{} to version {balance_version}, but this cell holds version {version}",
                    tx.account_id, tx.currency
                ));
            }
            if ledger::apply(available, tx.kind, tx.amount) != Ok(tx.balance_after) {
                return diverged(format!(
                    "applying the entry to this cell's balance of {} {} does not give its balance_after {}",
                    available, tx.currency, tx.balance_after
                ));
            }
            Some(LedgerWrite {
                balance: BalanceUpdate {
                    tenant_id: entry.tenant.clone(),
                    account_id: tx.account_id.clone(),
                    currency: tx.currency,
                    available: tx.balance_after,
                    expected_version: version,
                },
                transaction: tx,
            })
        }
    };
    let (fence, epoch, epoch_start) = match head {
        None => (Fence::Absent, entry.epoch, entry.seq - 1),
        Some(h) if entry.epoch > h.epoch => (h.fence(), entry.epoch, entry.seq - 1),
        Some(h) => (h.fence(), h.epoch, h.epoch_start),
    };
    let commit = Commit {
        fence,
        head: TenantHead {
            tenant: entry.tenant.clone(),
            role: TenantRole::Standby,
            epoch,
            primary: entry.origin.clone(),
            position: sealed.position(),
            epoch_start,
            lease_until: None,
        },
        entry: sealed.clone(),
        source: EntrySource::Received,
        ledger,
        stamps: ReadStamps::default(),
    };
    match store.commit(commit).await {
        Ok(()) => Ok(Step::Applied),
        Err(CommitError::HeadMoved) => Ok(Step::Raced),
        Err(CommitError::KeyConflict) => diverged(format!(
            "idempotency key {:?} already has an outcome on this cell",
            entry.key.as_str()
        )),
        Err(CommitError::DuplicateTransaction) => {
            diverged("the entry's transaction id already exists on this cell".into())
        }
        Err(CommitError::BalanceConflict) => {
            diverged("the balance changed while the entry was applied".into())
        }
        Err(CommitError::Store(e)) => Err(e),
    }
}
