//! # paracell-aws
//!
//! Runs a Paracell [`Cell`](paracell_domain::Cell) as one AWS Lambda function behind API Gateway REST
//! APIs (payload 1.0, single and multi-value maps), HTTP APIs (payload 2.0), Function URLs and ALB
//! (multi-value mode on and off), with identical behaviour behind each.
//!
//! The adapter only translates: a raw Lambda event into the domain's
//! [`ApiRequest`](paracell_domain::http::ApiRequest), and the domain's response into the exact
//! response shape that event source expects. It decodes the event's JSON text itself, with borrowed
//! typed members and nothing else parsed (`lambda_http`'s request conversion loses repeated header
//! values, can panic on invalid base64 and unusual URIs, and depends on a process-wide variable for
//! stage handling), and renders responses with `aws_lambda_events`' public response types.
//! `lambda_runtime` runs the loop.
//!
//! | module | holds |
//! |---|---|
//! | [`inbound::http`] | raw HTTP event → its source and the neutral request (stage, query, repeated headers, base64, authorizer) |
//! | [`inbound::event_json`] | the lenient, borrowed JSON members the event decoding is made of |
//! | [`inbound::response`] | neutral response → the source's response JSON |
//! | [`inbound::stream`] | DynamoDB Streams records → entries for the relay, partial-batch answers |
//! | [`outbound`] | the DynamoDB store (feature `dynamodb`), the SQS dead-letter queue (feature `sqs`) |
//! | [`handler`] | [`LambdaCell`]: the in-process entry point and the runtime loop, for every event kind |
//! | [`logging`] | structured JSON logs |
//!
//! ```
//! use paracell_aws::LambdaCell;
//! use paracell_domain::{Cell, CellConfig, TenantScope};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cell = LambdaCell::new(Cell::in_memory(CellConfig::new("cell-a", TenantScope::All).unwrap()));
//! let event = br#"{"version":"2.0","routeKey":"$default","rawPath":"/health","rawQueryString":"",
//!   "headers":{},"requestContext":{"http":{"method":"GET","path":"/health","protocol":"HTTP/1.1",
//!   "sourceIp":"127.0.0.1","userAgent":"curl"},"stage":"$default","requestId":"r","routeKey":"$default",
//!   "accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d","time":"t","timeEpoch":0},"isBase64Encoded":false}"#;
//! let response: serde_json::Value = serde_json::from_slice(&cell.invoke(event).await.unwrap()).unwrap();
//! assert_eq!(response["statusCode"], 200);
//! assert_eq!(response["body"], r#"{"status":"ok","cell":"cell-a"}"#);
//! # });
//! ```

#![deny(missing_docs)]

mod front_door;
pub mod function;
pub mod handler;
pub mod inbound;
pub mod logging;
pub mod outbound;

pub use front_door::{run, run_workload};
pub use handler::{LambdaCell, LambdaHttp};
pub use inbound::http::Source;
/// The error [`run`] ends with (the Lambda runtime's), so a `main` needs no `lambda_runtime` import.
pub use lambda_runtime::Error as LambdaError;
