//! The create use case: book a validated command under an idempotency key, or replay the key's first
//! outcome. It returns domain results; [`crate::contract::seam`] turns them into responses.

use crate::config::CellConfig;
use crate::contract::seam;
use crate::events::TransactionAccepted;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord, StoredResponse};
use crate::ledger::{self, LedgerError};
use crate::observability::trace::TraceContext;
use crate::placement::lease::{self, Confirmed, Ownership};
use crate::placement::quorum::{Admission, LeaseGate};
use crate::placement::{Fence, TenantHead, TenantRole};
use crate::ports::{
    BalanceUpdate, Commit, CommitError, EntrySource, LedgerWrite, Sleep, StoreError,
};
use crate::replication::{Effect, Entry, SealedEntry};
use crate::tenancy::TenantId;
use crate::time::Timestamp;
use crate::transaction::{NewTransaction, Transaction, TransactionId, TransactionStatus};
use crate::{Amount, CellPorts};
use rust_decimal::Decimal;

/// How many times a create re-reads the balance after losing an optimistic-concurrency race before
/// giving up with [`StoreError::Unavailable`].
pub const MAX_BALANCE_ATTEMPTS: usize = 64;

/// The longest random pause between two attempts of a create (when the host gives a way to wait).
pub const MAX_RETRY_PAUSE_MICROS: u64 = 32_000;

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
    /// The commit returned at or after the cell lease's deadline, so it is not acknowledged (the ack
    /// rule, [`crate::placement::quorum::lease`]): the entry at `seq` is committed here; a retry under
    /// the same key replays it while this cell stays the primary, and reconciliation reports it in
    /// the divergent tail if the tenant moved.
    #[error("the commit of entry {seq} returned after the cell lease's deadline")]
    CommitPastLease {
        /// The tenant's epoch here.
        epoch: u64,
        /// The committed entry's sequence number.
        seq: u64,
    },
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

/// Books `request` on `ports`, or replays the key's first outcome.
///
/// A create is one read ([`crate::ports::TransactionStore::create_view`]: the head, the key's
/// record, the balance) and one atomic commit whose conditions make the decision safe: the key is
/// still absent, the balance still has the version read, the head is still the one read. Nothing
/// is held in between, so a failed request leaves nothing to clean up. A commit that loses a race
/// reads again and decides again: a concurrent duplicate then finds the winner's record and
/// replays it. With `pause`, a lost race is followed by a random wait of up to 1 ms × 2^attempt (at
/// most [`MAX_RETRY_PAUSE_MICROS`]) before reading again ("full jitter").
///
/// Under a cell lease (`gate`), the cell books only while its lease holds and the tenant's placement
/// is confirmed in the lease's tenure, and acknowledges only a commit that returned before the
/// lease's deadline ([`LeaseGate`]).
pub async fn create(
    config: &CellConfig,
    ports: &CellPorts,
    ownership: Option<&Ownership>,
    gate: Option<&LeaseGate>,
    pause: Option<&dyn Sleep>,
    request: CreateCommand,
) -> Result<Created, CreateError> {
    let fingerprint = request.command.fingerprint();
    let booking = Booking {
        ownership,
        gate,
        pause,
        config,
        ports,
        request: &request,
        fingerprint: &fingerprint,
        token: TransactionId::from_uuid(ports.ids.next_id()),
        now: ports.clock.now(),
    };
    booking.book().await
}

/// What the key's record says about this request: nothing yet (book it), or the answer now — the
/// first outcome replayed, or `422` when the payload differs.
fn replay(
    record: Option<IdempotencyRecord>,
    fingerprint: &str,
) -> Option<Result<Created, CreateError>> {
    let record = record?;
    Some(if record.fingerprint == fingerprint {
        Ok(Created::Replayed(record.response))
    } else {
        Err(CreateError::KeyReused)
    })
}

/// The tenant's head if this cell may book for it, from the head `stored` here: its primary head,
/// or, for a tenant it has never held, the head its first write creates (implicit placement, see
/// `docs/replication.md`). Only a lease or a lapsed freeze costs more requests.
async fn admitted_head(
    config: &CellConfig,
    ports: &CellPorts,
    ownership: Option<&Ownership>,
    gate: Option<&LeaseGate>,
    tenant: &TenantId,
    stored: Option<TenantHead>,
    expected_epoch: Option<u64>,
) -> Result<(Fence, TenantHead), CreateError> {
    let (mut fence, mut head) = primary_head(config, ports, tenant, stored).await?;
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
    if let Some(gate) = gate {
        match gate.admit(&head).await {
            Admission::Admitted => {}
            Admission::Moved(placement) => {
                let fenced = head.fenced_for(&placement.primary, placement.epoch);
                if fence != Fence::Absent {
                    match ports.store.put_head(fence, fenced.clone()).await {
                        // Moved meanwhile: the next request decides on what is stored then.
                        Ok(()) | Err(CommitError::HeadMoved) => {}
                        Err(CommitError::Store(e)) => return Err(e.into()),
                        Err(other) => return Err(StoreError::Failed(other.to_string()).into()),
                    }
                }
                return Err(CreateError::NotPrimary(Box::new(fenced)));
            }
            Admission::Unconfirmed(_) => {
                return Err(CreateError::OwnershipUnconfirmed(Box::new(head)));
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
    stored: Option<TenantHead>,
) -> Result<(Fence, TenantHead), CreateError> {
    match stored {
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
    gate: Option<&'a LeaseGate>,
    pause: Option<&'a dyn Sleep>,
    config: &'a CellConfig,
    ports: &'a CellPorts,
    request: &'a CreateCommand,
    fingerprint: &'a str,
    /// The id the transaction gets if this request books it.
    token: TransactionId,
    now: Timestamp,
}

impl Booking<'_> {
    /// Reads, decides, commits; reads and decides again when another request changed the key, the
    /// balance or the tenant's head in between (optimistic concurrency). The commit itself checks
    /// that this cell is still the tenant's primary at the epoch read.
    async fn book(&self) -> Result<Created, CreateError> {
        let request = self.request;
        let command = &request.command;
        let store = &self.ports.store;
        let mut event_id = None;
        for attempt in 0..MAX_BALANCE_ATTEMPTS {
            if attempt > 0 {
                self.pause_before(attempt).await;
            }
            let view = store
                .create_view(
                    &request.tenant,
                    &request.key,
                    &command.account_id,
                    command.currency,
                )
                .await?;
            // Only the tenant's primary books: checked first, so a standby answers 421 whatever the
            // key's record says, and again inside the commit, which is what makes it safe.
            let (fence, head) = admitted_head(
                self.config,
                self.ports,
                self.ownership,
                self.gate,
                &request.tenant,
                view.head,
                request.expected_epoch,
            )
            .await?;
            if let Some(answer) = replay(view.record, self.fingerprint) {
                return answer;
            }
            let (available, version) = view
                .balance
                .map_or((Decimal::ZERO, 0), |s| (s.available, s.version));
            let (response, effect, made) =
                match ledger::apply(available, command.kind, command.amount) {
                    Ok(balance_after) => {
                        let transaction = self.transaction(balance_after);
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
                            tenant_id: request.tenant.clone(),
                            account_id: command.account_id.clone(),
                            currency: command.currency,
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
                tenant: request.tenant.clone(),
                seq: head.position.seq + 1,
                epoch: head.epoch,
                origin: self.config.cell_id.clone(),
                prev: head.position.digest,
                time: self.now,
                key: request.key.clone(),
                fingerprint: self.fingerprint.to_owned(),
                response: response.clone(),
                effect,
                trace: Some(request.trace.clone()),
            });
            let next_head = TenantHead {
                position: entry.position(),
                ..head
            };
            let (ledger, outcome) = match made {
                Made::Booked(write) => {
                    let transaction = Box::new(write.transaction.clone());
                    (
                        Some(*write),
                        Created::Booked {
                            transaction,
                            response,
                        },
                    )
                }
                Made::Refused(refusal) => (None, Created::Refused { refusal, response }),
            };
            let commit = Commit {
                fence,
                head: next_head,
                entry,
                source: EntrySource::Committed,
                ledger,
                stamps: view.stamps,
            };
            let committed = (head.epoch, head.position.seq + 1);
            match store.commit(commit).await {
                Ok(()) => {
                    // The ack rule: only a commit back before the lease's deadline is acknowledged.
                    if let Some(gate) = self.gate
                        && !gate.acknowledge()
                    {
                        let (epoch, seq) = committed;
                        return Err(CreateError::CommitPastLease { epoch, seq });
                    }
                    return Ok(outcome);
                }
                // Someone else wrote first: read again and decide again (a duplicate request's
                // winner is then replayed).
                Err(CommitError::BalanceConflict | CommitError::KeyConflict) => {}
                // Or the position is taken by an entry this cell received from the previous
                // primary and never applied: cleared, then decided again.
                Err(CommitError::HeadMoved) => {
                    let (epoch, seq) = committed;
                    let leftover = store
                        .entry(&request.tenant, seq)
                        .await?
                        .is_some_and(|e| e.entry().epoch < epoch);
                    if leftover {
                        crate::replication::leftovers::discard_beyond(
                            store.as_ref(),
                            &request.tenant,
                            epoch,
                            seq - 1,
                        )
                        .await?;
                    }
                }
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

    /// The random wait before attempt `attempt` (≥ 1), when the host gave a way to wait.
    async fn pause_before(&self, attempt: usize) {
        let Some(pause) = self.pause else { return };
        let doubling = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(5);
        let cap = (1_000u64 << doubling).min(MAX_RETRY_PAUSE_MICROS);
        // The id generator is the randomness at hand (UUIDv7's low bits are random).
        let random = self.ports.ids.next_id().as_u64_pair().1;
        pause
            .sleep(std::time::Duration::from_micros(random % (cap + 1)))
            .await;
    }

    fn transaction(&self, balance_after: Decimal) -> Transaction {
        let request = self.request;
        let command = &request.command;
        Transaction {
            transaction_id: self.token,
            tenant_id: request.tenant.clone(),
            account_id: command.account_id.clone(),
            kind: command.kind,
            amount: command.amount,
            currency: command.currency,
            reference: command.reference.clone(),
            metadata: command.metadata.clone(),
            status: TransactionStatus::Accepted,
            balance_after,
            created_at: self.now,
            cell_id: self.config.cell_id.clone(),
        }
    }
}
