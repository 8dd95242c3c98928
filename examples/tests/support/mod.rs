//! Helpers shared by the examples' end-to-end tests: the conformance crate's raw HTTP client and
//! process guard, unwrapped for tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub use paracell_conformance::binaries::Running;
pub use paracell_conformance::wire::Reply;
use std::process::Command;

pub fn free_port() -> u16 {
    paracell_conformance::wire::free_port().unwrap()
}

pub fn send(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> Reply {
    paracell_conformance::wire::send(port, method, target, headers, body, chunked).unwrap()
}

pub fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&reply.body)))
}

/// Starts a binary and polls `GET /` every 25 ms, as the Functions host does, until it answers
/// (any answer counts, as for the host: behind it `GET /` is the probe's empty `200`; `local-cell`
/// and the standalone router answer it `404` like any unknown path).
pub fn start_and_wait_ready(mut command: Command, port: u16) -> Running {
    let child = Running(command.spawn().expect("spawn"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(reply) = paracell_conformance::wire::send(port, "GET", "/", &[], b"", false) {
            assert!(matches!(reply.status, 200 | 404), "readiness probe");
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the handler did not become ready on port {port} within 30 s");
}
