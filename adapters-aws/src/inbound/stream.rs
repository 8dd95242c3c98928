//! DynamoDB Streams → the relay: which records of a stream event are entries to relay, and the
//! partial-batch answer Lambda expects (`ReportBatchItemFailures`).
//!
//! Relayed: `INSERT` records of entry items (`sk` `SEQ#…`) that carry `outbox = "pending"` (entries
//! committed here). Skipped: everything else, including the `MODIFY` a relay's own "mark relayed"
//! causes, entries a standby received, TTL deletes and other items. The event is read as plain JSON,
//! leniently: one odd record must not fail the batch before the handler runs (events.md, pitfall 6).

use paracell_domain::replication::SealedEntry;
use serde_json::Value;

/// One stream record, as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// `dynamodb.SequenceNumber`: what a partial-batch failure names.
    pub sequence_number: String,
    /// The entry to relay, `None` for a record that is not one, or why an entry item is unreadable.
    pub entry: Result<Option<SealedEntry>, String>,
}

/// Whether a Lambda event is a DynamoDB Streams event.
pub fn is_stream_event(event: &Value) -> bool {
    event["Records"][0]["eventSource"].as_str() == Some("aws:dynamodb")
}

/// The records of a stream event, in order.
///
/// ```
/// let sealed = paracell_domain::testing::sample_entry();
/// let event = serde_json::json!({"Records": [{"eventName": "INSERT", "eventSource": "aws:dynamodb",
///     "dynamodb": {"SequenceNumber": "100", "Keys": {"pk": {"S": "T#coop-1"}, "sk": {"S": "SEQ#00000000000000000001"}},
///     "NewImage": {"doc": {"S": sealed.document()}, "digest": {"S": sealed.digest().to_string()}, "outbox": {"S": "pending"}}}}]});
/// let records = paracell_aws::inbound::stream::records(&event);
/// assert_eq!(records[0].entry, Ok(Some(sealed)));
/// ```
pub fn records(event: &Value) -> Vec<StreamRecord> {
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| {
            let stream = &record["dynamodb"];
            StreamRecord {
                sequence_number: stream["SequenceNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                entry: entry_of(record),
            }
        })
        .collect()
}

fn entry_of(record: &Value) -> Result<Option<SealedEntry>, String> {
    let stream = &record["dynamodb"];
    let text = |image: &Value, name: &str| image[name]["S"].as_str().map(str::to_owned);
    let is_entry = text(&stream["Keys"], "sk").is_some_and(|sk| sk.starts_with("SEQ#"));
    let image = &stream["NewImage"];
    let pending = text(image, "outbox").as_deref() == Some("pending");
    if record["eventName"].as_str() != Some("INSERT") || !is_entry || !pending {
        return Ok(None);
    }
    let (Some(doc), Some(digest)) = (text(image, "doc"), text(image, "digest")) else {
        return Err(
            "an entry item without doc or digest (is the stream's view type NEW_IMAGE?)".into(),
        );
    };
    SealedEntry::open_checked(&doc, &digest)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The placement records of a stream event of the registry table (`INSERT` and `MODIFY` of
/// `P#…`/`PLACEMENT` items, read from `NewImage.doc`), in order, with their sequence numbers.
/// Other records are left out; an unreadable placement item is kept as an error (the batch stops
/// there and Lambda retries it, then sends it to the on-failure destination: never dropped).
///
/// ```
/// use paracell_domain::placement::registry::Placement;
/// use paracell_domain::{CellId, TenantId};
/// let p = Placement::new(TenantId::parse("coop-1").unwrap(), CellId::parse("a").unwrap(), 1, vec![]);
/// let event = serde_json::json!({"Records": [
///     {"eventName": "MODIFY", "eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": "7",
///      "Keys": {"pk": {"S": "P#coop-1"}, "sk": {"S": "PLACEMENT"}},
///      "NewImage": {"doc": {"S": p.render()}}}},
///     {"eventName": "REMOVE", "eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": "8",
///      "Keys": {"pk": {"S": "P#coop-1"}, "sk": {"S": "PLACEMENT"}}}}]});
/// let records = paracell_aws::inbound::stream::placement_records(&event);
/// assert_eq!(records, vec![("7".to_owned(), Ok(p))]);
/// ```
pub fn placement_records(
    event: &Value,
) -> Vec<(
    String,
    Result<paracell_domain::placement::registry::Placement, String>,
)> {
    event["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|record| {
            matches!(record["eventName"].as_str(), Some("INSERT" | "MODIFY"))
                && record["dynamodb"]["Keys"]["sk"]["S"].as_str() == Some("PLACEMENT")
        })
        .map(|record| {
            let stream = &record["dynamodb"];
            let placement = stream["NewImage"]["doc"]["S"]
                .as_str()
                .ok_or_else(|| {
                    "a placement item without doc (is the stream's view type NEW_IMAGE?)".to_owned()
                })
                .and_then(|doc| {
                    paracell_domain::placement::registry::Placement::parse(doc)
                        .map_err(|e| e.to_string())
                });
            (
                stream["SequenceNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                placement,
            )
        })
        .collect()
}

/// The answer to a stream batch: the first failed record (Lambda retries it and everything after it;
/// an empty list means the whole batch succeeded).
pub fn batch_response(first_failure: Option<&str>) -> Value {
    let failures: Vec<Value> = first_failure
        .into_iter()
        .map(|id| serde_json::json!({ "itemIdentifier": id }))
        .collect();
    serde_json::json!({ "batchItemFailures": failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, sk: &str, image: Value) -> Value {
        serde_json::json!({"eventName": name, "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": "7", "Keys": {"pk": {"S": "T#coop-1"}, "sk": {"S": sk}}, "NewImage": image}})
    }

    #[test]
    fn only_pending_entry_inserts_are_relayed() {
        let sealed = paracell_domain::testing::sample_entry();
        let image = serde_json::json!({"doc": {"S": sealed.document()}, "digest": {"S": sealed.digest().to_string()}});
        let mut pending = image.clone();
        pending["outbox"] = serde_json::json!({"S": "pending"});
        let event = serde_json::json!({"Records": [
            record("INSERT", "SEQ#1", pending.clone()),
            record("MODIFY", "SEQ#1", pending.clone()),
            record("INSERT", "SEQ#2", image),
            record("INSERT", "TX#x", pending.clone()),
            record("REMOVE", "SEQ#1", Value::Null),
        ]});
        assert!(is_stream_event(&event));
        let found: Vec<_> = records(&event).into_iter().map(|r| r.entry).collect();
        assert_eq!(
            found,
            vec![Ok(Some(sealed)), Ok(None), Ok(None), Ok(None), Ok(None)]
        );
        let mut broken = pending;
        broken["digest"] = serde_json::json!({"S": "00"});
        let event = serde_json::json!({"Records": [record("INSERT", "SEQ#3", broken)]});
        assert!(
            records(&event)[0]
                .entry
                .as_ref()
                .unwrap_err()
                .contains("digest")
        );
        assert_eq!(
            batch_response(Some("7")),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "7"}]})
        );
        assert_eq!(
            batch_response(None),
            serde_json::json!({"batchItemFailures": []})
        );
    }

    #[test]
    fn upstream_stream_samples_are_read_without_error() {
        let Some(dir) = paracell_domain::testing::shared_fixtures("events-upstream") else {
            return;
        };
        for name in [
            "aws-dynamodb-stream-insert.json",
            "aws-dynamodb-stream-new-and-old.json",
            "aws-dynamodb-stream-null-images.json",
            "aws-dynamodb-stream-float-epoch.json",
        ] {
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap();
            assert!(is_stream_event(&event), "{name}");
            for r in records(&event) {
                assert_eq!(r.entry, Ok(None), "{name}: not our items, skipped");
            }
        }
    }
}
