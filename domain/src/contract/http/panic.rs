use super::{ApiResponse, Problem, ProblemType};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs a response future, turning a panic inside it into the 500 `internal` problem response.
///
/// Adapters wrap their whole request path in this once, at their boundary, so a bug never reaches
/// the platform as an invocation error (which API Gateway turns into an opaque 502 and the Azure host
/// into a bare 500).
///
/// ```
/// use paracell_domain::http::{catch_panic, ApiResponse};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output { paracell_domain::testing::block_on(f) }
/// let boom = catch_panic(async { if true { panic!("bug") } ApiResponse::json(200, vec![]) });
/// assert_eq!(block_on(boom).status, 500);
/// ```
pub fn catch_panic<F: Future<Output = ApiResponse>>(future: F) -> CatchPanic<F> {
    CatchPanic {
        inner: Box::pin(future),
        done: false,
    }
}

/// The future returned by [`catch_panic`].
pub struct CatchPanic<F> {
    inner: Pin<Box<F>>,
    done: bool,
}

impl<F: Future<Output = ApiResponse>> Future for CatchPanic<F> {
    type Output = ApiResponse;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ApiResponse> {
        if self.done {
            // A panicked future must not be polled again.
            return Poll::Ready(Problem::new(ProblemType::Internal).into_response());
        }
        let this = &mut *self;
        match catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                this.done = true;
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
                let mut response = Problem::new(ProblemType::Internal)
                    .into_response()
                    .with_cause(format!("panic: {message}"));
                response.telemetry.route = "panicked";
                Poll::Ready(response)
            }
        }
    }
}
