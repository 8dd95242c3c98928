//! The wire format of a delivery between cells.
//!
//! A delivery is a CloudEvents 1.0 batch (`application/cloudevents-batch+json`): one event per entry,
//! `type` [`ENTRY_TYPE`], `id` the entry's digest, `source` `/cells/<origin>`, `subject`
//! `tenants/<tenant>/entries/<seq>`, `traceparent`/`tracestate` the entry's trace (when it has one), `data`
//! the entry document. The answer is
//! `{"results":[{"id","tenant","seq","outcome","detail"?}]}`, one result per event, plus one for each
//! held entry the delivery let the receiver apply or find diverged.

use super::{Digest, SealedEntry};
use crate::contract::json;
use crate::tenancy::TenantId;

/// CloudEvents `type` of a replication entry.
pub const ENTRY_TYPE: &str = "dev.paracell.replication.entry.v1";

/// `Content-Type` of a delivery.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json; charset=utf-8";

/// Renders a delivery of `entries`, in the given order.
pub fn render(entries: &[SealedEntry]) -> String {
    let mut out = String::with_capacity(entries.iter().map(|e| e.document().len() + 300).sum());
    out.push('[');
    for (i, sealed) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let entry = sealed.entry();
        out.push_str(r#"{"specversion":"1.0","id":""#);
        sealed.digest().push_hex(&mut out);
        out.push_str(r#"","source":"/cells/"#);
        out.push_str(entry.origin.as_str());
        out.push_str(r#"","type":""#);
        out.push_str(ENTRY_TYPE);
        out.push_str(r#"","subject":"tenants/"#);
        out.push_str(entry.tenant.as_str());
        out.push_str("/entries/");
        out.push_str(&entry.seq.to_string());
        out.push_str(r#"","time":""#);
        entry.time.push_rfc3339(&mut out);
        out.push_str(r#"","datacontenttype":"application/json""#);
        // The CloudEvents distributed-tracing extension: the trace of the request that committed the
        // entry (also inside the entry, where the digest protects it).
        if let Some(trace) = &entry.trace {
            out.push_str(r#","traceparent":""#);
            out.push_str(&trace.traceparent());
            out.push('"');
            if let Some(state) = trace.tracestate() {
                out.push(',');
                json::push_member(&mut out, "tracestate", state);
            }
        }
        out.push_str(r#","data":"#);
        out.push_str(sealed.document());
        out.push('}');
    }
    out.push(']');
    out
}

/// One event of a delivery, read: the entry, or why it could not be.
pub type Incoming = Result<SealedEntry, Unreadable>;

/// An event that is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The event's `id`, when it had one.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// Reads a delivery. `Err` when the body is not a JSON array at all (the whole delivery is
/// malformed); otherwise one [`Incoming`] per event.
pub fn parse(body: &[u8]) -> Result<Vec<Incoming>, crate::DecodeError> {
    let events: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(|e| {
        crate::DecodeError::new(
            "delivery",
            format!("a delivery is a JSON array of CloudEvents: {e}"),
        )
    })?;
    Ok(events
        .into_iter()
        .map(|raw| read_event(raw.get()))
        .collect())
}

fn read_event(text: &str) -> Incoming {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        specversion: &'a str,
        id: String,
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    let event: Event<'_> = serde_json::from_str(text).map_err(|e| Unreadable {
        id: String::new(),
        reason: format!("not a CloudEvent with specversion, id, type and data: {e}"),
    })?;
    let unreadable = |reason: String| Unreadable {
        id: event.id.clone(),
        reason,
    };
    if event.specversion != "1.0" || event.kind != ENTRY_TYPE {
        return Err(unreadable(format!(
            "expected specversion 1.0 and type {ENTRY_TYPE}"
        )));
    }
    let sealed = SealedEntry::open(event.data.get()).map_err(|e| unreadable(e.to_string()))?;
    if Digest::parse(&event.id) != Some(sealed.digest()) {
        return Err(unreadable(
            "the event id is not the digest of its entry (altered in transit?)".into(),
        ));
    }
    Ok(sealed)
}

/// What a receiving cell did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Applied now (and any entries it unblocked).
    Applied,
    /// Already applied (or already held): no effect.
    Duplicate,
    /// Stored, waiting for an earlier entry: applied when the gap fills.
    Held,
    /// From an epoch this cell no longer follows: kept out of the ledger.
    Stale,
    /// Conflicts with what this cell holds (same position or key with other content): refused,
    /// never merged.
    Diverged,
    /// Not for this cell (a tenant it may not hold, or holds as primary), or unreadable.
    Refused,
}

impl Outcome {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Held => "held",
            Self::Stale => "stale",
            Self::Diverged => "diverged",
            Self::Refused => "refused",
        }
    }

    /// Reads a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Duplicate,
            Self::Held,
            Self::Stale,
            Self::Diverged,
            Self::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }

    /// Whether the sender is done with the entry: the receiver has it (applied, duplicate, held).
    /// Anything else is poison for this destination: the sender dead-letters it.
    pub fn delivered(self) -> bool {
        matches!(self, Self::Applied | Self::Duplicate | Self::Held)
    }
}

/// The result for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryResult {
    /// The event id (the entry's digest).
    pub id: String,
    /// The entry's tenant, when readable.
    pub tenant: Option<TenantId>,
    /// The entry's sequence number, when readable.
    pub seq: Option<u64>,
    /// What happened.
    pub outcome: Outcome,
    /// Why, for anything but applied and duplicate.
    pub detail: Option<String>,
}

impl EntryResult {
    /// The result for a readable entry.
    pub fn of(entry: &SealedEntry, outcome: Outcome, detail: Option<String>) -> Self {
        Self {
            id: entry.digest().to_string(),
            tenant: Some(entry.tenant().clone()),
            seq: Some(entry.seq()),
            outcome,
            detail,
        }
    }
}

/// Renders the answer body.
pub fn render_results(results: &[EntryResult]) -> String {
    let mut out = String::from(r#"{"results":["#);
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_member(&mut out, "id", &r.id);
        if let Some(tenant) = &r.tenant {
            out.push(',');
            json::push_member(&mut out, "tenant", tenant.as_str());
        }
        if let Some(seq) = r.seq {
            out.push_str(r#","seq":"#);
            out.push_str(&seq.to_string());
        }
        out.push(',');
        json::push_member(&mut out, "outcome", r.outcome.as_str());
        if let Some(detail) = &r.detail {
            out.push(',');
            json::push_member(&mut out, "detail", detail);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Reads an answer body.
pub fn parse_results(body: &[u8]) -> Result<Vec<EntryResult>, crate::DecodeError> {
    #[derive(serde::Deserialize)]
    struct Body {
        results: Vec<Row>,
    }
    #[derive(serde::Deserialize)]
    struct Row {
        id: String,
        tenant: Option<String>,
        seq: Option<u64>,
        outcome: String,
        detail: Option<String>,
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|e| crate::DecodeError::new("results", e))?;
    body.results
        .into_iter()
        .map(|row| {
            Ok(EntryResult {
                tenant: row.tenant.as_deref().and_then(|t| TenantId::parse(t).ok()),
                seq: row.seq,
                outcome: Outcome::parse(&row.outcome).ok_or_else(|| {
                    crate::DecodeError::new("results", format!("unknown outcome {:?}", row.outcome))
                })?,
                detail: row.detail,
                id: row.id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_reads_back_and_a_tampered_entry_is_unreadable() {
        let sealed = crate::testing::sample_entry();
        let body = render(std::slice::from_ref(&sealed));
        let read = parse(body.as_bytes()).unwrap();
        assert_eq!(read, vec![Ok(sealed.clone())]);
        let tampered = body.replace(r#""status":201"#, r#""status":200"#);
        let read = parse(tampered.as_bytes()).unwrap();
        assert!(read[0].as_ref().unwrap_err().reason.contains("digest"));
        assert!(parse(b"{}").is_err());
        let results = vec![
            EntryResult::of(&sealed, Outcome::Applied, None),
            EntryResult {
                id: "x".into(),
                tenant: None,
                seq: None,
                outcome: Outcome::Refused,
                detail: Some("why \"quoted\"".into()),
            },
        ];
        assert_eq!(
            parse_results(render_results(&results).as_bytes()).unwrap(),
            results
        );
    }
}
