//! The Cosmos DB change-feed trigger → the relay.
//!
//! The function app's `Relay` function (`examples/azure/app/Relay/function.json`) binds a
//! `cosmosDBTrigger` to the cell's container. In payload mode the host invokes `POST /Relay` with the
//! changed documents under the binding's name in `Data`, as a JSON string whose text is the
//! JSON-encoded array of documents (the host serialises string-typed bindings once more; see
//! `shared/notes/events.md` §3.2). Relayed: entry documents committed here and still pending.
//! Skipped: every other document, including the update a relay's own "mark relayed" causes, and the
//! entries a standby received.
//!
//! A failed relay answers a non-2xx reply, which fails the invocation: the Cosmos DB trigger does not
//! redeliver on its own, so the function carries a `retry` policy.

use paracell_domain::replication::SealedEntry;
use serde_json::Value;

/// One changed document, as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDocument {
    /// The document's `id` (for logs).
    pub id: String,
    /// The entry to relay, `None` for a document that is not one, or why an entry is unreadable.
    pub entry: Result<Option<SealedEntry>, String>,
}

/// Reads a binding value the way the host encodes it: a string is parsed as JSON (twice if it
/// yields a string again), arrays and objects are taken as they are.
pub fn decode_binding(value: &Value) -> Result<Value, String> {
    let mut current = value.clone();
    for _ in 0..2 {
        match current {
            Value::String(text) => {
                current = serde_json::from_str(&text)
                    .map_err(|e| format!("a binding string that is not JSON: {e}"))?;
            }
            other => return Ok(other),
        }
    }
    Ok(current)
}

/// The documents of a trigger invocation's `Data`, from the first binding that holds an array of
/// documents. `None` when `Data` holds none (not a change-feed invocation).
///
/// ```
/// use paracell_azure::inbound::trigger::changed_documents;
/// let sealed = paracell_domain::testing::sample_entry();
/// let docs = serde_json::json!([{"id": "seq:00000000000000000001", "kind": "entry", "pending": true,
///     "doc": sealed.document(), "digest": sealed.digest().to_string(), "tenant": "coop-1"}]);
/// let data = serde_json::json!({"documents": serde_json::to_string_pretty(&docs).unwrap()});
/// let changed = changed_documents(&data).unwrap().unwrap();
/// assert_eq!(changed[0].entry, Ok(Some(sealed)));
/// ```
pub fn changed_documents(data: &Value) -> Result<Option<Vec<ChangedDocument>>, String> {
    let Some(bindings) = data.as_object() else {
        return Err("Data is not an object".into());
    };
    for value in bindings.values() {
        if let Value::Array(documents) = decode_binding(value)? {
            return Ok(Some(documents.iter().map(read_document).collect()));
        }
    }
    Ok(None)
}

fn read_document(document: &Value) -> ChangedDocument {
    let id = document["id"].as_str().unwrap_or_default().to_owned();
    let is_pending_entry =
        document["kind"].as_str() == Some("entry") && document["pending"].as_bool() == Some(true);
    let entry = if !is_pending_entry {
        Ok(None)
    } else {
        match (document["doc"].as_str(), document["digest"].as_str()) {
            (Some(doc), Some(digest)) => SealedEntry::open_checked(doc, digest)
                .map(Some)
                .map_err(|e| e.to_string()),
            _ => Err("an entry document without doc or digest".into()),
        }
    };
    ChangedDocument { id, entry }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_double_encoding_is_undone_and_only_pending_entries_are_relayed() {
        let sealed = paracell_domain::testing::sample_entry();
        let entry = serde_json::json!({"id": "seq:1", "kind": "entry", "pending": true,
            "doc": sealed.document(), "digest": sealed.digest().to_string()});
        let mut relayed = entry.clone();
        relayed["pending"] = Value::Bool(false);
        let docs = serde_json::json!([entry, relayed, {"id": "tx:1", "kind": "transaction"}]);
        let once = Value::String(docs.to_string());
        let twice = Value::String(serde_json::to_string(&docs.to_string()).unwrap());
        for encoded in [docs.clone(), once, twice] {
            let data = serde_json::json!({"documents": encoded});
            let found: Vec<_> = changed_documents(&data)
                .unwrap()
                .unwrap()
                .into_iter()
                .map(|d| d.entry)
                .collect();
            assert_eq!(found, vec![Ok(Some(sealed.clone())), Ok(None), Ok(None)]);
        }
        assert_eq!(
            changed_documents(&serde_json::json!({"req": {"Url": "x"}})).unwrap(),
            None
        );
        assert!(changed_documents(&serde_json::json!({"documents": "not json"})).is_err());
    }
}
