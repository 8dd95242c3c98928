//! Cells checked against each other (`paracell-admin verify TENANT`): does each standby hold what
//! its primary holds, and does each cell's state follow from its own log?
//!
//! Two checks, both safe to run while the tenant keeps writing:
//!
//! 1. **The chains agree** at the standby's position `p`: the primary's entry `p` has the digest the
//!    standby's head carries. Entries chain by digest, so equal digests at `p` mean equal logs
//!    `1..=p`, byte for byte. A standby ahead of its primary, or on another chain, has diverged.
//! 2. **Each cell's state is its log's**, so that a bug that applied an entry wrongly is caught even
//!    where the chains match: walking the log `1..=head`, each link is checked (gapless sequence,
//!    `prev` = the previous digest), each accepted entry must move its (account, currency) balance
//!    to the next version and to `balance_after` by the ledger's own rule ([`crate::ledger::apply`]),
//!    and each entry's idempotency record must be there with the entry's fingerprint and response.
//!    Then the stored balances must equal the log's at their versions (a balance stored past the
//!    walked head — the primary kept writing — makes the walk go further, a few times at most).
//!
//! Each cell also gets a **checksum** of its state at its head (SHA-256 over the balances and the
//! idempotency records, canonically ordered), computed from what it stores: two cells at the same
//! position that agree have the same checksum — what an operator compares by eye, and what a
//! periodic verification can publish.

use crate::contract::json;
use crate::idempotency::IdempotencyRecord;
use crate::ledger;
use crate::placement::migrate::CellHandle;
use crate::ports::StoreError;
use crate::replication::{Digest, Effect, SealedEntry};
use crate::tenancy::{CellId, TenantId};
use crate::transaction::AccountId;
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// Entries read per page.
const PAGE: usize = 500;

/// How many times the walk follows a primary that kept writing before it reports the cell as
/// unsettled.
const FOLLOW: usize = 5;

/// What differs, the first item found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The standby's head names an entry its primary does not have at that position.
    Chain {
        /// The position.
        seq: u64,
        /// The primary's digest there (`None`: it has no entry there — the standby is ahead).
        primary: Option<Digest>,
        /// The standby's.
        standby: Digest,
    },
    /// The cell's own log is broken (a gap, a link that does not chain, an unreadable entry).
    Log {
        /// Where.
        seq: u64,
        /// What.
        detail: String,
    },
    /// A balance the cell stores is not what its log says.
    Balance {
        /// The account.
        account: String,
        /// The currency.
        currency: String,
        /// What the cell stores (`available` at `version`).
        stored: String,
        /// What its log says at that version (or its last version).
        log: String,
    },
    /// An idempotency record is missing or is not its entry's.
    Record {
        /// The key.
        key: String,
        /// What differs.
        detail: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Chain {
                seq,
                primary: Some(p),
                standby,
            } => write!(
                f,
                "entry {seq}: the primary's digest is {p}, the standby's {standby}"
            ),
            Self::Chain {
                seq,
                primary: None,
                standby,
            } => write!(
                f,
                "entry {seq} (digest {standby}) is on the standby, not on the primary: the standby is ahead"
            ),
            Self::Log { seq, detail } => write!(f, "log at entry {seq}: {detail}"),
            Self::Balance {
                account,
                currency,
                stored,
                log,
            } => write!(
                f,
                "balance {account} {currency}: stored {stored}, the log says {log}"
            ),
            Self::Record { key, detail } => write!(f, "idempotency record {key:?}: {detail}"),
        }
    }
}

/// One cell, audited against its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellAudit {
    /// The cell.
    pub cell: CellId,
    /// Its head position when the audit ended, every entry up to it walked (0: it holds nothing of
    /// the tenant).
    pub seq: u64,
    /// Its head digest.
    pub digest: Digest,
    /// Balances compared.
    pub balances: usize,
    /// Idempotency records compared.
    pub records: usize,
    /// SHA-256 (hex) of its balances and idempotency records at `seq`.
    pub checksum: String,
    /// The first difference between its state and its log, if any.
    pub difference: Option<Difference>,
    /// The cell kept writing faster than the audit could follow: nothing found, nothing proven.
    pub unsettled: bool,
}

/// A standby compared with its primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyVerdict {
    /// The standby's own audit.
    pub audit: CellAudit,
    /// Where the chains were compared (the standby's position).
    pub compared_at: u64,
    /// The first difference between the chains, if any.
    pub chain: Option<Difference>,
}

impl StandbyVerdict {
    /// Whether this standby agrees with its primary (and with its own log).
    pub fn agrees(&self) -> bool {
        self.chain.is_none() && self.audit.difference.is_none() && !self.audit.unsettled
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The tenant.
    pub tenant: TenantId,
    /// The primary's audit.
    pub primary: CellAudit,
    /// Each standby's verdict.
    pub standbys: Vec<StandbyVerdict>,
}

impl Verification {
    /// Every cell agrees with its log, and every standby with the primary.
    pub fn agrees(&self) -> bool {
        self.primary.difference.is_none()
            && !self.primary.unsettled
            && self.standbys.iter().all(StandbyVerdict::agrees)
    }

    /// The first difference found anywhere, with the cell it was found on.
    pub fn first_difference(&self) -> Option<(&CellId, &Difference)> {
        std::iter::once((&self.primary.cell, self.primary.difference.as_ref()))
            .chain(self.standbys.iter().flat_map(|s| {
                [
                    (&s.audit.cell, s.chain.as_ref()),
                    (&s.audit.cell, s.audit.difference.as_ref()),
                ]
            }))
            .find_map(|(cell, d)| d.map(|d| (cell, d)))
    }
}

/// Compares `tenant` on `primary` and each of `standbys` (see the module).
pub async fn verify(
    tenant: &TenantId,
    primary: &CellHandle,
    standbys: &[CellHandle],
) -> Result<Verification, StoreError> {
    let mut verdicts = Vec::new();
    for standby in standbys {
        let audit = audit(tenant, standby).await?;
        let chain = if audit.seq == 0 {
            None
        } else {
            match primary.store.entry(tenant, audit.seq).await? {
                Some(e) if e.digest() == audit.digest => None,
                other => Some(Difference::Chain {
                    seq: audit.seq,
                    primary: other.map(|e| e.digest()),
                    standby: audit.digest,
                }),
            }
        };
        verdicts.push(StandbyVerdict {
            compared_at: audit.seq,
            audit,
            chain,
        });
    }
    Ok(Verification {
        tenant: tenant.clone(),
        primary: audit(tenant, primary).await?,
        standbys: verdicts,
    })
}

/// The log's state, folded entry by entry.
struct Fold {
    seq: u64,
    digest: Digest,
    /// (account, currency) → (available, version) after each version, newest last.
    balances: BTreeMap<(String, String), Vec<(Decimal, u64)>>,
    /// key → (status, SHA-256 of the body), for the checksum.
    records: BTreeMap<String, (u16, String)>,
    records_checked: usize,
    difference: Option<Difference>,
}

impl Default for Fold {
    fn default() -> Self {
        Self {
            seq: 0,
            digest: Digest::ZERO,
            balances: BTreeMap::new(),
            records: BTreeMap::new(),
            records_checked: 0,
            difference: None,
        }
    }
}

impl Fold {
    /// Takes one entry, or records the first difference and stops taking.
    async fn take(&mut self, cell: &CellHandle, sealed: &SealedEntry) -> Result<(), StoreError> {
        let entry = sealed.entry();
        let fault = |detail: String| Difference::Log {
            seq: entry.seq,
            detail,
        };
        if entry.seq != self.seq + 1 || entry.prev != self.digest {
            self.difference = Some(fault(format!(
                "expected entry {} after {} (digest {}), found entry {} chained to {}",
                self.seq + 1,
                self.seq,
                self.digest,
                entry.seq,
                entry.prev
            )));
            return Ok(());
        }
        if let Effect::Accepted {
            balance_version, ..
        } = &entry.effect
        {
            let tx = match entry.transaction() {
                Ok(Some(tx)) => tx,
                Ok(None) | Err(_) => {
                    self.difference =
                        Some(fault("an accepted entry without its transaction".into()));
                    return Ok(());
                }
            };
            let history = self
                .balances
                .entry((tx.account_id.to_string(), tx.currency.code().to_owned()))
                .or_default();
            let (available, version) = history.last().copied().unwrap_or((Decimal::ZERO, 0));
            if *balance_version != version + 1
                || ledger::apply(available, tx.kind, tx.amount) != Ok(tx.balance_after)
            {
                self.difference = Some(fault(format!(
                    "moves {} {} from {available} (version {version}) to {} (version {balance_version}) by {} {}",
                    tx.account_id,
                    tx.currency,
                    tx.balance_after,
                    tx.kind.as_str(),
                    tx.amount
                )));
                return Ok(());
            }
            history.push((tx.balance_after, *balance_version));
        }
        let stored = cell
            .store
            .idempotency_record(&entry.tenant, &entry.key)
            .await?;
        self.records_checked += 1;
        match stored {
            Some(IdempotencyRecord {
                fingerprint,
                response,
                ..
            }) if fingerprint == entry.fingerprint && response == entry.response => {}
            other => {
                self.difference = Some(Difference::Record {
                    key: entry.key.as_str().to_owned(),
                    detail: match other {
                        None => format!("missing (entry {})", entry.seq),
                        Some(r) if r.fingerprint != entry.fingerprint => {
                            format!("another request's (entry {})", entry.seq)
                        }
                        Some(r) => format!(
                            "stored status {} with {} body bytes, entry {} says {} with {}",
                            r.response.status,
                            r.response.body.len(),
                            entry.seq,
                            entry.response.status,
                            entry.response.body.len()
                        ),
                    },
                });
                return Ok(());
            }
        }
        self.records.insert(
            entry.key.as_str().to_owned(),
            (
                entry.response.status,
                hex(&Sha256::digest(&entry.response.body)),
            ),
        );
        self.seq = entry.seq;
        self.digest = sealed.digest();
        Ok(())
    }

    /// Walks the cell's log from where the fold stands to `until`.
    async fn walk(
        &mut self,
        cell: &CellHandle,
        tenant: &TenantId,
        until: u64,
    ) -> Result<(), StoreError> {
        while self.seq < until && self.difference.is_none() {
            let page = cell.store.entries_after(tenant, self.seq, PAGE).await?;
            if page.is_empty() {
                self.difference = Some(Difference::Log {
                    seq: self.seq + 1,
                    detail: format!("the head is at {until}, the log ends at {}", self.seq),
                });
                break;
            }
            for sealed in page.iter().take_while(|e| e.seq() <= until) {
                self.take(cell, sealed).await?;
                if self.difference.is_some() {
                    break;
                }
            }
            if page.last().is_some_and(|e| e.seq() >= until) {
                break;
            }
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cell against its own log (see the module).
async fn audit(tenant: &TenantId, cell: &CellHandle) -> Result<CellAudit, StoreError> {
    let mut fold = Fold::default();
    let mut stored = BTreeMap::new();
    let mut unsettled = true;
    for _ in 0..FOLLOW {
        let head = cell.store.head(tenant).await?;
        let until = head.as_ref().map_or(0, |h| h.position.seq);
        fold.walk(cell, tenant, until).await?;
        if fold.difference.is_some() {
            unsettled = false;
            break;
        }
        if let Some(h) = &head
            && h.position.digest != fold.digest
        {
            fold.difference = Some(Difference::Log {
                seq: until,
                detail: format!(
                    "the head names digest {}, the log's entry has {}",
                    h.position.digest, fold.digest
                ),
            });
            unsettled = false;
            break;
        }
        stored = stored_balances(cell, tenant, &fold).await?;
        // A balance stored past the walked head: the cell kept writing — walk further.
        let ahead = stored.iter().any(|(k, (_, version))| {
            fold.balances
                .get(k)
                .and_then(|h| h.last())
                .is_some_and(|(_, v)| version > v)
        });
        if !ahead {
            unsettled = false;
            break;
        }
    }
    if fold.difference.is_none() && !unsettled {
        fold.difference = compare_balances(&fold, &stored);
    }
    let mut hasher = Sha256::new();
    for ((account, currency), (available, version)) in &stored {
        hasher.update(format!("b {account} {currency} {available} {version}\n"));
    }
    for (key, (status, body)) in &fold.records {
        let mut quoted = String::new();
        json::push_str(&mut quoted, key);
        hasher.update(format!("r {quoted} {status} {body}\n"));
    }
    Ok(CellAudit {
        cell: cell.id.clone(),
        seq: fold.seq,
        digest: fold.digest,
        balances: stored.len(),
        records: fold.records_checked,
        checksum: hex(&hasher.finalize()),
        difference: fold.difference,
        unsettled,
    })
}

/// Every balance the cell stores for the accounts its log names.
async fn stored_balances(
    cell: &CellHandle,
    tenant: &TenantId,
    fold: &Fold,
) -> Result<BTreeMap<(String, String), (Decimal, u64)>, StoreError> {
    let mut stored = BTreeMap::new();
    let accounts: std::collections::BTreeSet<&String> =
        fold.balances.keys().map(|(a, _)| a).collect();
    for account in accounts {
        let Ok(id) = AccountId::parse(account) else {
            continue;
        };
        for b in cell.store.balances(tenant, &id).await? {
            stored.insert(
                (account.clone(), b.currency.code().to_owned()),
                (b.available, b.version),
            );
        }
    }
    Ok(stored)
}

/// The first stored balance that is not the log's at its version (or that no entry of the log
/// ever moved).
fn compare_balances(
    fold: &Fold,
    stored: &BTreeMap<(String, String), (Decimal, u64)>,
) -> Option<Difference> {
    if let Some(((account, currency), (a, v))) =
        stored.iter().find(|(k, _)| !fold.balances.contains_key(*k))
    {
        return Some(Difference::Balance {
            account: account.clone(),
            currency: currency.clone(),
            stored: format!("{a} (version {v})"),
            log: "no entry moves it".to_owned(),
        });
    }
    for ((account, currency), history) in &fold.balances {
        let log = history.last().copied().unwrap_or((Decimal::ZERO, 0));
        let found = stored.get(&(account.clone(), currency.clone())).copied();
        if found != Some(log) {
            return Some(Difference::Balance {
                account: account.clone(),
                currency: currency.clone(),
                stored: found.map_or_else(
                    || "nothing".to_owned(),
                    |(a, v)| format!("{a} (version {v})"),
                ),
                log: format!("{} (version {})", log.0, log.1),
            });
        }
    }
    None
}
