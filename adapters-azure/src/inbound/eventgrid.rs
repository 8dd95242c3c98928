//! What an Event Grid trigger hands the custom handler: in payload mode, `POST /<function>` with the
//! event under the binding's name in `Data` — the CloudEvent as a JSON object, or with
//! `"cardinality": "many"` a JSON string holding the array of events (the host encodes string-typed
//! bindings once more; `shared/notes/events.md` §3.2). A consumer function reads each
//! `TransactionAccepted` back here, every field through the domain's own parser.
//!
//! Event Grid delivers at least once and in no order: consumers deduplicate on
//! [`TransactionAccepted::dedupe_key`] and order by `tenantseq` / `balanceversion`.

use super::trigger::decode_binding;
use paracell_domain::events::TransactionAccepted;
use serde_json::Value;

/// The events of an Event Grid trigger invocation's `Data` (the first binding holding an event or an
/// array of events), each parsed; one error for the first unreadable one.
///
/// ```
/// use paracell_azure::inbound::eventgrid::accepted_events;
/// let entry = paracell_domain::testing::sample_entry();
/// let event: serde_json::Value = serde_json::from_str(&entry.event().unwrap()).unwrap();
/// let one = accepted_events(&serde_json::json!({"event": event.clone()})).unwrap();
/// let many = accepted_events(&serde_json::json!({"events": serde_json::json!([event]).to_string()})).unwrap();
/// assert_eq!(one, many);
/// assert_eq!(one[0].document(), entry.event().unwrap().as_ref());
/// ```
pub fn accepted_events(data: &Value) -> Result<Vec<TransactionAccepted>, String> {
    let bindings = data.as_object().ok_or("Data is not an object")?;
    let value = bindings
        .values()
        .next()
        .ok_or("Data holds no binding")
        .and_then(|v| decode_binding(v).map_err(|_| "the binding is not JSON"))?;
    let events = match value {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => return Err("the binding holds neither an event nor an array of events".into()),
    };
    events
        .iter()
        .map(|e| TransactionAccepted::parse(&e.to_string()).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_foreign_events_are_refused_with_a_reason() {
        assert!(accepted_events(&serde_json::json!([])).is_err());
        assert!(accepted_events(&serde_json::json!({})).is_err());
        assert!(accepted_events(&serde_json::json!({"e": 3})).is_err());
        let foreign = serde_json::json!({"e": {"specversion": "1.0", "id": "1", "source": "/x",
            "type": "Microsoft.Storage.BlobCreated", "data": {}}});
        assert!(accepted_events(&foreign).is_err());
    }

    #[test]
    fn upstream_event_grid_samples_are_not_taken_for_ours() {
        let Some(dir) = paracell_domain::testing::shared_fixtures("events-upstream") else {
            return; // The shared fixtures are optional; CI sets them.
        };
        for name in [
            "azure-eventgrid-cloudevent.json",
            "azure-eventgrid-event-eventgrid-schema.json",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let event: Value = serde_json::from_str(&text).unwrap();
            assert!(
                accepted_events(&serde_json::json!({ "event": event })).is_err(),
                "{name}"
            );
        }
    }
}
