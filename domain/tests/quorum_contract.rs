//! The quorum pieces against the contracts every implementation meets: the memory acceptor against
//! the acceptor contract, and the quorum registry (three memory acceptors) against the same registry
//! contract the one-table registries pass — so migrate, failover and the routers can use it unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::placement::quorum::{Acceptor, MemoryAcceptor, QuorumRegistry};
use paracell_domain::testing::store_contract::ThreadExecutor;
use paracell_domain::testing::{acceptor_contract, registry_contract};
use std::sync::Arc;

#[test]
fn the_memory_acceptor_meets_the_acceptor_contract() {
    acceptor_contract::run_all(&ThreadExecutor, &|| Arc::new(MemoryAcceptor::new("memory")));
}

#[test]
fn the_quorum_registry_meets_the_registry_contract() {
    registry_contract::run_all(&ThreadExecutor, &|| {
        let acceptors: Vec<Arc<dyn Acceptor>> = ["aws", "azure", "gcp"]
            .iter()
            .map(|d| Arc::new(MemoryAcceptor::new(d)) as Arc<dyn Acceptor>)
            .collect();
        Arc::new(QuorumRegistry::new(acceptors, 1).unwrap())
    });
}

#[test]
fn the_quorum_registry_meets_the_registry_contract_with_one_domain_down() {
    registry_contract::run_all(&ThreadExecutor, &|| {
        let down = Arc::new(MemoryAcceptor::new("aws"));
        down.set_reachable(false);
        let acceptors: Vec<Arc<dyn Acceptor>> = vec![
            down,
            Arc::new(MemoryAcceptor::new("azure")),
            Arc::new(MemoryAcceptor::new("gcp")),
        ];
        Arc::new(QuorumRegistry::new(acceptors, 1).unwrap())
    });
}
