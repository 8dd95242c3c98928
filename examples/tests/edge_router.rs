//! `edge-router` as a process in front of `local-cell` processes, over loopback: the faults a real
//! network has (a cell down, a cell too slow, a cell's own 503, a connection reset after the request
//! was sent, a failover the router learns from a 421) and a registry that disappears.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_domain::ports::{HttpClient, OutboundRequest, OutboundResponse};
use paracell_examples::http_client::HyperClient;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::{Running, free_port, start_and_wait_ready};

fn start(binary: &str, port: u16, env: &[(&str, String)]) -> Running {
    let mut command = Command::new(binary);
    command
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    start_and_wait_ready(command, port)
}

fn cell(id: &str, tenants: &str) -> (Running, u16) {
    let port = free_port();
    let process = start(
        env!("CARGO_BIN_EXE_local-cell"),
        port,
        &[
            ("PARACELL_CELL_ID", id.into()),
            ("PARACELL_TENANTS", tenants.into()),
        ],
    );
    (process, port)
}

fn router(registry: &Path, extra: &[(&str, String)]) -> (Running, u16) {
    let port = free_port();
    let mut env = vec![
        ("PARACELL_REGISTRY", format!("file:{}", registry.display())),
        ("PARACELL_EDGE_ID", "edge-1".into()),
        ("PARACELL_EDGE_PROBE_SECS", "0".into()),
    ];
    env.extend(extra.iter().cloned());
    let process = start(env!("CARGO_BIN_EXE_edge-router"), port, &env);
    (process, port)
}

fn registry_file(name: &str, entries: &[(&str, &str, u16, u64)]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("paracell-edge-{}-{name}.json", std::process::id()));
    write_registry(&path, entries);
    path
}

fn write_registry(path: &Path, entries: &[(&str, &str, u16, u64)]) {
    let tenants: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(tenant, cell, port, epoch)| {
            (
                (*tenant).to_owned(),
                serde_json::json!({"cell": cell, "cloud": "aws", "url": format!("http://127.0.0.1:{port}"), "epoch": epoch}),
            )
        })
        .collect();
    // Written whole and renamed, as a deployment tool would: a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::json!({ "tenants": tenants }).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn send(
    port: u16,
    method: &str,
    path: &str,
    tenant: &str,
    key: Option<&str>,
) -> OutboundResponse {
    let mut headers = vec![("x-tenant-id".to_owned(), tenant.to_owned())];
    let body = if method == "POST" {
        headers.push(("content-type".into(), "application/json".into()));
        br#"{"account_id":"ACC-1","type":"credit","amount":"10","currency":"EUR"}"#.to_vec()
    } else {
        Vec::new()
    };
    if let Some(key) = key {
        headers.push(("idempotency-key".into(), key.into()));
    }
    HyperClient::new()
        .send(OutboundRequest {
            method: method.into(),
            url: format!("http://127.0.0.1:{port}{path}"),
            headers,
            body,
            timeout: Duration::from_secs(30),
        })
        .await
        .unwrap()
}

fn problem_type(response: &OutboundResponse) -> String {
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    body["type"].as_str().unwrap_or_default().to_owned()
}

/// Reads one HTTP/1.1 message with a `Content-Length` body (or none) from `stream`.
fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    data.extend(body);
    Some(data)
}

/// A one-connection-at-a-time HTTP server answering each request with `answer(n)`; `None` closes
/// the connection without answering.
fn tiny_server(answer: impl Fn(usize, &[u8]) -> Option<Vec<u8>> + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut n = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            while let Some(request) = read_message(&mut stream) {
                n += 1;
                match answer(n, &request) {
                    Some(reply) => {
                        if stream.write_all(&reply).is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cell_down_is_502_and_a_cell_too_slow_is_504_within_the_deadline() {
    let down = free_port();
    // Accepts and reads, never answers.
    let silent = tiny_server(|_, _| {
        std::thread::sleep(Duration::from_secs(30));
        None
    });
    let registry = registry_file(
        "faults",
        &[
            ("coop-1", "cell-a", down, 1),
            ("coop-2", "cell-b", silent, 1),
        ],
    );
    let (_router, port) = router(&registry, &[("PARACELL_EDGE_DEADLINE_MS", "800".into())]);

    let r = send(port, "GET", "/v1/accounts/ACC-1/balances", "coop-1", None).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(problem_type(&r), "urn:paracell:problem:cell-unreachable");

    let started = Instant::now();
    let r = send(port, "POST", "/v1/transactions", "coop-2", Some("k-1")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(problem_type(&r), "urn:paracell:problem:cell-timeout");
    assert!(
        took < Duration::from_millis(1_500),
        "the deadline is 800 ms, the answer took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cells_own_503_with_retry_after_is_passed_through_untouched_and_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let body = r#"{"type":"urn:paracell:problem:store-unavailable","title":"Store unavailable","status":503}"#;
    let throttled = tiny_server(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Some(
            format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json; charset=utf-8\r\nretry-after: 7\r\nx-cell-own: yes\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    });
    let registry = registry_file("throttled", &[("coop-1", "cell-a", throttled, 1)]);
    let (_router, port) = router(&registry, &[]);
    let r = send(port, "POST", "/v1/transactions", "coop-1", Some("k-1")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("x-cell-own"), Some("yes"));
    assert_eq!(r.header("x-paracell-cell"), Some("cell-a"));
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a cell's own answer is never retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_post_reset_after_the_cell_booked_it_is_retried_once_and_books_once() {
    let (_cell, cell_port) = cell("cell-a", "*");
    // In front of the cell: the first request is delivered and booked, then its connection is cut
    // before the answer; later ones pass.
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let flaky = tiny_server(move |n, request| {
        seen.fetch_add(1, Ordering::SeqCst);
        let mut upstream = TcpStream::connect(("127.0.0.1", cell_port)).unwrap();
        upstream.write_all(request).unwrap();
        let reply = read_message(&mut upstream).unwrap();
        (n > 1).then_some(reply)
    });
    let registry = registry_file("reset", &[("coop-1", "cell-a", flaky, 1)]);
    let (_router, port) = router(&registry, &[]);
    let r = send(port, "POST", "/v1/transactions", "coop-1", Some("k-reset")).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "retried exactly once");
    // The cell booked it once: the retry was its idempotent replay.
    let balance = send(
        cell_port,
        "GET",
        "/v1/accounts/ACC-1/balances",
        "coop-1",
        None,
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&balance.body).unwrap();
    assert_eq!(body["balances"][0]["available"], "10.00", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_failover_the_old_cells_421_sends_the_request_to_the_successor() {
    // cell-a no longer serves coop-1 (its tenants were moved away); cell-b does.
    let (_a, a) = cell("cell-a", "coop-9");
    let (_b, b) = cell("cell-b", "*");
    let registry = registry_file("failover", &[("coop-1", "cell-a", a, 1)]);
    let (_router, port) = router(&registry, &[]);
    // The registry still names cell-a: its 421 is passed through.
    let r = send(port, "GET", "/v1/accounts/ACC-1/balances", "coop-1", None).await;
    assert_eq!(r.status, 421);
    assert_eq!(r.header("x-paracell-cell"), Some("cell-a"));
    // The failover updates the registry (cell-b at epoch 2); the router still holds cell-a as
    // fresh, gets its 421, re-reads the entry and retries once at cell-b.
    write_registry(&registry, &[("coop-1", "cell-b", b, 2)]);
    let r = send(port, "GET", "/v1/accounts/ACC-1/balances", "coop-1", None).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(problem_type(&r), "urn:paracell:problem:account-not-found");
    assert_eq!(r.header("x-paracell-cell"), Some("cell-b"));
    // A write carries the router's epoch: cell-b holds the tenant at epoch 1 (nobody promoted it
    // in this test), so it refuses — a route the cell does not agree with cannot write.
    let r = send(port, "POST", "/v1/transactions", "coop-1", Some("k-1")).await;
    assert_eq!(r.status, 421, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(problem_type(&r), "urn:paracell:problem:tenant-moved");
    let balance = send(b, "GET", "/v1/accounts/ACC-1/balances", "coop-1", None).await;
    assert_eq!(balance.status, 404, "nothing was booked on cell-b");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_registry_gone_known_tenants_keep_routing_and_unknown_ones_get_503() {
    let (_cell, cell_port) = cell("cell-a", "*");
    let registry = registry_file("gone", &[("coop-1", "cell-a", cell_port, 1)]);
    // Routes are re-read on every request, so the registry's absence is felt at once.
    let (_router, port) = router(&registry, &[("PARACELL_EDGE_FRESH_SECS", "0".into())]);
    let r = send(port, "POST", "/v1/transactions", "coop-1", Some("k-1")).await;
    assert_eq!(r.status, 201);
    std::fs::remove_file(&registry).unwrap();
    for n in 2..5 {
        let r = send(
            port,
            "POST",
            "/v1/transactions",
            "coop-1",
            Some(&format!("k-{n}")),
        )
        .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = send(port, "GET", "/v1/accounts/ACC-1/balances", "coop-2", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(problem_type(&r), "urn:paracell:problem:cell-unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
}
