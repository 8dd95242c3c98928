//! A custom handler for functions other than HTTP (an Event Grid trigger, say): the host posts
//! `POST /{FunctionName}` with `{"Data": {...}, "Metadata": {...}}` in both modes (forwarding applies
//! to HTTP triggers only) and expects `{"Outputs": {}, "Logs": [...], "ReturnValue": ...}`.
//!
//! A handler's `Err` — and a panic — answers HTTP 500, which the host reports as a failed invocation:
//! the trigger's own retry policy runs it again and, for Event Grid, dead-letters it in the end.
//! Nothing is acknowledged that was not handled.

use crate::inbound::envelope::InvokeResponse;
use axum::body::Body;
use serde_json::Value;
use std::sync::Arc;

/// One invocation of a non-HTTP function.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerInvocation {
    /// The function's name (its folder under the app).
    pub function: String,
    /// Input bindings by name.
    pub data: Value,
    /// The host's binding metadata.
    pub metadata: Value,
}

/// What a handled invocation reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerOutcome {
    /// Lines the host logs under the invocation.
    pub logs: Vec<String>,
    /// The function's return value (`$return`), if any.
    pub return_value: Option<Value>,
}

type Handle = dyn Fn(&TriggerInvocation) -> Result<TriggerOutcome, String> + Send + Sync;

/// The router: `GET /` (the host's readiness probe) and `POST /{function}`.
///
/// ```
/// use paracell_azure::functions::{trigger_router, TriggerOutcome};
/// let router = trigger_router(|invocation| Ok(TriggerOutcome {
///     logs: vec![format!("{} ran", invocation.function)],
///     return_value: None,
/// }));
/// # let _ = router;
/// ```
pub fn trigger_router(
    handle: impl Fn(&TriggerInvocation) -> Result<TriggerOutcome, String> + Send + Sync + 'static,
) -> axum::Router {
    let handle: Arc<Handle> = Arc::new(handle);
    axum::Router::new().fallback(move |request: http::Request<Body>| {
        let handle = handle.clone();
        async move { answer(handle.as_ref(), request).await }
    })
}

/// The invocation a request carries, or the answer to a request that is not one.
async fn invocation(
    request: http::Request<Body>,
) -> Result<TriggerInvocation, http::Response<Body>> {
    let path = request.uri().path().to_owned();
    if request.method() == http::Method::GET && path == "/" {
        return Err(http::Response::new(Body::empty()));
    }
    let function = path.trim_start_matches('/').to_owned();
    if request.method() != http::Method::POST || function.is_empty() || function.contains('/') {
        return Err(reply(404, vec![format!("no function at {path}")], None));
    }
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            return Err(reply(
                400,
                vec![format!("unreadable invocation: {e}")],
                None,
            ));
        }
    };
    let envelope: Value = match serde_json::from_slice(&body) {
        Ok(envelope @ Value::Object(_)) => envelope,
        Ok(_) => {
            return Err(reply(
                400,
                vec!["the invocation is not a JSON object".into()],
                None,
            ));
        }
        Err(e) => {
            return Err(reply(
                400,
                vec![format!("the invocation is not JSON: {e}")],
                None,
            ));
        }
    };
    Ok(TriggerInvocation {
        function,
        data: envelope.get("Data").cloned().unwrap_or(Value::Null),
        metadata: envelope.get("Metadata").cloned().unwrap_or(Value::Null),
    })
}

/// The answer to a handled (or failed, or panicked) invocation.
fn outcome_reply(
    function: &str,
    outcome: Result<Result<TriggerOutcome, String>, String>,
) -> http::Response<Body> {
    match outcome {
        Ok(Ok(outcome)) => reply(200, outcome.logs, outcome.return_value),
        Ok(Err(reason)) => {
            tracing::error!(%function, %reason, "invocation failed");
            reply(500, vec![reason], None)
        }
        Err(reason) => {
            tracing::error!(%function, %reason, "invocation panicked");
            reply(500, vec![format!("panicked: {reason}")], None)
        }
    }
}

async fn answer(handle: &Handle, request: http::Request<Body>) -> http::Response<Body> {
    let invocation = match invocation(request).await {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&invocation)))
        .map_err(|panic| panic_message(panic.as_ref()));
    outcome_reply(&invocation.function, outcome)
}

/// An asynchronous trigger handler (one that reaches a store or the placement quorum).
pub type AsyncTriggerHandler = dyn Fn(
        TriggerInvocation,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<TriggerOutcome, String>> + Send>,
    > + Send
    + Sync;

/// [`trigger_router`] for a handler that awaits: each invocation runs as its own task, so a panic in
/// it answers 500 like any failure.
pub fn async_trigger_router(handle: Arc<AsyncTriggerHandler>) -> axum::Router {
    axum::Router::new().fallback(move |request: http::Request<Body>| {
        let handle = handle.clone();
        async move {
            let invocation = match invocation(request).await {
                Ok(invocation) => invocation,
                Err(response) => return response,
            };
            let function = invocation.function.clone();
            let outcome = tokio::spawn(handle(invocation))
                .await
                .map_err(|joined| joined.to_string());
            outcome_reply(&function, outcome)
        }
    })
}

/// A panic's message, when it has one (`panic!("…")` payloads are `&str` or `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn reply(status: u16, logs: Vec<String>, return_value: Option<Value>) -> http::Response<Body> {
    let envelope = InvokeResponse {
        outputs: Default::default(),
        logs,
        return_value,
    };
    let mut response = http::Response::new(Body::from(
        serde_json::to_vec(&envelope).unwrap_or_default(),
    ));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// [`run_triggers`] for an asynchronous handler ([`async_trigger_router`]).
pub async fn run_async_triggers(
    handle: Arc<AsyncTriggerHandler>,
) -> Result<(), crate::server::StartError> {
    let port = crate::server::port_from_env().map_err(crate::server::StartError::Port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "listening");
    axum::serve(listener, async_trigger_router(handle))
        .with_graceful_shutdown(crate::server::shutdown_signal())
        .await?;
    Ok(())
}

/// Everything a trigger-function binary does (install a log subscriber first, e.g.
/// [`crate::logging::subscriber`]: this library installs none): bind `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`,
/// serve `handle` until SIGTERM.
pub async fn run_triggers(
    handle: impl Fn(&TriggerInvocation) -> Result<TriggerOutcome, String> + Send + Sync + 'static,
) -> Result<(), crate::server::StartError> {
    let port = crate::server::port_from_env().map_err(crate::server::StartError::Port)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(port, "listening");
    axum::serve(listener, trigger_router(handle))
        .with_graceful_shutdown(crate::server::shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn call(router: axum::Router, method: &str, path: &str, body: &str) -> (u16, Value) {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Doubles `n`; refuses a negative one; panics on zero.
    fn double(invocation: &TriggerInvocation) -> Result<TriggerOutcome, String> {
        match invocation.data["n"].as_i64() {
            Some(0) => panic!("zero"),
            Some(n) if n < 0 => Err(format!("{n} is negative")),
            Some(n) => Ok(TriggerOutcome {
                logs: vec![format!("{} got {n}", invocation.function)],
                return_value: Some(Value::from(n * 2)),
            }),
            None => Err("no n".into()),
        }
    }

    fn router() -> axum::Router {
        trigger_router(double)
    }

    #[test]
    fn outcomes_errors_and_panics_are_envelopes() {
        paracell_domain::testing::block_on(async {
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":21}}"#).await;
            assert_eq!(status, 200);
            assert_eq!(body["ReturnValue"], 42);
            assert_eq!(body["Logs"][0], "Double got 21");
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":-1}}"#).await;
            assert_eq!(
                (status, body["Logs"][0].as_str()),
                (500, Some("-1 is negative"))
            );
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":0}}"#).await;
            assert_eq!(status, 500);
            assert!(body["Logs"][0].as_str().unwrap().contains("zero"));
            assert_eq!(call(router(), "POST", "/Double", "[1]").await.0, 400);
            assert_eq!(call(router(), "POST", "/Double", "{").await.0, 400);
            assert_eq!(call(router(), "GET", "/Double", "").await.0, 404);
            assert_eq!(call(router(), "GET", "/", "").await.0, 200);
            // Not a function name: a nested path, or none.
            assert_eq!(
                call(router(), "POST", "/Double/x", r#"{"Data":{"n":1}}"#)
                    .await
                    .0,
                404
            );
            assert_eq!(
                call(router(), "POST", "/", r#"{"Data":{"n":1}}"#).await.0,
                404
            );
        });
    }

    /// The same handler, awaiting: the same envelopes, and a panic inside its task is a 500.
    #[test]
    fn an_async_handler_answers_the_same_envelopes() {
        let handler: Arc<AsyncTriggerHandler> =
            Arc::new(|invocation: TriggerInvocation| Box::pin(async move { double(&invocation) }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let router = || async_trigger_router(handler.clone());
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":21}}"#).await;
            assert_eq!((status, body["ReturnValue"].as_i64()), (200, Some(42)));
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":-1}}"#).await;
            assert_eq!(
                (status, body["Logs"][0].as_str()),
                (500, Some("-1 is negative"))
            );
            let (status, body) = call(router(), "POST", "/Double", r#"{"Data":{"n":0}}"#).await;
            assert_eq!(status, 500);
            assert!(body["Logs"][0].as_str().unwrap().starts_with("panicked"));
            assert_eq!(call(router(), "POST", "/Double", "{").await.0, 400);
            assert_eq!(call(router(), "GET", "/", "").await.0, 200);
        });
    }
}
