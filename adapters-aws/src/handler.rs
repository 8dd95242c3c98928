//! [`LambdaCell`]: a cell behind Lambda. The runtime loop and the in-process entry point call the
//! same [`LambdaCell::handle_event`], so tests exercise exactly what runs in Lambda.
//!
//! One function serves every event kind the cell's deployment sends it: HTTP events from every front
//! door (answered by the cell), DynamoDB Streams batches of the cell table (relayed), and SQS batches
//! of dead letters an operator moved to the replay queue (relayed again to their destination).

use crate::inbound::http::{HttpEvent, translate};
use crate::inbound::{response, stream};
use lambda_runtime::{Context, LambdaEvent};
use paracell_domain::Cell;
use paracell_domain::http::{HttpService, catch_panic, untranslatable_request};
use paracell_domain::ports::TransactionStore;
use paracell_domain::replication::relay::{DeadLetter, Relay};
use serde_json::Value;
use serde_json::value::RawValue;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// A cell served by AWS Lambda.
#[derive(Clone)]
pub struct LambdaCell {
    cell: Cell,
    relay: Option<Relay>,
}

impl LambdaCell {
    /// Wraps a cell.
    pub fn new(cell: Cell) -> Self {
        Self { cell, relay: None }
    }

    /// The cell.
    pub fn cell(&self) -> &Cell {
        &self.cell
    }

    /// Relays stream and replay-queue batches with `relay` (the cell's store marks what was relayed).
    #[must_use]
    pub fn with_relay(mut self, relay: Relay) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Answers one raw event with the raw response JSON for its kind. Every HTTP event gets a
    /// response (errors and panics included). A stream or queue batch gets its partial-batch answer.
    /// Only an event of no known kind, or a batch for a function without a relay, is an `Err`.
    pub async fn handle_event(
        &self,
        event: &str,
        context: Context,
    ) -> Result<Box<RawValue>, lambda_runtime::Error> {
        let http = HttpEvent::parse(event).map_err(|e| NotAnHttpEvent(e.to_string()))?;
        if !http.is_batch() {
            return answer_http(&self.cell, http, context).await;
        }
        let event: Value = serde_json::from_str(event)?;
        if stream::is_stream_event(&event) {
            return self.relay_stream(&event, &context).await;
        }
        if is_sqs_event(&event) {
            return self.replay_dead_letters(&event, &context).await;
        }
        Err(NotAnHttpEvent("a batch of neither DynamoDB Streams nor SQS records".into()).into())
    }

    fn relay(&self) -> Result<&Relay, lambda_runtime::Error> {
        self.relay.as_ref().ok_or_else(|| {
            lambda_runtime::Error::from(
                "a stream or queue batch reached a function without a relay (set PARACELL_PEERS)",
            )
        })
    }

    async fn relay_stream(
        &self,
        event: &Value,
        context: &Context,
    ) -> Result<Box<RawValue>, lambda_runtime::Error> {
        let relay = self.relay()?;
        let records = stream::records(event);
        let entries: Vec<_> = records
            .iter()
            .filter_map(|r| r.entry.as_ref().ok().cloned().flatten())
            .collect();
        let report = relay.relay(&entries).await;
        let store: &dyn TransactionStore = self.cell.ports().store.as_ref();
        if let Err(e) = store.mark_relayed(&report.relayed).await {
            // The entries stay pending and are relayed again later: duplicates, which every
            // destination absorbs. Nothing is lost.
            crate::logging::relay_problem(
                &context.request_id,
                "mark_relayed failed",
                &e.to_string(),
            );
        }
        let first_failure = records.iter().find(|r| match &r.entry {
            Err(reason) => {
                crate::logging::relay_problem(
                    &context.request_id,
                    "unreadable entry record",
                    reason,
                );
                true
            }
            Ok(Some(entry)) => report
                .failed
                .iter()
                .any(|f| &f.tenant == entry.tenant() && f.seq == entry.seq()),
            Ok(None) => false,
        });
        crate::logging::relay_done(&context.request_id, "dynamodb-stream", &report);
        crate::logging::metrics(&paracell_domain::observability::metrics::relay_samples(
            self.cell.config().cell_id.as_str(),
            &report,
        ));
        json(stream::batch_response(
            first_failure.map(|r| r.sequence_number.as_str()),
        ))
    }

    async fn replay_dead_letters(
        &self,
        event: &Value,
        context: &Context,
    ) -> Result<Box<RawValue>, lambda_runtime::Error> {
        let relay = self.relay()?;
        let mut failures = Vec::new();
        for message in event["Records"].as_array().into_iter().flatten() {
            let id = message["messageId"].as_str().unwrap_or_default();
            let letter = message["body"]
                .as_str()
                .ok_or_else(|| "the message has no body".to_owned())
                .and_then(|text| DeadLetter::parse(text).map_err(|e| e.to_string()));
            let ok = match letter {
                Ok(letter) => {
                    let report = relay
                        .relay_only(&letter.destination, std::slice::from_ref(&letter.entry))
                        .await;
                    crate::logging::relay_done(&context.request_id, "dead-letter-replay", &report);
                    report.failed.is_empty()
                }
                Err(reason) => {
                    crate::logging::relay_problem(
                        &context.request_id,
                        "unreadable dead letter",
                        &reason,
                    );
                    false
                }
            };
            if !ok {
                failures.push(serde_json::json!({ "itemIdentifier": id }));
            }
        }
        json(serde_json::json!({ "batchItemFailures": failures }))
    }

    /// In process: raw event JSON bytes in, raw Lambda response JSON bytes out.
    pub async fn invoke(&self, event: &[u8]) -> Result<Vec<u8>, lambda_runtime::Error> {
        invoke_in_process(self, event).await
    }

    /// Serves invocations from the Lambda Runtime API until the process is stopped.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        serve(self).await
    }
}

/// Answers one HTTP event (any front door) with `service`: translated, answered, logged, and
/// rendered for its source. Panics become `500` problems. The one HTTP path of every function.
async fn answer_http(
    service: &dyn HttpService,
    event: HttpEvent<'_>,
    context: Context,
) -> Result<Box<RawValue>, lambda_runtime::Error> {
    let started = Instant::now();
    let source = event.source().ok_or_else(|| {
        NotAnHttpEvent(
            "no member names its source (REST: httpMethod and requestContext.httpMethod; HTTP API: \
             requestContext.http.method; ALB: requestContext.elb)"
                .into(),
        )
    })?;
    let response = catch_panic(async {
        match translate(source, event) {
            Ok(request) => service.handle(request).await,
            Err(e) => untranslatable_request(e.to_string()),
        }
    })
    .await;
    let latency = started.elapsed();
    crate::logging::request_done(&context.request_id, source, &response, latency);
    crate::logging::metrics(&paracell_domain::observability::metrics::request_samples(
        service.name(),
        &response,
        latency,
    ));
    Ok(response::render(source, response)?)
}

/// An event that is not an HTTP event of a known source (nor a batch this function relays): the
/// invocation fails with this, as nothing could answer it.
#[derive(Debug, thiserror::Error)]
#[error("not an API Gateway (REST or HTTP API), Function URL or ALB event: {0}")]
pub struct NotAnHttpEvent(String);

/// Any [`HttpService`] behind Lambda's HTTP front doors (API Gateway REST and HTTP APIs, Function
/// URLs, ALB): the edge router, for one. It answers HTTP events only; a cell with a relay is a
/// [`LambdaCell`].
///
/// ```
/// use paracell_aws::LambdaHttp;
/// use paracell_domain::{Cell, CellConfig, TenantScope};
/// use std::sync::Arc;
///
/// let function = LambdaHttp::new(Arc::new(Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap())));
/// let event = br#"{"version":"2.0","routeKey":"$default","rawPath":"/health","rawQueryString":"","headers":{},
///   "requestContext":{"http":{"method":"GET","path":"/health","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":"t"},
///   "requestId":"r","routeKey":"$default","stage":"$default","accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d","time":"t","timeEpoch":0},
///   "isBase64Encoded":false}"#;
/// let answer = tokio::runtime::Runtime::new().unwrap().block_on(function.invoke(event)).unwrap();
/// let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
/// assert_eq!(answer["statusCode"], 200);
/// ```
#[derive(Clone)]
pub struct LambdaHttp {
    service: Arc<dyn HttpService>,
}

impl LambdaHttp {
    /// Serves `service`.
    pub fn new(service: Arc<dyn HttpService>) -> Self {
        Self { service }
    }

    /// Answers one raw event; only an event that is not an HTTP event is an `Err`.
    pub async fn handle_event(
        &self,
        event: &str,
        context: Context,
    ) -> Result<Box<RawValue>, lambda_runtime::Error> {
        let event = HttpEvent::parse(event).map_err(|e| NotAnHttpEvent(e.to_string()))?;
        answer_http(self.service.as_ref(), event, context).await
    }

    /// In process: raw event JSON bytes in, raw Lambda response JSON bytes out.
    pub async fn invoke(&self, event: &[u8]) -> Result<Vec<u8>, lambda_runtime::Error> {
        invoke_in_process(self, event).await
    }

    /// Serves invocations from the Lambda Runtime API until the process is stopped.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        serve(self).await
    }
}

/// What [`LambdaCell`] and [`LambdaHttp`] share: one raw event in, its raw answer out. The in-process
/// entry point and the runtime loop are written once, over it.
trait EventFunction: Clone + Send + Sync + 'static {
    fn answer(
        &self,
        event: &str,
        context: Context,
    ) -> impl Future<Output = Result<Box<RawValue>, lambda_runtime::Error>> + Send;
}

impl EventFunction for LambdaCell {
    fn answer(
        &self,
        event: &str,
        context: Context,
    ) -> impl Future<Output = Result<Box<RawValue>, lambda_runtime::Error>> + Send {
        self.handle_event(event, context)
    }
}

impl EventFunction for LambdaHttp {
    fn answer(
        &self,
        event: &str,
        context: Context,
    ) -> impl Future<Output = Result<Box<RawValue>, lambda_runtime::Error>> + Send {
        self.handle_event(event, context)
    }
}

async fn invoke_in_process(
    function: &impl EventFunction,
    event: &[u8],
) -> Result<Vec<u8>, lambda_runtime::Error> {
    let event = std::str::from_utf8(event)?;
    let mut context = Context::default();
    context.request_id = "in-process".into();
    let response = function.answer(event, context).await?;
    Ok(RawValue::get(&response).as_bytes().to_vec())
}

async fn serve(function: impl EventFunction) -> Result<(), lambda_runtime::Error> {
    // The event stays JSON text: each kind decodes only what it reads.
    let handler = lambda_runtime::service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let function = function.clone();
        async move { function.answer(event.payload.get(), event.context).await }
    });
    lambda_runtime::run(handler).await
}

fn is_sqs_event(event: &Value) -> bool {
    event["Records"][0]["eventSource"].as_str() == Some("aws:sqs")
}

fn json(value: Value) -> Result<Box<RawValue>, lambda_runtime::Error> {
    Ok(RawValue::from_string(value.to_string())?)
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
    let config = paracell_domain::CellConfig::from_env()?;
    check_lambda_env()?;
    Ok(LambdaCell::new(make_cell(config)))
}

/// Checks the Lambda variables the runtime client would otherwise panic about.
pub fn check_lambda_env() -> Result<(), StartError> {
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
    Ok(())
}
