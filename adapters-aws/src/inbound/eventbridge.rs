//! What an EventBridge rule's target receives: the envelope `{version, id, detail-type, source,
//! account, time, region, resources, detail}` with the `TransactionAccepted` CloudEvent as `detail`
//! (an object: EventBridge re-serialises it). A consumer Lambda reads it back here, every field
//! through the domain's own parser; `TransactionAccepted::document` gives the original bytes.
//!
//! The envelope's `id` and `time` are EventBridge's, not the event's: consumers deduplicate on the
//! CloudEvent's `source` and `id` ([`TransactionAccepted::dedupe_key`]).

use paracell_domain::events::{TRANSACTION_ACCEPTED, TransactionAccepted};
use serde_json::Value;

/// The CloudEvent an EventBridge delivery carries, checked against the envelope's `source` and
/// `detail-type`.
///
/// ```
/// use paracell_aws::inbound::eventbridge::accepted_event;
/// let entry = paracell_domain::testing::sample_entry();
/// let detail: serde_json::Value = serde_json::from_str(&entry.event().unwrap()).unwrap();
/// let envelope = serde_json::json!({"version": "0", "id": "eb-1", "detail-type": detail["type"],
///     "source": detail["source"], "account": "1", "time": "2026-01-01T00:00:00Z",
///     "region": "eu-west-1", "resources": [], "detail": detail});
/// let event = accepted_event(&envelope).unwrap();
/// assert_eq!(event.document(), entry.event().unwrap().as_ref());
/// ```
pub fn accepted_event(envelope: &Value) -> Result<TransactionAccepted, String> {
    let field = |name: &str| envelope.get(name).and_then(Value::as_str);
    if field("detail-type") != Some(TRANSACTION_ACCEPTED) {
        return Err(format!(
            "not a {TRANSACTION_ACCEPTED} delivery (detail-type {:?})",
            field("detail-type")
        ));
    }
    let detail = envelope
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("the delivery has no detail object")?;
    let event = TransactionAccepted::parse(&detail.to_string()).map_err(|e| e.to_string())?;
    if field("source") != detail.get("source").and_then(Value::as_str) {
        return Err("the envelope's source is not the CloudEvent's".into());
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_deliveries_are_refused_with_a_reason() {
        let scheduled = serde_json::json!({"version": "0", "detail-type": "Scheduled Event",
            "source": "aws.events", "detail": {}});
        assert!(
            accepted_event(&scheduled)
                .unwrap_err()
                .contains("Scheduled Event")
        );
        let entry = paracell_domain::testing::sample_entry();
        let mut detail: Value = serde_json::from_str(&entry.event().unwrap()).unwrap();
        let envelope = |detail: &Value, source: &str| serde_json::json!({"detail-type": TRANSACTION_ACCEPTED, "source": source, "detail": detail});
        let source = detail["source"].as_str().unwrap().to_owned();
        assert!(accepted_event(&envelope(&detail, &source)).is_ok());
        assert!(accepted_event(&envelope(&detail, "/cells/other")).is_err());
        detail["tenantseq"] = 0.into();
        assert!(
            accepted_event(&envelope(&detail, &source))
                .unwrap_err()
                .contains("tenantseq")
        );
    }

    #[test]
    fn upstream_eventbridge_samples_are_not_taken_for_ours() {
        let Some(dir) = paracell_domain::testing::shared_fixtures("events-upstream") else {
            return; // The shared fixtures are optional; CI sets them.
        };
        for name in [
            "aws-eventbridge.json",
            "aws-eventbridge-schedule.json",
            "aws-eventbridge-replay.json",
        ] {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let envelope: Value = serde_json::from_str(&text).unwrap();
            assert!(accepted_event(&envelope).is_err(), "{name}");
        }
    }
}
