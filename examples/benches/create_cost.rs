//! Two measurements criterion does not make:
//!
//! - `--instructions PATH N`: runs N creates through one path (`direct`, `aws-rest-v1`,
//!   `aws-http-v2`, `aws-alb`, `azure-payload`) after a warm-up, for instruction counts under
//!   callgrind (`bench/instructions.sh` runs it twice and takes the difference per create, so set-up
//!   cancels out).
//! - `--growth MAX`: the in-memory store's create cost as it grows: the mean time of 2,000 creates
//!   (direct path, one tenant and account) after the store holds 1,000, 10,000, 100,000, ... up to
//!   MAX transactions.
//!
//! `cargo bench -p paracell-examples --bench create_cost -- --growth 1000000`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic,
    missing_docs
)]

mod support;

use paracell_aws::LambdaCell;
use paracell_azure::{AzureConfig, AzureHandler};
use paracell_domain::http::ApiRequest;
use paracell_domain::testing::block_on;
use std::time::Instant;
use support::{cell, direct_request as direct, event, host_request as host};

/// Runs `n` creates (fresh keys `{prefix}-{i}`) through `path`; returns how many answered 201.
fn creates(rt: &tokio::runtime::Runtime, path: &str, prefix: &str, n: usize) -> usize {
    let file = match path {
        "direct" => "direct",
        "aws-rest-v1" => "aws-apigw-v1",
        "aws-http-v2" => "aws-apigw-v2",
        "aws-alb" => "aws-alb",
        "azure-payload" => "azure-payload",
        other => panic!("unknown path {other}"),
    };
    let template = event(&format!("create-{file}"));
    let (lambda, azure, direct_cell) = (
        LambdaCell::new(cell()),
        AzureHandler::new(cell(), AzureConfig::default()),
        cell(),
    );
    let mut booked = 0;
    for i in 0..n {
        let text = template.replace("IDEM-KEY-PLACEHOLDER", &format!("{prefix}-{i}"));
        let created = match path {
            "direct" => block_on(direct_cell.handle(direct(&text))).status == 201,
            "azure-payload" => {
                let out = rt.block_on(azure.invoke(host(&text)));
                String::from_utf8_lossy(&out.body).contains("\"statusCode\":201")
                    || String::from_utf8_lossy(&out.body).contains("\"statusCode\":\"201\"")
            }
            _ => {
                let out = rt.block_on(lambda.invoke(text.as_bytes())).unwrap();
                String::from_utf8_lossy(&out).contains("\"statusCode\":201")
            }
        };
        booked += usize::from(created);
    }
    booked
}

fn growth(max: usize) {
    let cell = cell();
    let template = event("create-direct");
    let mut held = 0usize;
    let mut next = 1_000usize;
    println!("| transactions held | mean create (2,000 creates) |");
    println!("|---|---|");
    while next <= max {
        while held < next {
            let text = template.replace("IDEM-KEY-PLACEHOLDER", &format!("fill-{held}"));
            assert_eq!(block_on(cell.handle(direct(&text))).status, 201);
            held += 1;
        }
        let requests: Vec<ApiRequest> = (0..2_000)
            .map(|i| direct(&template.replace("IDEM-KEY-PLACEHOLDER", &format!("m-{held}-{i}"))))
            .collect();
        let started = Instant::now();
        for request in requests {
            assert_eq!(block_on(cell.handle(request)).status, 201);
        }
        held += 2_000;
        let mean = started.elapsed().as_secs_f64() / 2_000.0 * 1e6;
        println!("| {next} | {mean:.2} µs |");
        next *= 10;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args.get(i + 1).cloned().unwrap_or_default())
    };
    if let Some(max) = arg("--growth") {
        growth(max.parse().expect("--growth MAX"));
    } else if let Some(path) = arg("--instructions") {
        let n: usize = args
            .iter()
            .position(|a| a == "--instructions")
            .and_then(|i| args.get(i + 2))
            .and_then(|n| n.parse().ok())
            .expect("--instructions PATH N");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Warm-up outside the measured difference: the same count either way.
        let booked = creates(&rt, &path, "k", n);
        assert_eq!(booked, n, "every create is booked");
        println!("{path}: {n} creates");
    } else if args.iter().any(|a| a == "--bench" || a == "--test") {
        // `cargo bench` without arguments (the smoke check): a short growth run.
        growth(10_000);
    }
}
