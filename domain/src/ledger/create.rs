//! The create use case: book a validated command under an idempotency key, or replay the key's first
//! outcome. It returns domain results; [`crate::contract::seam`] turns them into responses.

use crate::config::CellConfig;
use crate::contract::seam;
use crate::events::TransactionAccepted;
use crate::idempotency::{IdempotencyKey, KeyState, StoredResponse};
use crate::ledger::{self, LedgerError};
use crate::observability::trace::TraceContext;
use crate::placement::lease::{self, Confirmed, Ownership};
use crate::placement::{Fence, TenantHead, TenantRole};
use crate::ports::{
    BalanceUpdate, ClaimOutcome, Commit, CommitError, EntrySource, KeyClaim, KeyGuard, LedgerWrite,
    StoreError,
};
use crate::replication::{Effect, Entry, SealedEntry};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{NewTransaction, Transaction, TransactionId, TransactionStatus};
use crate::{Amount, CellPorts, Currency};
use rust_decimal::Decimal;

/// How long an in-progress idempotency claim is honoured before another request may take it over
/// (the holder is presumed dead). Far longer than any single create takes.
pub const CLAIM_LEASE_MILLIS: i64 = 30_000;

/// How many times a create re-reads the balance after losing an optimistic-concurrency race before
/// giving up with [`StoreError::Unavailable`].
pub const MAX_BALANCE_ATTEMPTS: usize = 64;

/// A validated create request: who, under which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCommand {
    /// The tenant (already checked to be served by this cell).
    pub tenant: TenantId,
    /// The client's idempotency key.
    pub key: IdempotencyKey,
    /// The validated transaction.
    pub command: NewTransaction,
    /// The epoch the request was routed by (`Paracell-Expected-Epoch`), if any.
    pub expected_epoch: Option<u64>,
    /// The request's trace: carried by the entry and the event it commits.
    pub trace: TraceContext,
}

/// A debit the ledger refused: more than the available balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientFunds {
    /// The debit.
    pub amount: Amount,
    /// The account.
    pub account_id: crate::AccountId,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Booked now. `response` is what was stored for replays (the 201).
    Booked {
        /// The booked transaction.
        transaction: Box<Transaction>,
        /// The response remembered for this key.
        response: StoredResponse,
    },
    /// Refused by the ledger now, and remembered for replays like a success.
    Refused {
        /// Why.
        refusal: InsufficientFunds,
        /// The response remembered for this key.
        response: StoredResponse,
    },
    /// The key's first outcome, replayed.
    Replayed(StoredResponse),
}

impl Created {
    /// The response this outcome answers with (before the replay marker).
    pub fn stored(&self) -> &StoredResponse {
        match self {
            Self::Booked { response, .. }
            | Self::Refused { response, .. }
            | Self::Replayed(response) => response,
        }
    }
}

/// Why a create produced no outcome. Nothing is remembered for the key in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The key was used before with a different payload.
    #[error("the idempotency key was used with a different payload")]
    KeyReused,
    /// Another request holds the key.
    #[error("another request holds the idempotency key")]
    KeyInUse,
    /// A credit would take the balance past the largest representable amount.
    #[error("the balance would exceed the largest representable amount")]
    Overflow,
    /// This cell is not the tenant's primary (its head says what it is and who is).
    #[error("this cell is {} for the tenant, not its primary", .0.role)]
    NotPrimary(Box<TenantHead>),
    /// This cell's lease on the tenant lapsed and could not be renewed: it may no longer be the
    /// primary, so it books nothing until it knows.
    #[error("the lease on the tenant lapsed and could not be renewed")]
    OwnershipUnconfirmed(Box<TenantHead>),
    /// The request was routed by another epoch than this cell's placement of the tenant.
    #[error("routed by epoch {expected}, the tenant's placement here is at epoch {}", head.epoch)]
    StaleEpoch {
        /// The epoch the request carried.
        expected: u64,
        /// This cell's head.
        head: Box<TenantHead>,
    },
    /// The store failed or is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Books `request` on `ports`: claims the key, books the transaction (or records the refusal), and
/// frees the key when nothing could be written.
pub async fn create(
    config: &CellConfig,
    ports: &CellPorts,
    ownership: Option<&Ownership>,
    request: CreateCommand,
) -> Attempt {
    let mut key_not_released = None;
    let outcome = claim_and_book(config, ports, ownership, request, &mut key_not_released).await;
    Attempt {
        outcome,
        key_not_released,
    }
}

async fn claim_and_book(
    config: &CellConfig,
    ports: &CellPorts,
    ownership: Option<&Ownership>,
    request: CreateCommand,
    key_not_released: &mut Option<StoreError>,
) -> Result<Created, CreateError> {
    let CreateCommand {
        tenant,
        key,
        command,
        expected_epoch,
        trace,
    } = request;
    // Only the tenant's primary books. Checked here to refuse early (no key is claimed on a standby),
    // and again inside the commit, which is what makes it safe.
    let head = current_head(config, ports, ownership, &tenant, expected_epoch).await?;
    let fingerprint = command.fingerprint();
    let token = TransactionId::from_uuid(ports.ids.next_id());
    let now = ports.clock.now();
    let claim = KeyClaim {
        tenant_id: tenant.clone(),
        key: key.clone(),
        fingerprint: fingerprint.clone(),
        token,
        now,
        stale_before: now.plus_millis(-CLAIM_LEASE_MILLIS),
    };
    match ports.store.claim_key(claim).await? {
        ClaimOutcome::Claimed => {}
        ClaimOutcome::Existing(record) if record.fingerprint != fingerprint => {
            return Err(CreateError::KeyReused);
        }
        ClaimOutcome::Existing(record) => {
            return match record.state {
                KeyState::Completed(stored) => Ok(Created::Replayed(stored)),
                KeyState::InProgress { .. } => Err(CreateError::KeyInUse),
            };
        }
    }
    let booking = Booking {
        ownership,
        expected_epoch,
        config,
        ports,
        tenant: &tenant,
        key: &key,
        fingerprint: &fingerprint,
        token,
        now,
        trace: &trace,
    };
    let outcome = booking.book(command, head).await;
    if matches!(
        outcome,
        Err(CreateError::Store(_)
            | CreateError::Overflow
            | CreateError::NotPrimary(_)
            | CreateError::OwnershipUnconfirmed(_)
            | CreateError::StaleEpoch { .. })
    ) {
        // Nothing was written: free the key so the client's retry is processed, not refused.
        // If this fails too, the claim's lease expires on its own; the failure is reported.
        if let Err(e) = ports.store.release_key(&tenant, &key, token).await {
            *key_not_released = Some(e);
        }
    }
    outcome
}

/// What a create did, and what failed quietly on the way.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    /// The outcome the client gets.
    pub outcome: Result<Created, CreateError>,
    /// The claimed key could not be released after a refused or failed write: the client's retry
    /// gets `409 idempotency-key-in-use` until the claim's lease lapses. Reported, never silent.
    pub key_not_released: Option<StoreError>,
}

/// The tenant's head if this cell may book for it: its primary head, or, for a tenant it has never
/// held, the head its first write creates (implicit placement, see `docs/replication.md`).
async fn current_head(
    config: &CellConfig,
    ports: &CellPorts,
    ownership: Option<&Ownership>,
    tenant: &TenantId,
    expected_epoch: Option<u64>,
) -> Result<(Fence, TenantHead), CreateError> {
    let (mut fence, mut head) = primary_head(config, ports, tenant).await?;
    // Under leases (or with a lease on the head), the primary confirms it still owns the tenant.
    if ownership.is_some() || head.lease_until.is_some() {
        let stored = fence != Fence::Absent;
        match lease::confirm(
            ports.store.as_ref(),
            head,
            stored,
            ownership,
            ports.clock.as_ref(),
        )
        .await?
        {
            Confirmed::Primary(confirmed) => {
                if fence != Fence::Absent {
                    fence = confirmed.fence();
                }
                head = confirmed;
            }
            Confirmed::Moved(moved) => return Err(CreateError::NotPrimary(Box::new(moved))),
            Confirmed::Unconfirmed(stale) => {
                return Err(CreateError::OwnershipUnconfirmed(Box::new(stale)));
            }
        }
    }
    match expected_epoch {
        // The commit is fenced by this head's epoch, so the check holds at the commit too.
        Some(expected) if expected != head.epoch => Err(CreateError::StaleEpoch {
            expected,
            head: Box::new(head),
        }),
        _ => Ok((fence, head)),
    }
}

async fn primary_head(
    config: &CellConfig,
    ports: &CellPorts,
    tenant: &TenantId,
) -> Result<(Fence, TenantHead), CreateError> {
    match ports.store.head(tenant).await? {
        None => Ok((
            Fence::Absent,
            TenantHead::first_primary(tenant.clone(), config.cell_id.clone()),
        )),
        Some(head) if head.role == TenantRole::Primary => Ok((head.fence(), head)),
        // The clock is read only for a frozen head: the common path's calls stay as they were.
        Some(head) if head.freeze_lapsed(ports.clock.now()) => {
            match crate::placement::thaw(ports.store.as_ref(), &head).await? {
                Some(thawed) => Ok((thawed.fence(), thawed)),
                None => Err(CreateError::NotPrimary(Box::new(head))),
            }
        }
        Some(head) => Err(CreateError::NotPrimary(Box::new(head))),
    }
}

/// What a booking attempt decided, before it is committed.
enum Made {
    Booked(Box<LedgerWrite>),
    Refused(InsufficientFunds),
}

struct Booking<'a> {
    ownership: Option<&'a Ownership>,
    expected_epoch: Option<u64>,
    config: &'a CellConfig,
    ports: &'a CellPorts,
    tenant: &'a TenantId,
    key: &'a IdempotencyKey,
    fingerprint: &'a str,
    token: TransactionId,
    now: Timestamp,
    trace: &'a TraceContext,
}

impl Booking<'_> {
    /// Books a validated command under a held key. Re-reads and retries when another request changed
    /// the balance or the tenant's head in between (optimistic concurrency); the commit itself checks
    /// that this cell is still the tenant's primary at the epoch read.
    async fn book(
        &self,
        command: NewTransaction,
        (mut fence, mut head): (Fence, TenantHead),
    ) -> Result<Created, CreateError> {
        let store = &self.ports.store;
        let currency = command.currency;
        let mut event_id = None;
        for _ in 0..MAX_BALANCE_ATTEMPTS {
            let snapshot = store
                .balance(self.tenant, &command.account_id, currency)
                .await?;
            let (available, version) =
                snapshot.map_or((Decimal::ZERO, 0), |s| (s.available, s.version));
            let (response, effect, made) =
                match ledger::apply(available, command.kind, command.amount) {
                    Ok(balance_after) => {
                        let transaction = self.transaction(&command, currency, balance_after);
                        let body = transaction.to_json();
                        let event_id = *event_id.get_or_insert_with(|| self.ports.ids.next_id());
                        let event = TransactionAccepted {
                            event_id,
                            source_cell: self.config.cell_id.clone(),
                            tenant_seq: head.position.seq + 1,
                            balance_version: version + 1,
                            transaction: transaction.clone(),
                            // The entry keeps the event untraced; the relay adds the entry's trace.
                            trace: None,
                        }
                        .render(&body);
                        let response = seam::booked(&transaction, body).into_stored();
                        let balance = BalanceUpdate {
                            tenant_id: self.tenant.clone(),
                            account_id: command.account_id.clone(),
                            currency,
                            available: balance_after,
                            expected_version: version,
                        };
                        let effect = Effect::Accepted {
                            balance_version: version + 1,
                            event,
                        };
                        let write = LedgerWrite {
                            transaction,
                            balance,
                        };
                        (response, effect, Made::Booked(Box::new(write)))
                    }
                    Err(LedgerError::InsufficientFunds) => {
                        // A refused debit is an outcome: it is committed and replicated like a
                        // booking, so it replays the same on every cell.
                        let refusal = InsufficientFunds {
                            amount: command.amount,
                            account_id: command.account_id.clone(),
                        };
                        let response = seam::insufficient_funds(&refusal).into_stored();
                        (response, Effect::Refused, Made::Refused(refusal))
                    }
                    Err(LedgerError::Overflow) => return Err(CreateError::Overflow),
                };
            let entry = SealedEntry::seal(Entry {
                tenant: self.tenant.clone(),
                seq: head.position.seq + 1,
                epoch: head.epoch,
                origin: self.config.cell_id.clone(),
                prev: head.position.digest,
                time: self.now,
                key: self.key.clone(),
                fingerprint: self.fingerprint.to_owned(),
                response: response.clone(),
                effect,
                trace: Some(self.trace.clone()),
            });
            let next_head = TenantHead {
                position: entry.position(),
                ..head.clone()
            };
            let commit = Commit {
                fence,
                head: next_head,
                entry,
                source: EntrySource::Committed,
                key: KeyGuard::HeldBy(self.token),
                ledger: match &made {
                    Made::Booked(write) => Some(write.as_ref().clone()),
                    Made::Refused(_) => None,
                },
            };
            match store.commit(commit).await {
                Ok(()) => {
                    return Ok(match made {
                        Made::Booked(write) => Created::Booked {
                            transaction: Box::new(write.transaction),
                            response,
                        },
                        Made::Refused(refusal) => Created::Refused { refusal, response },
                    });
                }
                Err(CommitError::BalanceConflict) => continue,
                Err(CommitError::HeadMoved) => {
                    (fence, head) = current_head(
                        self.config,
                        self.ports,
                        self.ownership,
                        self.tenant,
                        self.expected_epoch,
                    )
                    .await?;
                }
                Err(CommitError::KeyConflict) => return Err(CreateError::KeyInUse),
                Err(CommitError::DuplicateTransaction) => {
                    return Err(StoreError::Failed(format!(
                        "transaction id {} already exists",
                        self.token
                    ))
                    .into());
                }
                Err(CommitError::Store(e)) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable {
            retry_after_secs: 1,
            detail: format!(
                "balance or tenant head still contended after {MAX_BALANCE_ATTEMPTS} attempts"
            ),
        }
        .into())
    }

    fn transaction(
        &self,
        command: &NewTransaction,
        currency: Currency,
        balance_after: Decimal,
    ) -> Transaction {
        Transaction {
            transaction_id: self.token,
            tenant_id: self.tenant.clone(),
            account_id: command.account_id.clone(),
            kind: command.kind,
            amount: command.amount,
            currency,
            reference: command.reference.clone(),
            metadata: command.metadata.clone(),
            status: TransactionStatus::Accepted,
            balance_after,
            created_at: self.now,
            cell_id: self.config.cell_id.clone(),
        }
    }
}
