//! A Lambda function for events other than HTTP (an EventBridge rule's target, say): the runtime
//! loop, the environment check, and panics turned into failed invocations.
//!
//! A handler's `Err` — and a panic — fails the invocation: for an asynchronous invocation (what an
//! EventBridge target is), Lambda retries it and then sends it to the target's dead-letter queue, so
//! nothing is acknowledged that was not handled.

use lambda_runtime::{self, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;

/// An event handler: the payload in, the function's answer or why it failed out.
pub type EventHandler = dyn Fn(&Value) -> Result<Value, String> + Send + Sync;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvocationFailed(pub String);

/// Handles one event's payload (what the runtime loop and in-process callers run).
///
/// ```
/// use paracell_aws::function::handle_event;
/// let double = |event: &serde_json::Value| event["n"].as_i64().map(|n| serde_json::json!(n * 2))
///     .ok_or_else(|| "no n".to_owned());
/// assert_eq!(handle_event(&double, &serde_json::json!({"n": 21})).unwrap(), 42);
/// assert_eq!(handle_event(&double, &serde_json::json!({})).unwrap_err().to_string(), "no n");
/// ```
pub fn handle_event(handle: &EventHandler, event: &Value) -> Result<Value, InvocationFailed> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(event))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(reason)) => {
            tracing::error!(%reason, "invocation failed");
            Err(InvocationFailed(reason))
        }
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(%reason, "invocation panicked");
            Err(InvocationFailed(format!("panicked: {reason}")))
        }
    }
}

/// Serves `handle` from the Lambda Runtime API until the process is stopped (install a log
/// subscriber first, e.g. [`crate::logging::subscriber`]: this library installs none). Checks first that it
/// runs inside Lambda (or `cargo lambda watch`), which the runtime client would otherwise panic about.
pub async fn run_events(
    handle: impl Fn(&Value) -> Result<Value, String> + Send + Sync + 'static,
) -> Result<(), lambda_runtime::Error> {
    crate::handler::check_lambda_env()?;
    let handle: Arc<EventHandler> = Arc::new(handle);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let handle = handle.clone();
            async move {
                handle_event(handle.as_ref(), &event.payload).map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}

/// An asynchronous event handler (one that reaches a store, say).
pub type AsyncEventHandler = dyn Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send>>
    + Send
    + Sync;

/// [`run_events`] for a handler that awaits: each invocation runs as its own task, so a panic in it
/// is a failed invocation, not a dead runtime.
pub async fn run_async_events(handle: Arc<AsyncEventHandler>) -> Result<(), lambda_runtime::Error> {
    crate::handler::check_lambda_env()?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let handle = handle.clone();
            async move {
                let reason = match tokio::spawn(handle(event.payload)).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(reason)) => reason,
                    Err(joined) => format!("panicked: {joined}"),
                };
                tracing::error!(%reason, "invocation failed");
                Err(lambda_runtime::Error::from(InvocationFailed(reason)))
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_failed_invocation() {
        let boom = |_: &Value| -> Result<Value, String> { panic!("bug") };
        let err = handle_event(&boom, &Value::Null).unwrap_err();
        assert_eq!(err.to_string(), "panicked: bug");
    }
}
