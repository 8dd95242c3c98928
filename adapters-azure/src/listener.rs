//! The servers' front door: accepting connections with every limit set explicitly.
//!
//! `axum::serve` sets no timer at all (a client that connects and sends nothing, or sends half a
//! header, holds its connection forever), and hyper-util's auto builder sniffs the protocol before any
//! timer runs (`../shared/notes/front-doors.md`, server hardening, measured). So the connections are
//! driven here with hyper's builders and four limits ([`ServerLimits`]):
//!
//! - **connection cap**: a permit is taken before a connection is served; over the cap the connection
//!   is answered at once with a `503 server-busy` problem and closed (nothing queues unseen);
//! - **header read**: hyper's timer (`header_read_timeout`), which also runs while a keep-alive
//!   HTTP/1.1 connection waits for its next request; hyper closes the socket without an answer,
//!   since no request exists yet to answer;
//! - **idle**: a connection with no request in flight that moves no byte for this long is closed,
//!   whatever the protocol (it also bounds an HTTP/2 preface that never completes);
//! - **body**: each request's body is wrapped in [`TimedBody`]: a gap between two body frames longer
//!   than the body-idle limit, or a body still arriving at the body deadline, fails the body with
//!   [`BodyTimeout`], which the handler answers `408 request-timeout` ([`crate::server`]; tower-http's
//!   body timeouts would surface as `400` through axum).
//!
//! Graceful shutdown: in-flight requests finish (at most 30 s), then the remaining connections close.

use axum::body::Body;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The limits of a server. Read from the environment with [`ServerLimits::from_lookup`].
///
/// | variable | meaning | default (plain HTTP) | default (behind the Functions host) |
/// |---|---|---|---|
/// | `PARACELL_HEADER_TIMEOUT_SECS` | time to receive a request's head (and, on HTTP/1.1, to start the next one on a kept-alive connection) | 10 | 70 |
/// | `PARACELL_IDLE_TIMEOUT_SECS` | a connection with nothing in flight and no byte moving is closed after this | 60 | 70 |
/// | `PARACELL_BODY_IDLE_TIMEOUT_SECS` | longest gap between two pieces of a request body → `408` | 10 | 10 |
/// | `PARACELL_BODY_TIMEOUT_SECS` | a whole request body must have arrived by then → `408` | 30 | 30 |
/// | `PARACELL_MAX_CONNECTIONS` | open connections served at once; more are answered `503` and closed | 1024 | 1024 |
///
/// Behind the Functions host the header and idle limits are longer than the host's pooled-connection
/// idle time (one minute), so the host never reuses a socket the handler has just closed; the body
/// limits protect the handler from clients the host forwards as slowly as they send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// See the table.
    pub header_read: Duration,
    /// See the table.
    pub idle: Duration,
    /// See the table.
    pub body_idle: Duration,
    /// See the table.
    pub body_total: Duration,
    /// See the table.
    pub max_connections: usize,
    /// Serve HTTP/2 with prior knowledge as well as HTTP/1.1 (the standalone edge router does).
    pub http2: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body_idle: Duration::from_secs(10),
            body_total: Duration::from_secs(30),
            max_connections: 1024,
            http2: false,
        }
    }
}

/// A limit that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {value:?} must be a whole number from 1 to {max}")]
pub struct LimitError {
    /// The variable.
    pub variable: &'static str,
    /// What it held.
    pub value: String,
    /// The largest accepted value.
    pub max: u64,
}

impl ServerLimits {
    /// The defaults behind the Functions host (see the table).
    pub fn behind_functions_host() -> Self {
        Self {
            header_read: Duration::from_secs(70),
            idle: Duration::from_secs(70),
            ..Self::default()
        }
    }

    /// `base`, with the variables of the table that `lookup` finds.
    ///
    /// ```
    /// use paracell_azure::listener::ServerLimits;
    /// let limits = ServerLimits::from_lookup(ServerLimits::default(), |name| {
    ///     (name == "PARACELL_MAX_CONNECTIONS").then(|| "8".to_owned())
    /// }).unwrap();
    /// assert_eq!(limits.max_connections, 8);
    /// assert!(ServerLimits::from_lookup(ServerLimits::default(), |_| Some("0".into())).is_err());
    /// ```
    pub fn from_lookup(
        base: Self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LimitError> {
        let number = |variable: &'static str, max: u64| -> Result<Option<u64>, LimitError> {
            let Some(value) = lookup(variable) else {
                return Ok(None);
            };
            match value.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(LimitError {
                    variable,
                    value,
                    max,
                }),
            }
        };
        let secs = |variable, current: Duration| -> Result<Duration, LimitError> {
            Ok(number(variable, 3_600)?.map_or(current, Duration::from_secs))
        };
        Ok(Self {
            header_read: secs("PARACELL_HEADER_TIMEOUT_SECS", base.header_read)?,
            idle: secs("PARACELL_IDLE_TIMEOUT_SECS", base.idle)?,
            body_idle: secs("PARACELL_BODY_IDLE_TIMEOUT_SECS", base.body_idle)?,
            body_total: secs("PARACELL_BODY_TIMEOUT_SECS", base.body_total)?,
            max_connections: number("PARACELL_MAX_CONNECTIONS", 1_000_000)?
                .map_or(base.max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
            http2: base.http2,
        })
    }
}

/// The answer a connection over the cap gets before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 170\r\n\
\r\n\
{\"type\":\"urn:paracell:problem:server-busy\",\"title\":\"Server busy\",\"status\":503,\"detail\":\"The server is at its limit of open connections; retry after the indicated delay.\"}";

/// Serves `router` on `listener` under `limits` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors or a connection reset before it was accepted: go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // A fresh socket's send buffer is empty: the short answer fits without waiting.
            let _ = stream.try_write(BUSY);
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection refused: at the connection cap"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let service = {
            let router = router.clone();
            let activity = activity.clone();
            let (body_idle, body_total) = (limits.body_idle, limits.body_total);
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let busy = InFlight::enter(activity.clone());
                let request =
                    request.map(|body| Body::new(TimedBody::new(body, body_idle, body_total)));
                let call = router.clone().oneshot(request);
                async move {
                    let response = call.await;
                    drop(busy);
                    response
                }
            })
        };
        let idle = limits.idle;
        if limits.http2 {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            builder.http2().timer(TokioTimer::new());
            let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
            tokio::spawn(async move {
                tokio::select! {
                    _ = connection => {}
                    () = activity.idle_for(idle) => {}
                }
                drop(permit);
            });
        } else {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(io, service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                tokio::select! {
                    _ = connection => {}
                    () = activity.idle_for(idle) => {}
                }
                drop(permit);
            });
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after 30 s were closed");
    }
    Ok(())
}

/// Why a request body failed: it stalled longer than the body-idle limit, or was still arriving at
/// the body deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Whether a body error (at any depth of its sources) is a [`BodyTimeout`].
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<BodyTimeout>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body under the body deadlines: each frame must come within `idle` of the previous one
/// (of the head, for the first), and the whole body within `total`; otherwise the body fails with
/// [`BodyTimeout`].
pub struct TimedBody<B> {
    inner: B,
    idle: Duration,
    deadline: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> TimedBody<B> {
    /// `inner`, timed from now.
    pub fn new(inner: B, idle: Duration, total: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let deadline = now + total;
        Self {
            inner,
            idle,
            deadline,
            timer: Box::pin(tokio::time::sleep_until((now + idle).min(deadline))),
        }
    }
}

impl<B> hyper::body::Body for TimedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = (tokio::time::Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// When a connection last moved a byte, and how many of its requests are in flight.
struct Activity {
    start: Instant,
    last_millis: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(now, Ordering::Relaxed);
    }

    /// Resolves once the connection has had nothing in flight and moved no byte for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_millis = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let tick = (idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            let quiet = now.saturating_sub(self.last_millis.load(Ordering::Relaxed));
            if self.in_flight.load(Ordering::Relaxed) == 0 && quiet >= idle_millis {
                return;
            }
        }
    }
}

/// A request in flight on a connection (the idle timer never closes a connection under one).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when it last moved a byte.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::BodyExt as _;

    fn timed(
        frames: impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>>
        + Send
        + Unpin
        + 'static,
    ) -> Body {
        let limits = (Duration::from_secs(2), Duration::from_secs(5));
        let inner = http_body_util::StreamBody::new(frames);
        Body::new(TimedBody::new(inner, limits.0, limits.1))
    }

    fn frame(n: usize) -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from(vec![b'x'; n])))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_or_dawdles_fails_with_a_body_timeout() {
        // One frame, then nothing: the gap outlasts the idle limit.
        let stalled = timed(futures::stream::iter([frame(3)]).chain(futures::stream::pending()));
        let started = tokio::time::Instant::now();
        let error = stalled.collect().await.unwrap_err();
        assert!(is_body_timeout(&error), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // A frame every second: never idle, but still arriving at the deadline.
        let dawdling = timed(Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((frame(1), ()))
        })));
        let started = tokio::time::Instant::now();
        let error = dawdling.collect().await.unwrap_err();
        assert!(is_body_timeout(&error), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // A body that arrives in time is untouched.
        let on_time = timed(futures::stream::iter([frame(3), frame(4)]));
        assert_eq!(on_time.collect().await.unwrap().to_bytes().len(), 7);
        // Other body errors are not timeouts.
        let broken = timed(futures::stream::iter([Err(std::io::Error::other("reset"))]));
        assert!(!is_body_timeout(&broken.collect().await.unwrap_err()));
    }

    #[test]
    fn the_busy_answer_is_a_complete_problem_response() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
        assert_eq!(problem["type"], "urn:paracell:problem:server-busy");
    }
}
