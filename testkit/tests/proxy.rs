//! The fault proxy against a real upstream on loopback: every fault, per direction, on connections
//! already open and on new ones, and healing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use paracell_testkit::proxy::{Direction, Fault, FaultProxy};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

/// An upstream that echoes every byte back and counts what it received.
async fn echo() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            counter.fetch_add(n, Ordering::SeqCst);
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, received)
}

/// Sends `message` and waits up to `wait` for it to come back whole.
async fn round_trip(client: &mut TcpStream, message: &[u8], wait: Duration) -> Option<Vec<u8>> {
    client.write_all(message).await.ok()?;
    let mut got = vec![0u8; message.len()];
    match timeout(wait, client.read_exact(&mut got)).await {
        Ok(Ok(_)) => Some(got),
        _ => None,
    }
}

/// Whether the connection was closed (EOF or reset) within `wait`.
async fn closed(client: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        timeout(wait, client.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// How long a check waits for something that must *not* happen.
const SHORT: Duration = Duration::from_millis(300);
/// How long a check waits for something that must happen (generous: CI machines are loaded).
const LONG: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_passing_link_forwards_both_ways() {
    let (upstream, received) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut client, b"hello", LONG).await.as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(received.load(Ordering::SeqCst), 5);
    let stats = proxy.stats();
    assert_eq!(
        (stats.connections, stats.forwarded_up, stats.forwarded_down),
        (1, 5, 5)
    );
}

#[tokio::test]
async fn a_delay_holds_each_chunk_back_in_order() {
    let (upstream, _) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.set(Direction::Up, Fault::Delay(Duration::from_millis(200)));
    let started = Instant::now();
    client.write_all(b"one").await.unwrap();
    client.write_all(b"two").await.unwrap();
    let mut got = [0u8; 6];
    timeout(Duration::from_secs(2), client.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"onetwo");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    proxy.heal();
    assert!(round_trip(&mut client, b"x", LONG).await.is_some());
}

/// The store partition that matters most: the request lands, the answer never comes.
#[tokio::test]
async fn a_black_hole_down_lets_requests_land_and_swallows_the_answers() {
    let (upstream, received) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.set(Direction::Down, Fault::BlackHole);
    assert_eq!(round_trip(&mut client, b"write", SHORT).await, None);
    assert_eq!(received.load(Ordering::SeqCst), 5, "the request landed");
    assert_eq!(proxy.stats().swallowed_down, 5);
    assert!(
        !closed(&mut client, Duration::from_millis(50)).await,
        "the connection stays open"
    );
    proxy.heal();
    assert!(round_trip(&mut client, b"again", LONG).await.is_some());
}

#[tokio::test]
async fn a_black_hole_up_never_reaches_the_upstream() {
    let (upstream, received) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    proxy.black_hole();
    // New connections are accepted too: the client cannot tell a black hole from a slow server.
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut client, b"lost", SHORT).await, None);
    assert_eq!(received.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.stats().swallowed_up, 4);
}

#[tokio::test]
async fn a_cut_closes_open_connections_and_new_ones_until_healed() {
    let (upstream, received) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut open, b"hi", LONG).await.is_some());
    proxy.cut();
    assert!(
        closed(&mut open, LONG).await,
        "an open connection is closed by the cut"
    );
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = fresh.write_all(b"refused").await;
    assert!(
        closed(&mut fresh, LONG).await,
        "a new connection is closed at once"
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        2,
        "nothing crossed the cut"
    );
    assert!(proxy.stats().cut >= 2);
    proxy.heal();
    let mut healed = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut healed, b"back", LONG).await.is_some());
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let (upstream, _) = echo().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut client, b"hi", LONG).await.is_some());
    drop(proxy);
    assert!(closed(&mut client, LONG).await);
}
