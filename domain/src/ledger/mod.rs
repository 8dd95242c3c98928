//! The ledger: money, transactions, balances, and the use cases that book and read them.
//!
//! | module | holds |
//! |---|---|
//! | [`money`], [`transaction`] | values that can only be built valid |
//! | [`balance`] | balance arithmetic (no overdraft) |
//! | [`create`] | the create use case: book a command under an idempotency key |
//! | [`read`] | the read use cases: a transaction, an account's balances |
//! | [`events`] | the public `TransactionAccepted` CloudEvent |

pub mod balance;
pub mod create;
pub mod events;
pub mod money;
pub mod read;
pub mod transaction;

pub use balance::{LedgerError, apply};
