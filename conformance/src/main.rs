//! `paracell-conformance`: runs conformance cases across every envelope of both clouds.
//!
//! ```text
//! paracell-conformance                      # the built-in corpus, in process, as a table
//! paracell-conformance run [--cases DIR]... [--envelopes LIST] [--binaries]
//!                          [--lambda-store memory|dynamodb] [--azure-store memory|cosmos]
//!                          [--format table|json|junit] [--out FILE]
//! paracell-conformance coverage [--cases DIR]...  # requirement → cases, as Markdown
//! paracell-conformance render CASE.json ENVELOPE    # what step 1 looks like on that envelope
//! paracell-conformance drill replication [--writes N] [--seed S] [--binaries]
//! paracell-conformance drill events [--writes N] [--seed S] [--binaries]
//! paracell-conformance drill failover [--schedules N] [--writes W] [--seed S]
//! paracell-conformance drill outage [--binaries [--scenarios 1,4,5]] [--seed S] [--json]   # a cloud, link or store fails under load: automatic failover
//! paracell-conformance drill trace [--seed S]     # one trace id from an AWS create to its Azure replica
//! ```
//! Exit status 0 only when every case passes; 2 on usage or set-up errors.

use paracell_conformance::{
    Backend, Envelope, Suite,
    binaries::{Binaries, Store},
    report,
};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: paracell-conformance [run [--cases DIR]... [--envelopes LIST] [--binaries [--lambda-store memory|dynamodb] [--azure-store memory|cosmos]] [--format table|json|junit] [--out FILE]]\n       paracell-conformance coverage [--cases DIR]...";

struct Options {
    coverage: bool,
    cases: Vec<PathBuf>,
    envelopes: Vec<Envelope>,
    binaries: bool,
    lambda_store: Store,
    azure_store: Store,
    format: String,
    out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        coverage: false,
        cases: Vec::new(),
        envelopes: Envelope::ALL.to_vec(),
        binaries: false,
        lambda_store: Store::Memory,
        azure_store: Store::Memory,
        format: "table".into(),
        out: None,
    };
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        None | Some("run") => {}
        Some("coverage") => options.coverage = true,
        Some("-h" | "--help" | "help") => return Err(USAGE.into()),
        Some(other) => return Err(format!("unknown command {other:?}\n{USAGE}")),
    }
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--cases" => options.cases.push(PathBuf::from(value("--cases")?)),
            "--envelopes" => {
                options.envelopes = value("--envelopes")?
                    .split(',')
                    .map(|n| {
                        Envelope::parse(n.trim()).ok_or_else(|| {
                            format!(
                                "unknown envelope {n:?}; known: {}",
                                Envelope::ALL.map(|e| e.name()).join(", ")
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--binaries" => options.binaries = true,
            "--lambda-store" | "--azure-store" => {
                let name = value(arg)?;
                let store = match (arg.as_str(), Store::parse(&name)) {
                    ("--lambda-store", Some(store @ (Store::Memory | Store::DynamoDb))) => store,
                    ("--azure-store", Some(store @ (Store::Memory | Store::Cosmos))) => store,
                    _ => {
                        return Err(format!(
                            "{arg} {name:?} is not a store for that binary\n{USAGE}"
                        ));
                    }
                };
                if arg == "--lambda-store" {
                    options.lambda_store = store;
                } else {
                    options.azure_store = store;
                }
            }
            "--format" => {
                options.format = value("--format")?;
                if !["table", "json", "junit"].contains(&options.format.as_str()) {
                    return Err(format!("--format must be table, json or junit\n{USAGE}"));
                }
            }
            "--out" => options.out = Some(PathBuf::from(value("--out")?)),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if !options.binaries
        && (options.lambda_store, options.azure_store) != (Store::Memory, Store::Memory)
    {
        return Err(format!(
            "--lambda-store and --azure-store need --binaries\n{USAGE}"
        ));
    }
    Ok(options)
}

/// Prints the platform's rendering of a case's first step: the Lambda event for AWS envelopes, the
/// host's request (method, path, headers, body) for Azure ones, the neutral request for `direct`.
fn render(args: &[String]) -> ExitCode {
    use paracell_conformance::envelopes::{aws, azure};
    let [file, envelope] = args else {
        eprintln!("usage: paracell-conformance render CASE.json ENVELOPE");
        return ExitCode::from(2);
    };
    let Some(envelope) = Envelope::parse(envelope) else {
        eprintln!(
            "unknown envelope {envelope:?}; known: {}",
            Envelope::ALL.map(|e| e.name()).join(", ")
        );
        return ExitCode::from(2);
    };
    let case = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| paracell_conformance::Case::parse(file, &t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(spec) = case.steps.iter().find_map(|s| s.request.as_ref()) else {
        eprintln!("{file}: no request step to render");
        return ExitCode::from(2);
    };
    let request =
        paracell_conformance::request::ClientRequest::from_spec(spec, &Default::default());
    let rendered = match envelope {
        Envelope::AzurePayload | Envelope::AzureForwarding => {
            let host = azure::host_request(envelope, &request, "bench-invocation");
            serde_json::json!({"method": host.method, "path": host.path, "headers": host.headers, "body": String::from_utf8_lossy(&host.body)})
        }
        Envelope::Direct => {
            serde_json::json!({"method": request.method, "path": request.path, "query": request.query, "headers": request.headers, "body": String::from_utf8_lossy(&request.body)})
        }
        _ => aws::event(envelope, &request),
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&rendered).unwrap_or_default()
    );
    ExitCode::SUCCESS
}

/// `drill trace [--seed S]`: prints the log lines that carry the client's trace id.
fn trace_drill(args: &[String]) -> ExitCode {
    let seed = match args {
        [] => 7,
        [flag, value] if flag == "--seed" && value.parse::<u64>().is_ok() => {
            value.parse().unwrap_or(7)
        }
        _ => {
            eprintln!("usage: paracell-conformance drill trace [--seed S]");
            return ExitCode::from(2);
        }
    };
    let run = paracell_conformance::drill::trace::run(seed);
    println!(
        "the log lines carrying trace id {} (client → AWS cell → relay → Azure standby):\n",
        run.trace_id
    );
    for line in &run.lines {
        println!("{line}");
    }
    println!();
    print!(
        "{}",
        run.report.render(
            "trace drill, in process: one create on an AWS cell, replicated to an Azure cell"
        )
    );
    if run.report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `drill replication|events [--writes N] [--seed S] [--binaries]`.
fn drill(args: &[String]) -> ExitCode {
    let usage =
        "usage: paracell-conformance drill replication|events [--writes N] [--seed S] [--binaries]";
    let Some((which, rest)) = args.split_first().map(|(d, r)| (d.as_str(), r)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    if which == "failover" {
        return failover_drill(rest);
    }
    if which == "trace" {
        return trace_drill(rest);
    }
    if which == "outage" {
        return outage_drill(rest);
    }
    if which != "replication" && which != "events" {
        eprintln!("unknown drill {which:?}\n{usage}");
        return ExitCode::from(2);
    }
    let mut options = paracell_conformance::drill::Options {
        writes: if which == "events" { 300 } else { 400 },
        seed: 7,
    };
    let mut binaries = false;
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        let mut number = || rest.next().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--writes" => match number() {
                Some(n) => options.writes = usize::try_from(n).unwrap_or(usize::MAX),
                None => {
                    eprintln!("--writes needs a number\n{usage}");
                    return ExitCode::from(2);
                }
            },
            "--seed" => match number() {
                Some(n) => options.seed = n,
                None => {
                    eprintln!("--seed needs a number\n{usage}");
                    return ExitCode::from(2);
                }
            },
            "--binaries" => binaries = true,
            other => {
                eprintln!("unknown option {other:?}\n{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let report = if binaries {
        #[cfg(feature = "drill-binaries")]
        {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            if which == "events" {
                paracell_conformance::drill::events_binaries::run(options, &workspace)
            } else {
                paracell_conformance::drill::replication_binaries::run(options, &workspace)
            }
        }
        #[cfg(not(feature = "drill-binaries"))]
        {
            eprintln!(
                "drill {which} --binaries needs the drill-binaries feature: cargo run -p paracell-conformance --release --features drill-binaries -- drill {which} --binaries"
            );
            return ExitCode::from(2);
        }
    } else if which == "events" {
        paracell_conformance::drill::events::run(options)
    } else {
        paracell_conformance::drill::replication::run(options)
    };
    let title = match (which, binaries) {
        ("events", true) => {
            "events drill: lambda-cell (DynamoDB, its stream) → EventBridge (moto) → SQS, azure-cell (Cosmos DB) → Event Grid stand-in; both consumers"
        }
        ("events", false) => {
            "events drill, in process: the same workload on an AWS and an Azure cell, relayed through their adapters to EventBridge and Event Grid models"
        }
        (_, true) => {
            "replication drill: lambda-cell (DynamoDB, its stream) ⇄ azure-cell (Cosmos DB)"
        }
        _ => "replication drill, in process: an AWS cell ⇄ an Azure cell, through their adapters",
    };
    print!("{}", report.render(title));
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `drill outage [--seed S] [--json]`.
fn outage_drill(args: &[String]) -> ExitCode {
    let usage = "usage: paracell-conformance drill outage [--seed S] [--json]\n       paracell-conformance drill outage --binaries [--scenarios 1,4,5] [--lease-secs L] [--seed S] [--json]";
    let mut seed = 1;
    let mut json = false;
    let mut binaries = false;
    let mut scenarios: Option<String> = None;
    let mut lease_secs: Option<u64> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--binaries" => binaries = true,
            "--lease-secs" => match args.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(l) if l >= 6 => lease_secs = Some(l),
                _ => {
                    eprintln!("--lease-secs needs a number of seconds, at least 6\n{usage}");
                    return ExitCode::from(2);
                }
            },
            "--scenarios" => match args.next() {
                Some(list) => scenarios = Some(list.clone()),
                None => {
                    eprintln!("--scenarios needs a list (1,4,5)\n{usage}");
                    return ExitCode::from(2);
                }
            },
            "--seed" => match args.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(s) => seed = s,
                None => {
                    eprintln!("--seed needs a number\n{usage}");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("unknown option {other:?}\n{usage}");
                return ExitCode::from(2);
            }
        }
    }
    if (scenarios.is_some() || lease_secs.is_some()) && !binaries {
        eprintln!(
            "--scenarios and --lease-secs are the binaries' drill's: add --binaries\n{usage}"
        );
        return ExitCode::from(2);
    }
    let (report, rows, title) = if binaries {
        match outage_binaries(seed, scenarios.as_deref(), lease_secs, usage) {
            Ok(done) => done,
            Err(code) => return code,
        }
    } else {
        let (report, rows) = paracell_conformance::drill::outage::run(
            paracell_conformance::drill::outage::OutageOptions { seed },
        );
        (
            report,
            rows,
            "outage drill, in process: a tenant's home cloud, the witness or the link between the clouds fails under a client that never stops; cells under cell leases from the quorum, controllers in three domains",
        )
    };
    let text = report.render(title);
    if json {
        // One JSON document, then the closing count line.
        let rows: Vec<_> = rows.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::json!({ "scenarios": rows }));
        println!("{}", text.lines().last().unwrap_or_default());
    } else {
        print!("{text}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type OutageRun = (
    paracell_conformance::drill::DrillReport,
    Vec<paracell_conformance::drill::outage::Row>,
    &'static str,
);

/// `drill outage --binaries [--scenarios 1,4,5]`.
fn outage_binaries(
    seed: u64,
    scenarios: Option<&str>,
    lease_secs: Option<u64>,
    usage: &str,
) -> Result<OutageRun, ExitCode> {
    #[cfg(feature = "drill-binaries")]
    {
        use paracell_conformance::drill::outage_binaries::{
            BinariesOptions, LEASE_SECS, Scenario, run,
        };
        let mut picked = Vec::new();
        for number in scenarios.unwrap_or("1,4,5").split(',') {
            match Scenario::parse(number.trim()) {
                Some(s) => picked.push(s),
                None => {
                    eprintln!(
                        "--scenarios: {number:?} is not one the binaries' drill runs (1, 4 or 5; the others run in process)\n{usage}"
                    );
                    return Err(ExitCode::from(2));
                }
            }
        }
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let options = BinariesOptions {
            seed,
            scenarios: picked,
            lease_secs: lease_secs.unwrap_or(LEASE_SECS),
        };
        let (report, rows) = run(&options, &workspace);
        Ok((
            report,
            rows,
            "outage drill through the binaries: lambda-cell and azure-cell under cell leases from the quorum on DynamoDB, Cosmos DB and the GCS witness, three paracell-admin watch controllers and the edge router, every link a fault proxy",
        ))
    }
    #[cfg(not(feature = "drill-binaries"))]
    {
        let _ = (seed, scenarios, lease_secs, usage);
        eprintln!(
            "drill outage --binaries needs the drill-binaries feature: cargo run -p paracell-conformance --features drill-binaries -- drill outage --binaries (under scripts/dev-services.sh)"
        );
        Err(ExitCode::from(2))
    }
}

/// `drill failover [--schedules N] [--writes W] [--seed S]`.
fn failover_drill(args: &[String]) -> ExitCode {
    let usage = "usage: paracell-conformance drill failover [--schedules N] [--writes W] [--seed S]\n       paracell-conformance drill failover --binaries [--writes W] [--seed S]";
    if args.iter().any(|a| a == "--binaries") {
        return failover_binaries(args, usage);
    }
    let mut options = paracell_conformance::drill::failover::FailoverOptions {
        schedules: 200,
        writes: 40,
        seed: 1,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        let Some(value) = value else {
            eprintln!("{arg} needs a number\n{usage}");
            return ExitCode::from(2);
        };
        match arg.as_str() {
            "--schedules" => options.schedules = usize::try_from(value).unwrap_or(usize::MAX),
            "--writes" => options.writes = usize::try_from(value).unwrap_or(usize::MAX),
            "--seed" => options.seed = value,
            other => {
                eprintln!("unknown option {other:?}\n{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let report = paracell_conformance::drill::failover::run(options);
    print!(
        "{}",
        report.render(
            "failover harness, in process: one tenant on an AWS and an Azure cell, replicating both ways, moved back and forth under load"
        )
    );
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `drill failover --binaries [--writes W] [--seed S]`.
fn failover_binaries(args: &[String], usage: &str) -> ExitCode {
    let mut options = paracell_conformance::drill::Options {
        writes: 300,
        seed: 7,
    };
    let mut args = args.iter().filter(|a| *a != "--binaries");
    while let Some(arg) = args.next() {
        let Some(value) = args.next().and_then(|v| v.parse::<u64>().ok()) else {
            eprintln!("{arg} needs a number\n{usage}");
            return ExitCode::from(2);
        };
        match arg.as_str() {
            "--writes" => options.writes = usize::try_from(value).unwrap_or(usize::MAX),
            "--seed" => options.seed = value,
            other => {
                eprintln!("unknown option {other:?}\n{usage}");
                return ExitCode::from(2);
            }
        }
    }
    #[cfg(feature = "drill-binaries")]
    {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let report = paracell_conformance::drill::failover_binaries::run(options, &workspace);
        print!(
            "{}",
            report.render(
                "migration drill: a tenant moved lambda-cell (DynamoDB) → azure-cell (Cosmos DB) → lambda-cell, then failed over to azure-cell, under a client that never stops"
            )
        );
        if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
    #[cfg(not(feature = "drill-binaries"))]
    {
        let _ = options;
        eprintln!(
            "drill failover --binaries needs the drill-binaries feature: cargo run -p paracell-conformance --release --features drill-binaries -- drill failover --binaries"
        );
        ExitCode::from(2)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("render") {
        return render(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("drill") {
        return drill(&args[1..]);
    }
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut suite = if options.cases.is_empty() {
        match Suite::built_in() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("built-in corpus: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut all = Suite {
            cases: Vec::new(),
            envelopes: Vec::new(),
        };
        for dir in &options.cases {
            match Suite::from_dir(dir) {
                Ok(s) => all.cases.extend(s.cases),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
        }
        all
    };
    if options.coverage {
        print!("{}", paracell_conformance::coverage::table(&suite.cases));
        let uncovered = paracell_conformance::coverage::coverage(&suite.cases)
            .iter()
            .filter(|(_, ids)| ids.is_empty())
            .count();
        println!("\n{uncovered} requirements without a case");
        return if uncovered == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    suite.envelopes = options.envelopes.clone();
    let backend = if options.binaries {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        match Binaries::start(workspace) {
            Ok(b) => Backend::Binaries(b.with_stores(options.lambda_store, options.azure_store)),
            Err(e) => {
                eprintln!("--binaries: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Backend::in_process()
    };
    let started = std::time::Instant::now();
    let reports = suite.run(&backend);
    let rendered = match options.format.as_str() {
        "json" => report::json(&reports),
        "junit" => report::junit(&reports),
        _ => report::table(&reports, &options.envelopes),
    };
    match &options.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &rendered) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
            println!("{}", report::summary(&reports));
        }
        None => print!("{rendered}"),
    }
    eprintln!(
        "({} cases × {} envelopes in {:.2?})",
        reports.len(),
        options.envelopes.len(),
        started.elapsed()
    );
    // In process, the same corpus again with every envelope's cell behind the edge router, and the
    // routing vectors through every host of the router.
    let edge_passed = options.binaries || edge(&suite);
    if reports.iter().all(|r| r.passed()) && edge_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The edge router's lane and vectors; prints a summary and every failure, returns whether all passed.
fn edge(suite: &Suite) -> bool {
    use paracell_conformance::edge::vectors;
    let started = std::time::Instant::now();
    let lane = suite.run(&Backend::behind_edge());
    let not_applicable = lane
        .iter()
        .filter(|r| {
            r.outcomes
                .values()
                .all(|o| matches!(o, paracell_conformance::Outcome::NotApplicable(_)))
        })
        .count();
    let vectors = match vectors::built_in() {
        Ok(v) => v,
        Err(e) => {
            println!("edge router: {e}");
            return false;
        }
    };
    let results = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(vectors::run_all(&vectors)),
        Err(e) => {
            println!("edge router: cannot start a runtime: {e}");
            return false;
        }
    };
    let mut ok = true;
    for report in lane.iter().filter(|r| !r.passed()) {
        ok = false;
        for failure in &report.failures {
            println!("edge lane {}: {failure}", report.id);
        }
    }
    for result in results.iter().filter(|r| !r.failures.is_empty()) {
        ok = false;
        for failure in &result.failures {
            println!("edge vector {} on {}: {failure}", result.id, result.host);
        }
    }
    let passed_vectors = results.iter().filter(|r| r.failures.is_empty()).count();
    println!(
        "through the edge router: {} ({not_applicable} replication cases n/a: they go cell to cell); routing vectors: {passed_vectors}/{} passed ({} vectors × 4 hosts)",
        report::summary(&lane),
        results.len(),
        vectors.len()
    );
    eprintln!("(edge lane and vectors in {:.2?})", started.elapsed());
    ok
}
