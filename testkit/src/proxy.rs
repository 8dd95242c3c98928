//! A fault-injecting TCP proxy: one per link (a process to a store, a cell to a peer), listening on
//! loopback and forwarding to the real endpoint, with each direction's fault set at any moment:
//!
//! | fault | new connections | bytes in that direction | what the sender sees |
//! |---|---|---|---|
//! | [`Fault::Pass`] | forwarded | forwarded at once | normal |
//! | [`Fault::Delay`] | forwarded | forwarded, each chunk `d` after it was read (order kept) | slow answers; a request may land after its sender gave up |
//! | [`Fault::BlackHole`] | accepted | read and dropped; the connection stays open | nothing, until its own timeout |
//! | [`Fault::Cut`] | accepted and closed at once | the connection is closed | a reset connection, fast |
//!
//! "Up" is the client's requests to the upstream, "down" the answers. A black hole down only is the
//! nastiest partition for a store: the write lands, the answer never comes. Changing a fault applies
//! to connections already open too (a cut closes them; a black hole swallows their next bytes).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use paracell_testkit::proxy::{Direction, Fault, FaultProxy};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = FaultProxy::start(upstream.local_addr()?).await?;
//! let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
//! let (mut server, _) = upstream.accept().await?;
//! client.write_all(b"ping").await?;
//! let mut got = [0u8; 4];
//! server.read_exact(&mut got).await?;
//! assert_eq!(&got, b"ping");
//! proxy.set(Direction::Up, Fault::BlackHole);
//! client.write_all(b"lost").await?;
//! tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! assert_eq!(proxy.stats().swallowed_up, 4);
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the upstream (requests).
    Up,
    /// From the upstream back to the client (answers).
    Down,
}

/// What the proxy does to one direction of its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward at once.
    Pass,
    /// Forward each chunk this long after it was read, in order.
    Delay(Duration),
    /// Read and drop; keep the connection open.
    BlackHole,
    /// Close the connections; accept new ones only to close them.
    Cut,
}

/// Both directions' faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    /// Requests.
    pub up: Fault,
    /// Answers.
    pub down: Fault,
}

impl Link {
    fn get(&self, direction: Direction) -> Fault {
        match direction {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }

    fn cut(&self) -> bool {
        self.up == Fault::Cut || self.down == Fault::Cut
    }
}

/// What went through the proxy so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Connections closed by a cut (at accept or while open).
    pub cut: u64,
    /// Bytes forwarded up.
    pub forwarded_up: u64,
    /// Bytes forwarded down.
    pub forwarded_down: u64,
    /// Bytes a black hole swallowed going up.
    pub swallowed_up: u64,
    /// Bytes a black hole swallowed going down.
    pub swallowed_down: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    cut: AtomicU64,
    forwarded: [AtomicU64; 2],
    swallowed: [AtomicU64; 2],
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::Up => 0,
        Direction::Down => 1,
    }
}

/// A running proxy. Dropping it stops it and closes every connection through it.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    link: watch::Sender<Link>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("link", &*self.link.borrow())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`, every direction passing.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (link, watching) = watch::channel(Link {
            up: Fault::Pass,
            down: Fault::Pass,
        });
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            watching,
            Arc::clone(&counters),
        ));
        Ok(Self {
            addr,
            upstream,
            link,
            counters,
            task,
        })
    }

    /// Where clients connect (give them this instead of the upstream's address).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Sets one direction's fault.
    pub fn set(&self, direction: Direction, fault: Fault) {
        self.link.send_modify(|link| match direction {
            Direction::Up => link.up = fault,
            Direction::Down => link.down = fault,
        });
    }

    /// Cuts both directions.
    pub fn cut(&self) {
        self.link.send_replace(Link {
            up: Fault::Cut,
            down: Fault::Cut,
        });
    }

    /// Black-holes both directions.
    pub fn black_hole(&self) {
        self.link.send_replace(Link {
            up: Fault::BlackHole,
            down: Fault::BlackHole,
        });
    }

    /// Both directions pass again (connections a cut closed stay closed).
    pub fn heal(&self) {
        self.link.send_replace(Link {
            up: Fault::Pass,
            down: Fault::Pass,
        });
    }

    /// The faults now.
    pub fn link(&self) -> Link {
        *self.link.borrow()
    }

    /// What went through so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            forwarded_up: c.forwarded[0].load(Ordering::Relaxed),
            forwarded_down: c.forwarded[1].load(Ordering::Relaxed),
            swallowed_up: c.swallowed[0].load(Ordering::Relaxed),
            swallowed_down: c.swallowed[1].load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    link: watch::Receiver<Link>,
    counters: Arc<Counters>,
) {
    // Connection tasks live in this set: aborting the accept loop (the proxy dropped) drops the
    // set, which aborts them and closes their sockets.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if link.borrow().cut() {
                    counters.cut.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                counters.connections.fetch_add(1, Ordering::Relaxed);
                connections.spawn(connection(client, upstream, link.clone(), Arc::clone(&counters)));
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut link: watch::Receiver<Link>,
    counters: Arc<Counters>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        // The upstream refused: so does the proxy (the client sees its connection closed).
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pipe(
        Direction::Up,
        client_read,
        server_write,
        link.clone(),
        &counters,
    );
    let down = pipe(
        Direction::Down,
        server_read,
        client_write,
        link.clone(),
        &counters,
    );
    let cut = async {
        // Ends when a cut is set (or the proxy goes away).
        let _ = link.wait_for(Link::cut).await;
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = cut => {
            counters.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One direction: a reader that applies the fault as each chunk arrives, and a writer that sends
/// each forwarded chunk at its due time (so a delay shifts the stream, never reorders it).
async fn pipe(
    direction: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: watch::Receiver<Link>,
    counters: &Counters,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let i = index(direction);
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let due = match link.borrow().get(direction) {
                Fault::Pass => Instant::now(),
                Fault::Delay(d) => Instant::now() + d,
                Fault::BlackHole => {
                    counters.swallowed[i].fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
                // The connection is being closed by the cut watcher.
                Fault::Cut => break,
            };
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            counters.forwarded[i].fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // The sender closed its side: pass the end of the stream on.
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
