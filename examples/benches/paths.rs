//! In-process cost per request of every path, and of its floor (parsing the same event into
//! `serde_json::Value` and serialising the same response: the work nobody can avoid).
//!
//! `cargo bench -p paracell-examples --bench paths` (or `bench/run.sh`). Events are
//! `bench/events/*.json`, rendered by the conformance suite's envelope models.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use paracell_aws::{LambdaCell, LambdaHttp};
use paracell_azure::{AzureConfig, AzureHandler, HostRequest};
use paracell_domain::Cell;
use paracell_domain::http::{ApiRequest, Workload};
use serde_json::Value;
use std::cell::Cell as Counter;
use std::sync::Arc;
use std::time::Duration;
use support::{cell, direct_request, event, host_request};

/// One path: how to run raw input bytes, and what the floor parses.
enum Path {
    Direct(Cell),
    Lambda(LambdaCell),
    LambdaHttp(LambdaHttp),
    Azure(AzureHandler),
}

/// A path's input, built outside the timed region.
enum Input {
    Api(ApiRequest),
    Bytes(Vec<u8>),
    Host(HostRequest),
}

impl Path {
    fn prepare(&self, text: &str) -> Input {
        match self {
            Self::Direct(_) => Input::Api(direct_request(text)),
            Self::Lambda(_) | Self::LambdaHttp(_) => Input::Bytes(text.as_bytes().to_vec()),
            Self::Azure(_) => Input::Host(host_request(text)),
        }
    }

    fn call(&self, rt: &tokio::runtime::Runtime, input: Input) -> Vec<u8> {
        match (self, input) {
            (Self::Direct(cell), Input::Api(request)) => {
                paracell_domain::testing::block_on(cell.handle(request)).body
            }
            (Self::Lambda(lambda), Input::Bytes(event)) => {
                rt.block_on(lambda.invoke(&event)).unwrap()
            }
            (Self::LambdaHttp(lambda), Input::Bytes(event)) => {
                rt.block_on(lambda.invoke(&event)).unwrap()
            }
            (Self::Azure(azure), Input::Host(request)) => rt.block_on(azure.invoke(request)).body,
            _ => unreachable!("inputs are prepared by their own path"),
        }
    }

    fn run(&self, rt: &tokio::runtime::Runtime, text: &str) -> Vec<u8> {
        self.call(rt, self.prepare(text))
    }
}

/// The ledger written as a team would write a workload of its own: a `tower::Service` over `http`
/// types (here converting to the cell's neutral request by hand), served through the workload door
/// (`paracell_aws::run`'s path). Against `aws-http-v2` it shows what the neutral fast path buys.
fn ledger_as_workload() -> LambdaHttp {
    let cell = cell();
    let service = tower::service_fn(move |request: http::Request<Full<Bytes>>| {
        let cell = cell.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let mut api = ApiRequest::new(parts.method.as_str(), parts.uri.path())
                .with_query(parts.uri.query().unwrap_or_default())
                .with_body(body);
            for (name, value) in &parts.headers {
                api = api.with_header(name.as_str(), value.to_str().unwrap_or_default());
            }
            let answer = cell.handle(api).await;
            let mut response = http::Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                response = response.header(name.as_str(), value.as_str());
            }
            response.body(Full::new(Bytes::from(answer.body)))
        }
    });
    LambdaHttp::new(Arc::new(Workload::new("ledger-workload", service)))
}

fn paths() -> Vec<(&'static str, &'static str, Path)> {
    vec![
        ("direct", "direct", Path::Direct(cell())),
        (
            "aws-rest-v1",
            "aws-apigw-v1",
            Path::Lambda(LambdaCell::new(cell())),
        ),
        (
            "aws-http-v2",
            "aws-apigw-v2",
            Path::Lambda(LambdaCell::new(cell())),
        ),
        ("aws-alb", "aws-alb", Path::Lambda(LambdaCell::new(cell()))),
        (
            "aws-http-v2-workload",
            "aws-apigw-v2",
            Path::LambdaHttp(ledger_as_workload()),
        ),
        (
            "azure-payload",
            "azure-payload",
            Path::Azure(AzureHandler::new(cell(), AzureConfig::default())),
        ),
    ]
}

/// The floor's input: the whole event for the platforms; the request body for the domain alone.
fn floor_input(name: &str, text: &str) -> Vec<u8> {
    if name == "direct" {
        serde_json::from_str::<Value>(text).unwrap()["body"]
            .as_str()
            .unwrap()
            .as_bytes()
            .to_vec()
    } else {
        text.as_bytes().to_vec()
    }
}

fn floor(input: &[u8], response: &Value) -> Vec<u8> {
    let parsed: Value = serde_json::from_slice(input).unwrap_or(Value::Null);
    std::hint::black_box(parsed);
    serde_json::to_vec(response).unwrap()
}

fn create(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("create");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    for (name, file, path) in paths() {
        let template = event(&format!("create-{file}"));
        let n = Counter::new(0u64);
        let next = || {
            n.set(n.get() + 1);
            template.replace("IDEM-KEY-PLACEHOLDER", &format!("k-{}", n.get()))
        };
        let response: Value =
            serde_json::from_slice(&path.run(&rt, &next())).unwrap_or(Value::Null);
        group.bench_function(name, |b| {
            b.iter_batched(
                || path.prepare(&next()),
                |input| path.call(&rt, input),
                BatchSize::SmallInput,
            )
        });
        let input = floor_input(name, &next());
        group.bench_function(format!("{name}-floor"), |b| {
            b.iter(|| floor(&input, &response))
        });
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("get");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    for (name, file, path) in paths() {
        // Create the transaction the GETs read, through the same path.
        let created = path.run(
            &rt,
            &event(&format!("create-{file}")).replace("IDEM-KEY-PLACEHOLDER", "seed"),
        );
        let created: Value = serde_json::from_slice(&created).unwrap();
        let body = match name {
            "direct" => created,
            "azure-payload" => {
                serde_json::from_str(created["Outputs"]["res"]["body"].as_str().unwrap()).unwrap()
            }
            _ => serde_json::from_str(created["body"].as_str().unwrap()).unwrap(),
        };
        let id = body["transaction_id"].as_str().unwrap().to_owned();
        let input = event(&format!("get-{file}")).replace("TX-ID-PLACEHOLDER", &id);
        let out = path.run(&rt, &input);
        assert!(
            String::from_utf8_lossy(&out).contains(&id),
            "{name}: the GET did not find the transaction"
        );
        let response: Value = serde_json::from_slice(&out).unwrap();
        group.bench_function(name, |b| {
            b.iter_batched(
                || path.prepare(&input),
                |prepared| path.call(&rt, prepared),
                BatchSize::SmallInput,
            )
        });
        let floor_in = floor_input(name, &input);
        group.bench_function(format!("{name}-floor"), |b| {
            b.iter(|| floor(&floor_in, &response))
        });
    }
    group.finish();
}

criterion_group!(benches, create, get);
criterion_main!(benches);
