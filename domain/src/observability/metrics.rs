//! The metrics, one list for both clouds: on Lambda each request becomes one CloudWatch Embedded
//! Metric Format line (`paracell_aws::logging`), on Azure one structured event per sample that the
//! Functions host forwards to Application Insights (`paracell_azure::logging`). The names, units and
//! dimensions below are the only ones either emits, so one dashboard reads both.
//!
//! ```
//! use paracell_domain::observability::metrics::{self, request_samples};
//! use paracell_domain::http::{Problem, ProblemType};
//! let response = Problem::new(ProblemType::StoreUnavailable).into_response();
//! let samples = request_samples("cell-a", &response, std::time::Duration::from_micros(1500));
//! let names: Vec<&str> = samples.iter().map(|s| s.metric.name).collect();
//! assert_eq!(names, ["requests", "latency", "errors"]);
//! assert_eq!(samples[2].dimension("problem"), Some("store-unavailable"));
//! assert!(metrics::ALL.iter().all(|m| !m.dimensions.is_empty()));
//! ```

use crate::http::ApiResponse;
use crate::replication::relay::RelayReport;
use std::time::Duration;

/// The CloudWatch namespace (and the Application Insights event name prefix).
pub const NAMESPACE: &str = "Paracell";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Microseconds.
    Microseconds,
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    /// `Count`, `Microseconds` or `Milliseconds`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Microseconds => "Microseconds",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric: its name, unit, dimensions and meaning.
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    /// The name.
    pub name: &'static str,
    /// The unit.
    pub unit: Unit,
    /// Its dimensions, in order (`service` is the cell's or router's id).
    pub dimensions: &'static [&'static str],
    /// What it counts.
    pub meaning: &'static str,
}

/// Requests answered, by route and status class.
pub const REQUESTS: Metric = Metric {
    name: "requests",
    unit: Unit::Count,
    dimensions: &["service", "route", "status_class"],
    meaning: "requests answered (every outcome is an answer)",
};
/// Time to answer, by route.
pub const LATENCY: Metric = Metric {
    name: "latency",
    unit: Unit::Microseconds,
    dimensions: &["service", "route"],
    meaning: "from the request reaching the adapter to its answer",
};
/// Problem answers, by problem type.
pub const ERRORS: Metric = Metric {
    name: "errors",
    unit: Unit::Count,
    dimensions: &["service", "problem"],
    meaning: "problem answers (4xx and 5xx), by their slug",
};
/// Replication entries delivered to every destination (or dead-lettered) by a relay run.
pub const RELAYED: Metric = Metric {
    name: "replication_relayed",
    unit: Unit::Count,
    dimensions: &["service"],
    meaning: "entries a relay run finished (delivered everywhere or dead-lettered)",
};
/// Replication entries dead-lettered by a relay run.
pub const DEAD_LETTERED: Metric = Metric {
    name: "replication_dead_lettered",
    unit: Unit::Count,
    dimensions: &["service"],
    meaning: "deliveries a relay run dead-lettered (replayable with paracell-admin)",
};
/// Replication entries a relay run could not even dead-letter: relayed again later.
pub const RELAY_FAILED: Metric = Metric {
    name: "replication_failed",
    unit: Unit::Count,
    dimensions: &["service"],
    meaning: "entries a relay run could neither deliver nor dead-letter (retried)",
};
/// Deliveries a relay run could not make because the destination refused its credentials.
pub const RELAY_UNAUTHORIZED: Metric = Metric {
    name: "replication_unauthorized",
    unit: Unit::Count,
    dimensions: &["service"],
    meaning: "deliveries refused for the relay's credentials (401/403): a configuration fault; the entries stay pending — alarm on any",
};

/// Store operations a request made (each one database round trip on DynamoDB and Cosmos DB; see
/// [`crate::observability::store_requests`]).
pub const STORE_REQUESTS: Metric = Metric {
    name: "store_requests",
    unit: Unit::Count,
    dimensions: &["service", "route"],
    meaning: "store operations a request made (database round trips)",
};
/// How far behind its primary a relay run delivered.
pub const REPLICATION_LAG: Metric = Metric {
    name: "replication_lag",
    unit: Unit::Milliseconds,
    dimensions: &["service"],
    meaning: "per relay run: the oldest relayed entry's age from its commit to its delivery",
};

/// Every metric, for documentation checks.
pub const ALL: [&Metric; 9] = [
    &REQUESTS,
    &LATENCY,
    &ERRORS,
    &STORE_REQUESTS,
    &RELAYED,
    &DEAD_LETTERED,
    &RELAY_FAILED,
    &RELAY_UNAUTHORIZED,
    &REPLICATION_LAG,
];

/// One value of one metric, with its dimensions' values (in the metric's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The metric.
    pub metric: &'static Metric,
    /// The value.
    pub value: u64,
    /// The dimensions' values, in [`Metric::dimensions`] order.
    pub values: Vec<String>,
}

impl Sample {
    /// A dimension's value.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.metric
            .dimensions
            .iter()
            .position(|d| *d == name)
            .and_then(|i| self.values.get(i))
            .map(String::as_str)
    }
}

/// The samples of one answered request.
pub fn request_samples(service: &str, response: &ApiResponse, latency: Duration) -> Vec<Sample> {
    let route = if response.telemetry.route.is_empty() {
        "unknown"
    } else {
        response.telemetry.route
    };
    let class = match response.status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let mut samples = vec![
        Sample {
            metric: &REQUESTS,
            value: 1,
            values: vec![service.to_owned(), route.to_owned(), class.to_owned()],
        },
        Sample {
            metric: &LATENCY,
            value: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            values: vec![service.to_owned(), route.to_owned()],
        },
    ];
    if let Some(problem) = response.telemetry.problem {
        samples.push(Sample {
            metric: &ERRORS,
            value: 1,
            values: vec![service.to_owned(), problem.to_owned()],
        });
    }
    if let Some(calls) = response.telemetry.store_requests {
        samples.push(Sample {
            metric: &STORE_REQUESTS,
            value: u64::from(calls),
            values: vec![service.to_owned(), route.to_owned()],
        });
    }
    samples
}

/// The samples of one relay run.
pub fn relay_samples(service: &str, report: &RelayReport) -> Vec<Sample> {
    [
        (&RELAYED, report.relayed.len()),
        (&DEAD_LETTERED, report.dead_lettered),
        (&RELAY_FAILED, report.failed.len()),
        (&RELAY_UNAUTHORIZED, report.unauthorized),
    ]
    .into_iter()
    .map(|(metric, value)| (metric, value as u64))
    .chain(report.lag_millis.map(|lag| (&REPLICATION_LAG, lag)))
    .map(|(metric, value)| Sample {
        metric,
        value,
        values: vec![service.to_owned()],
    })
    .collect()
}
