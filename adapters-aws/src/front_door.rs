//! The front door for a team's own workload: [`run`] serves any `tower::Service` over `http` types
//! as this Lambda function, behind every HTTP source at once.

use crate::LambdaHttp;
use paracell_domain::http::{HttpService, Workload};
use std::sync::Arc;

/// Serves `service` — an axum `Router`, a `tower` stack, any `tower::Service` over
/// `http::Request<Full<Bytes>>` — as this Lambda function until the runtime stops it, behind API
/// Gateway REST APIs, HTTP APIs, Function URLs and ALB alike (one function may sit behind several):
/// each source's envelope (stage prefixes, repeated headers and query values, base64 bodies,
/// authorizer claims) is translated by the same code that serves Paracell's own ledger, and the
/// answer goes back in the shape that source expects. Request bodies up to
/// [`Limits::DEFAULT_MAX_BODY_BYTES`](paracell_domain::Limits::DEFAULT_MAX_BODY_BYTES); for another
/// limit, [`run_workload`].
///
/// Install a log subscriber first (this library installs none), e.g.
/// [`crate::logging::subscriber`].
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
///
/// #[tokio::main]
/// async fn main() -> Result<(), lambda_runtime::Error> {
///     tracing::subscriber::set_global_default(paracell_aws::logging::subscriber())?;
///     let hello = tower::service_fn(|_request: http::Request<Full<Bytes>>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
///     });
///     paracell_aws::run(hello).await
/// }
/// ```
pub async fn run<S>(service: S) -> Result<(), lambda_runtime::Error>
where
    Workload<S>: HttpService + 'static,
{
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "workload".into());
    run_workload(Workload::new(name, service)).await
}

/// [`run`] for a [`Workload`] configured beyond the defaults (its name, its body limit).
pub async fn run_workload<S>(workload: Workload<S>) -> Result<(), lambda_runtime::Error>
where
    Workload<S>: HttpService + 'static,
{
    crate::handler::check_lambda_env()?;
    LambdaHttp::new(Arc::new(workload)).run().await
}
