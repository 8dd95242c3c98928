//! The `maintenance-azure` binary as the Functions host starts it: `FUNCTIONS_CUSTOMHANDLER_PORT`,
//! the shipped `host.json` (forwarding mode: the host passes the client's request through), the
//! host's readiness probe, then requests. The in-process suite (`conformance.rs`) proves every
//! envelope; this proves the five-line `main` really serves.

use paracell_conformance::wire::{free_port, send};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_custom_handler_binary_serves_the_workload() {
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let app = concat!(env!("CARGO_MANIFEST_DIR"), "/azure/app");
    let mut running = Running(
        Command::new(env!("CARGO_BIN_EXE_maintenance-azure"))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_APP_ROOT_PATH", app)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start maintenance-azure: {e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("maintenance-azure exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "maintenance-azure did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The host's readiness probe, as the host sends it (with its invocation headers).
    let probe = send(port, "GET", "/", &[], b"", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((probe.status, probe.body.as_slice()), (200, b"".as_slice()));
    let tenant = [
        ("X-Tenant-ID", "coop-1"),
        ("Content-Type", "application/json"),
    ];
    let created = send(
        port,
        "POST",
        "/v1/requests",
        &tenant,
        br#"{"unit": "A-12", "summary": "Leaking tap", "priority": "urgent"}"#,
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.header("location"), Some("/v1/requests/req-1"));
    assert_eq!(
        created.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let listed = send(
        port,
        "GET",
        "/v1/requests?status=open",
        &tenant[..1],
        b"",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = serde_json::from_slice(&listed.body).unwrap_or_default();
    assert_eq!(body["items"][0]["priority"], "urgent", "{body}");
    let refused =
        send(port, "GET", "/v1/requests", &[], b"", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json; charset=utf-8")
    );
}
