//! What the consumer examples do with `dev.paracell.transaction.accepted.v1`: keep a read model of
//! every balance the events describe, the way a reporting or notification worker would.
//!
//! It is written to the delivery guarantees of both buses (`docs/events.md`):
//! * **at least once** — an event seen before (same `source` + `id`,
//!   [`TransactionAccepted::dedupe_key`]) is counted as a duplicate and changes nothing;
//! * **in no order** — a balance keeps the state of the highest `balanceversion` seen, so an older
//!   event arriving late cannot overwrite a newer one.
//!
//! The example keeps its state in the function instance's memory, so a cold start begins again
//! (the balances it rebuilds are still right: they are versioned). A production consumer keeps its
//! seen keys in its own store, written with a condition in the same transaction as its effect.

use paracell_domain::events::TransactionAccepted;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// Whether an event was new to the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: applied.
    New,
    /// Seen before (same `source` + `id`): nothing changed.
    Duplicate,
}

/// A balance as the events describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceView {
    /// `balanceversion` of the newest event seen for it.
    pub version: u64,
    /// `balance_after` of that event, as the cell rendered it.
    pub balance: String,
}

/// The consumer's read model.
///
/// ```
/// use paracell_examples::consumer::{Projection, Seen};
/// let entry = paracell_domain::testing::sample_entry();
/// let event = paracell_domain::events::TransactionAccepted::parse(&entry.event().unwrap()).unwrap();
/// let mut projection = Projection::default();
/// assert_eq!(projection.apply(&event), Seen::New);
/// assert_eq!(projection.apply(&event), Seen::Duplicate);
/// assert_eq!(projection.report()["events"], 1);
/// ```
#[derive(Debug, Default)]
pub struct Projection {
    seen: HashSet<String>,
    duplicates: u64,
    balances: BTreeMap<String, BalanceView>,
}

impl Projection {
    /// Applies one event, at most once.
    pub fn apply(&mut self, event: &TransactionAccepted) -> Seen {
        if !self.seen.insert(event.dedupe_key()) {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        let tx = &event.transaction;
        let key = format!("{}/{}/{}", tx.tenant_id, tx.account_id, tx.currency);
        let view = BalanceView {
            version: event.balance_version,
            balance: tx.balance_after.to_string(),
        };
        match self.balances.get(&key) {
            Some(known) if known.version >= view.version => {}
            _ => {
                self.balances.insert(key, view);
            }
        }
        Seen::New
    }

    /// Decodes and applies every event of a delivery; one line per event for the logs.
    pub fn apply_all(&mut self, events: &[TransactionAccepted]) -> Vec<String> {
        events
            .iter()
            .map(|event| {
                let seen = self.apply(event);
                format!(
                    "{} {} tenantseq={} balanceversion={}",
                    match seen {
                        Seen::New => "applied",
                        Seen::Duplicate => "duplicate",
                    },
                    event.dedupe_key(),
                    event.tenant_seq,
                    event.balance_version
                )
            })
            .collect()
    }

    /// The read model: distinct events, duplicates absorbed, and each balance
    /// (`tenant/account/currency` → `{version, balance}`).
    pub fn report(&self) -> Value {
        let balances: serde_json::Map<String, Value> = self
            .balances
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!({"version": v.version, "balance": v.balance}),
                )
            })
            .collect();
        json!({
            "events": self.seen.len(),
            "duplicates": self.duplicates,
            "balances": balances,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of `version`; the newer one carries twice the sample's balance.
    fn event(version: u64, id: u128) -> TransactionAccepted {
        let mut tx = paracell_domain::testing::sample_transaction();
        if version > 1 {
            tx.balance_after = tx.balance_after + tx.balance_after;
        }
        TransactionAccepted {
            event_id: uuid::Uuid::from_u128(id),
            source_cell: tx.cell_id.clone(),
            tenant_seq: version,
            balance_version: version,
            transaction: tx,
            trace: None,
        }
    }

    #[test]
    fn a_late_older_event_does_not_overwrite_a_newer_balance() {
        let mut projection = Projection::default();
        let newer = event(2, 2);
        projection.apply(&newer);
        projection.apply(&event(1, 1));
        assert_eq!(projection.apply(&event(1, 1)), Seen::Duplicate);
        let report = projection.report();
        let (_, view) = report["balances"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert_eq!(view["version"], 2);
        assert_eq!(view["balance"], newer.transaction.balance_after.to_string());
        assert_eq!(
            (report["events"].as_u64(), report["duplicates"].as_u64()),
            (Some(2), Some(1))
        );
    }
}
