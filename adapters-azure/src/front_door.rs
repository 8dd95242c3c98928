//! The front door for a team's own workload: [`serve`] serves any `tower::Service` over `http`
//! types as an Azure Functions custom handler, in whichever mode `host.json` chose.

use crate::AzureConfig;
use crate::server::{AzureHandler, StartError};
use paracell_domain::http::{HttpService, Workload};
use std::sync::Arc;

/// Serves `service` — an axum `Router`, a `tower` stack, any `tower::Service` over
/// `http::Request<Full<Bytes>>` — as this function app's custom handler until SIGTERM: reads the
/// host's environment (`FUNCTIONS_CUSTOMHANDLER_PORT`) and `host.json` (payload or forwarding mode,
/// the HTTP route prefix; [`AzureConfig::from_env`]), binds `127.0.0.1` only, answers the host's
/// readiness probe, and translates each invocation with the same code that serves Paracell's own
/// ledger. Request bodies up to
/// [`Limits::DEFAULT_MAX_BODY_BYTES`](paracell_domain::Limits::DEFAULT_MAX_BODY_BYTES); for another
/// limit, [`serve_workload`]. Server timeouts and the connection cap follow
/// [`ServerLimits::behind_functions_host`](crate::listener::ServerLimits::behind_functions_host), overridable with `PARACELL_*` variables
/// ([`ServerLimits::from_lookup`](crate::listener::ServerLimits::from_lookup)).
///
/// Install a log subscriber first (this library installs none), e.g.
/// [`crate::logging::subscriber`].
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     tracing::subscriber::set_global_default(paracell_azure::logging::subscriber())?;
///     let hello = tower::service_fn(|_request: http::Request<Full<Bytes>>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("hello"))))
///     });
///     paracell_azure::serve(hello).await?;
///     Ok(())
/// }
/// ```
pub async fn serve<S>(service: S) -> Result<(), StartError>
where
    Workload<S>: HttpService + 'static,
{
    let name = std::env::var("WEBSITE_SITE_NAME").unwrap_or_else(|_| "workload".into());
    serve_workload(Workload::new(name, service)).await
}

/// [`serve`] for a [`Workload`] configured beyond the defaults (its name, its body limit).
pub async fn serve_workload<S>(workload: Workload<S>) -> Result<(), StartError>
where
    Workload<S>: HttpService + 'static,
{
    let config = AzureConfig::from_env()?;
    tracing::info!(mode = ?config.mode, "starting");
    crate::server::serve_behind_host(AzureHandler::for_service(Arc::new(workload), config)).await
}
