//! # paracell-conformance
//!
//! Proves, on every commit, that a client cannot tell a Paracell cell on AWS from one on Azure. Each
//! case (a JSON file, [`case`]) is replayed through every [`Envelope`]: the domain entry point, API
//! Gateway REST and HTTP APIs (with and without a stage), a Function URL, ALB in both header modes,
//! and the Azure Functions custom handler in payload and forwarding modes. A case passes when every
//! envelope meets its expectations, all envelopes give the client identical responses, and every
//! envelope's cell ends in the same state. The format, the envelopes and the few platform facts the
//! comparison accounts for are documented in `docs/conformance.md`.
//!
//! Run the built-in corpus against your own cell from a test:
//!
//! ```
//! use paracell_conformance::{Suite, Envelope};
//! let reports = Suite::built_in().unwrap().only(&["TX-CREATE-001"]).run_in_process();
//! assert!(reports.iter().all(|r| r.passed()), "{}", paracell_conformance::report::table(&reports, &Envelope::ALL));
//! ```

#![deny(missing_docs)]

pub mod binaries;
pub mod buses;
pub mod case;
pub mod coverage;
pub mod drill;
pub mod edge;
pub mod envelopes;
pub mod facts;
pub mod faults;
pub mod matcher;
pub mod pairs;
pub mod progress;
pub mod report;
pub mod request;
pub mod runner;
pub mod seam;
pub mod wire;

mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
}

pub use case::Case;
pub use envelopes::Envelope;
pub use runner::{Backend, CaseReport, Outcome};

use std::path::Path;
use std::sync::Arc;

/// A set of cases and the envelopes to run them on.
pub struct Suite {
    /// The cases.
    pub cases: Vec<Case>,
    /// The envelopes (all by default).
    pub envelopes: Vec<Envelope>,
}

impl Suite {
    /// Your own cases, on every envelope.
    pub fn new(cases: Vec<Case>) -> Self {
        Self {
            cases,
            envelopes: Envelope::ALL.to_vec(),
        }
    }

    /// The corpus built into this crate (`conformance/cases/`).
    pub fn built_in() -> Result<Self, case::CaseError> {
        let cases = corpus::BUILT_IN
            .iter()
            .map(|(name, text)| Case::parse(name, text))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cases,
            envelopes: Envelope::ALL.to_vec(),
        })
    }

    /// Every `*.json` case in a directory (sorted by file name).
    pub fn from_dir(dir: &Path) -> Result<Self, case::CaseError> {
        let io = |e: std::io::Error| case::CaseError::Invalid {
            file: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut cases = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io)?;
            cases.push(Case::parse(&file.display().to_string(), &text)?);
        }
        Ok(Self {
            cases,
            envelopes: Envelope::ALL.to_vec(),
        })
    }

    /// Keeps only the cases with these ids.
    pub fn only(mut self, ids: &[&str]) -> Self {
        self.cases.retain(|c| ids.contains(&c.id.as_str()));
        self
    }

    /// Runs in process on deterministic in-memory cells.
    pub fn run_in_process(&self) -> Vec<CaseReport> {
        self.run(&Backend::in_process())
    }

    /// Runs in process on cells your factory builds (your store, your ports). Return the
    /// [`MemoryStore`](paracell_domain::memory::MemoryStore) to have state parity checked too.
    pub fn run_with<F>(&self, factory: F) -> Vec<CaseReport>
    where
        F: Fn(
                paracell_domain::CellConfig,
            ) -> (
                paracell_domain::Cell,
                Option<Arc<paracell_domain::memory::MemoryStore>>,
            ) + Send
            + Sync
            + 'static,
    {
        self.run(&Backend::InProcess(Arc::new(factory)))
    }

    /// Runs in process on a workload of yours ([`Backend::workload`]): `factory` builds a fresh
    /// service for every envelope of every case.
    pub fn run_workload<F>(&self, factory: F) -> Vec<CaseReport>
    where
        F: Fn() -> Arc<dyn paracell_domain::http::HttpService> + Send + Sync + 'static,
    {
        self.run(&Backend::workload(factory))
    }

    /// Runs on a backend.
    pub fn run(&self, backend: &Backend) -> Vec<CaseReport> {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(runner::run_cases(&self.cases, &self.envelopes, backend)),
            Err(e) => panic!("cannot start a tokio runtime: {e}"),
        }
    }
}
