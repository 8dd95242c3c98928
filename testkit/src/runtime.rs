//! The domain's contract suites are runtime-free (they take an [`Executor`]); stores on real services
//! need tokio. [`OnTokio`] is that executor, shared by every store test instead of one copy per crate.
//!
//! ```
//! use paracell_domain::testing::store_contract::Executor;
//! let rt = paracell_testkit::runtime::OnTokio::multi_thread(2);
//! assert_eq!(rt.block_on(async { 1 + 1 }), 2);
//! ```

use paracell_domain::testing::store_contract::Executor;

/// A tokio runtime as the contract suites' executor.
#[derive(Debug)]
pub struct OnTokio(tokio::runtime::Runtime);

impl OnTokio {
    /// A multi-threaded runtime with `workers` threads and every driver (I/O, time) on.
    ///
    /// # Panics
    /// If the operating system refuses the threads (a test cannot run then anyway).
    #[allow(clippy::expect_used)]
    pub fn multi_thread(workers: usize) -> Self {
        Self(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .expect("a tokio runtime"),
        )
    }

    /// The runtime underneath.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.0
    }
}

impl Executor for OnTokio {
    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}
