//! [`LambdaCell`]: a cell behind Lambda. The runtime loop and the in-process entry point call the
//! same [`LambdaCell::handle_event`], so tests exercise exactly what runs in Lambda.

use crate::event::translate;
use crate::runtime::{self, recognise};
use lambda_http::Context;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use paracell_domain::Cell;
use paracell_domain::http::{catch_panic, untranslatable_request};
use serde_json::Value;
use serde_json::value::RawValue;
use std::time::Instant;

/// A cell served by AWS Lambda.
#[derive(Clone)]
pub struct LambdaCell {
    cell: Cell,
}

impl LambdaCell {
    /// Wraps a cell.
    pub fn new(cell: Cell) -> Self {
        Self { cell }
    }

    /// Answers one raw event with the raw response JSON for its source. Every HTTP event gets a
    /// response (errors and panics included); only an event that is not an HTTP event is an `Err`,
    /// because no HTTP response shape exists for it.
    pub async fn handle_event(
        &self,
        event: Value,
        context: Context,
    ) -> Result<Box<RawValue>, lambda_http::Error> {
        let started = Instant::now();
        let recognised = recognise(&event)?;
        let source = recognised.source;
        let response = catch_panic(async {
            match translate(source, &event) {
                Ok(request) => self.cell.handle(request).await,
                Err(e) => untranslatable_request(e.to_string()),
            }
        })
        .await;
        crate::logging::request_done(&context.request_id, source, &response, started.elapsed());
        runtime::respond(recognised, response, context).await
    }

    /// In process: raw event JSON bytes in, raw Lambda response JSON bytes out.
    pub async fn invoke(&self, event: &[u8]) -> Result<Vec<u8>, lambda_http::Error> {
        let event: Value = serde_json::from_slice(event)?;
        let mut context = Context::default();
        context.request_id = "in-process".into();
        let response = self.handle_event(event, context).await?;
        Ok(RawValue::get(&response).as_bytes().to_vec())
    }

    /// Serves invocations from the Lambda Runtime API until the process is stopped.
    pub async fn run(self) -> Result<(), lambda_http::Error> {
        let handler = lambda_runtime::service_fn(move |event: LambdaEvent<Value>| {
            let this = self.clone();
            async move { this.handle_event(event.payload, event.context).await }
        });
        lambda_runtime::run(handler).await
    }
}

/// Why `lambda-cell` could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad cell configuration.
    #[error(transparent)]
    Cell(#[from] paracell_domain::ConfigError),
    /// Not inside Lambda (or `cargo lambda watch`).
    #[error("{0} is not set: run inside AWS Lambda or under `cargo lambda watch`")]
    NotInLambda(&'static str),
}

/// Checks the environment before starting: cell configuration, and the Lambda variables the runtime
/// client would otherwise panic about.
pub fn start(
    make_cell: impl FnOnce(paracell_domain::CellConfig) -> Cell,
) -> Result<LambdaCell, StartError> {
    crate::logging::init();
    let config = paracell_domain::CellConfig::from_env()?;
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ] {
        if std::env::var_os(var).is_none() {
            return Err(StartError::NotInLambda(var));
        }
    }
    Ok(LambdaCell::new(make_cell(config)))
}
