//! What the benches share: the bench events and the requests built from them outside the timed
//! regions.

use paracell_azure::HostRequest;
use paracell_domain::http::ApiRequest;
use paracell_domain::{Cell, CellConfig, TenantScope};
use serde_json::Value;

/// `bench/events/{name}.json`, as text.
pub(crate) fn event(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../bench/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A cell on the in-memory store, serving every tenant.
pub(crate) fn cell() -> Cell {
    Cell::in_memory(CellConfig::new("cell-bench", TenantScope::All).unwrap())
}

/// The neutral request of a `*-direct` event.
pub(crate) fn direct_request(template: &str) -> ApiRequest {
    let v: Value = serde_json::from_str(template).unwrap();
    ApiRequest {
        method: v["method"].as_str().unwrap().into(),
        path: v["path"].as_str().unwrap().into(),
        query: String::new(),
        headers: v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        body: v["body"].as_str().unwrap().as_bytes().to_vec(),
        authenticated_tenant: None,
    }
}

/// The host's request of an `*-azure-payload` event.
pub(crate) fn host_request(text: &str) -> HostRequest {
    let v: Value = serde_json::from_str(text).unwrap();
    let mut r = HostRequest::new(v["method"].as_str().unwrap(), v["path"].as_str().unwrap());
    for p in v["headers"].as_array().unwrap() {
        r = r.with_header(p[0].as_str().unwrap(), p[1].as_str().unwrap());
    }
    r.with_body(v["body"].as_str().unwrap().as_bytes().to_vec())
}
