//! Small helpers for tests of code built on the domain: a dependency-free `block_on` (the domain has
//! no async runtime) and sample values.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on the current thread.
///
/// ```
/// assert_eq!(paracell_domain::testing::block_on(async { 40 + 2 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A valid transaction for examples and tests.
pub fn sample_transaction() -> crate::Transaction {
    use crate::*;
    let eur =
        Currency::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is an ISO 4217 currency"));
    let amount = Amount::parse("125.5", eur).unwrap_or_else(|_| unreachable!("valid amount"));
    Transaction {
        transaction_id: TransactionId::from_uuid(uuid::Uuid::nil()),
        tenant_id: TenantId::parse("coop-1").unwrap_or_else(|_| unreachable!("valid tenant")),
        account_id: AccountId::parse("ACC-1").unwrap_or_else(|_| unreachable!("valid account")),
        kind: TransactionKind::Credit,
        amount,
        currency: eur,
        reference: None,
        metadata: None,
        status: TransactionStatus::Accepted,
        balance_after: amount.value(),
        created_at: Timestamp::from_unix_millis(0),
        cell_id: CellId::parse("cell-a").unwrap_or_else(|_| unreachable!("valid cell")),
    }
}

pub mod store_contract;

/// The project's shared third-party fixtures (`shared/fixtures/<sub>` beside the repository, or
/// under `$PARACELL_SHARED_FIXTURES`), for tests that replay them.
///
/// `None` only when the folder is absent and the variable unset: the caller then reports that its
/// replay did not run. `.ci/run` sets the variable whenever `../shared/fixtures` exists, so in CI a
/// missing folder is a failure, never a silent skip.
pub fn shared_fixtures(sub: &str) -> Option<std::path::PathBuf> {
    let configured = std::env::var_os("PARACELL_SHARED_FIXTURES");
    let dir = configured
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
        })
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        configured.is_none(),
        "PARACELL_SHARED_FIXTURES is set but {} is missing",
        dir.display()
    );
    eprintln!("NOTE: shared/fixtures/{sub} not found; its replay did not run");
    None
}
