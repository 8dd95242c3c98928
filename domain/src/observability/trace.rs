//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): one trace id follows a request from
//! the client through the router, the cell, the outbox CloudEvent, the relay and the standby cell's
//! apply, whichever cloud each runs on.
//!
//! A cell or router continues the trace its caller sent in `traceparent` (with its `tracestate`), or,
//! on AWS when there is none, the X-Ray trace in `X-Amzn-Trace-Id` that API Gateway, ALB and Function
//! URLs add (`Root=1-5759e988-bd862e3fe1be46a994272793` is trace id
//! `5759e988bd862e3fe1be46a994272793`: the mapping X-Ray itself uses for W3C ids); otherwise it
//! starts a new trace. Either way it takes a span id of its own, which is the parent of whatever it
//! calls next.
//!
//! ```
//! use paracell_domain::http::Headers;
//! use paracell_domain::observability::trace::TraceContext;
//! let mut headers = Headers::default();
//! headers.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! let trace = TraceContext::for_request(&headers);
//! assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(trace.sampled());
//! // Our own span: same trace, a new parent id for the next hop.
//! assert!(trace.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert!(!trace.traceparent().contains("00f067aa0ba902b7"));
//!
//! let mut aws = Headers::default();
//! aws.append("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
//! assert_eq!(TraceContext::for_request(&aws).trace_id(), "5759e988bd862e3fe1be46a994272793");
//! ```

use crate::http::Headers;
use std::fmt::Write as _;

/// The longest `tracestate` carried on (W3C: vendors may drop a longer one; 512 is the size every
/// implementation must propagate).
const MAX_TRACESTATE: usize = 512;

/// One hop of a trace: the trace id, this hop's span id, the sampled flag and the vendors'
/// `tracestate`, carried on unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    state: Option<String>,
}

impl TraceContext {
    /// The context for one request: the caller's trace continued (`traceparent`, else
    /// `X-Amzn-Trace-Id`), or a new one, with a span id of this hop.
    pub fn for_request(headers: &Headers) -> Self {
        match Self::incoming(headers) {
            Some(parent) => parent.child(),
            None => Self::start(),
        }
    }

    /// The caller's context, if it sent a valid one: `traceparent` (and `tracestate`), else an X-Ray
    /// `X-Amzn-Trace-Id`. An invalid or repeated `traceparent` is ignored, as the specification asks.
    pub fn incoming(headers: &Headers) -> Option<Self> {
        if let Some(parent) = headers.get("traceparent") {
            let state = headers.get("tracestate");
            return Self::parse(&parent, state.as_deref());
        }
        headers
            .get("x-amzn-trace-id")
            .and_then(|v| Self::from_xray(&v))
    }

    /// A new trace (a fresh trace id and span id), sampled.
    pub fn start() -> Self {
        let trace = uuid::Uuid::now_v7().into_bytes();
        Self {
            trace_id: trace,
            span_id: new_span_id(),
            flags: 1,
            state: None,
        }
    }

    /// The same trace with a new span id: what this hop hands to the next one.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..self.clone()
        }
    }

    /// Reads a `traceparent` value (and the `tracestate` that came with it). Version `00` exactly; a
    /// later version by its first four fields, as the specification asks; `ff` and all-zero ids are
    /// invalid.
    ///
    /// ```
    /// use paracell_domain::observability::trace::TraceContext;
    /// assert!(TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", None).is_some());
    /// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None).is_none());
    /// assert!(TraceContext::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None).is_none());
    /// assert!(TraceContext::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).is_none());
    /// assert!(TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", None).is_some());
    /// ```
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let bytes = traceparent.as_bytes();
        let version = hex::<1>(bytes.get(0..2)?)?[0];
        let exact = bytes.len() == 55;
        let valid_length = match version {
            0xff => return None,
            0 => exact,
            _ => exact || (bytes.len() > 55 && bytes[55] == b'-'),
        };
        if !valid_length || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex::<16>(&bytes[3..35])?;
        let span_id = hex::<8>(&bytes[36..52])?;
        let flags = hex::<1>(&bytes[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags: flags & 1, // only `sampled` is defined; unknown flags are not passed on
            state: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
                .filter(|s| s.bytes().all(|b| (0x20..=0x7e).contains(&b)))
                .map(str::to_owned),
        })
    }

    /// Reads an X-Ray `X-Amzn-Trace-Id` (`Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}`,
    /// fields in any order). Without `Parent` the trace starts here, so the span id is new.
    ///
    /// ```
    /// use paracell_domain::observability::trace::TraceContext;
    /// let t = TraceContext::from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0").unwrap();
    /// assert_eq!(t.traceparent(), "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00");
    /// assert!(TraceContext::from_xray("Self=1-67891234-12456789abcdef012345678").is_none());
    /// ```
    pub fn from_xray(value: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = true;
        for field in value.split(';').map(str::trim) {
            let (name, v) = field.split_once('=')?;
            match name {
                "Root" => {
                    let rest = v.strip_prefix("1-")?;
                    let (time, unique) = rest.split_once('-')?;
                    if time.len() != 8 || unique.len() != 24 {
                        return None;
                    }
                    let mut joined = [0u8; 32];
                    joined[..8].copy_from_slice(time.as_bytes());
                    joined[8..].copy_from_slice(unique.as_bytes());
                    root = Some(hex_any_case::<16>(&joined)?);
                }
                "Parent" => parent = Some(hex_any_case::<8>(v.as_bytes())?),
                "Sampled" => sampled = v != "0",
                _ => {}
            }
        }
        let trace_id = root.filter(|r| *r != [0; 16])?;
        Some(Self {
            trace_id,
            span_id: parent.filter(|p| *p != [0; 8]).unwrap_or_else(new_span_id),
            flags: u8::from(sampled),
            state: None,
        })
    }

    /// The trace id, 32 lowercase hex digits: what every log line carries.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The trace id's 16 bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// Reads a trace id as log lines carry it (32 lowercase hex digits, not all zero).
    ///
    /// ```
    /// use paracell_domain::observability::trace::TraceContext;
    /// assert_eq!(TraceContext::trace_id_from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()[0], 0x0a);
    /// assert!(TraceContext::trace_id_from_hex("00000000000000000000000000000000").is_none());
    /// assert!(TraceContext::trace_id_from_hex("-").is_none());
    /// ```
    pub fn trace_id_from_hex(hex_digits: &str) -> Option<[u8; 16]> {
        hex::<16>(hex_digits.as_bytes()).filter(|id| *id != [0; 16])
    }

    /// This hop's span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        to_hex(&self.span_id)
    }

    /// Whether the caller asked for this trace to be recorded.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `tracestate` carried on, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The `traceparent` for the next hop (version `00`, this hop's span as the parent).
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        out.push_str(&self.trace_id());
        out.push('-');
        out.push_str(&self.span_id());
        let _ = write!(out, "-{:02x}", self.flags);
        out
    }
}

/// A span id from the random bits of a UUIDv7 (its last 8 bytes: variant bits and randomness).
fn new_span_id() -> [u8; 8] {
    let bytes = uuid::Uuid::now_v7().into_bytes();
    let mut span = [0u8; 8];
    span.copy_from_slice(&bytes[8..]);
    span
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Lowercase hex only (W3C).
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    hex_any_case(digits)
}

fn hex_any_case<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::default();
        for (n, v) in pairs {
            h.append(*n, *v);
        }
        h
    }

    #[test]
    fn a_traceparent_is_continued_with_its_state_and_a_new_span() {
        let h = headers(&[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793",
            ),
        ]);
        let t = TraceContext::for_request(&h);
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(t.span_id(), "b7ad6b7169203331");
        assert_eq!(t.tracestate(), Some("congo=t61rcWkgMzE"));
        assert!(t.sampled());
    }

    #[test]
    fn invalid_or_repeated_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            "é0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad:?}");
        }
        let twice = headers(&[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (
                "traceparent",
                "00-11111111111111111111111111111111-b7ad6b7169203331-01",
            ),
        ]);
        assert_eq!(TraceContext::incoming(&twice), None);
        let a = TraceContext::for_request(&twice);
        let b = TraceContext::for_request(&twice);
        assert_ne!(a.trace_id(), b.trace_id());
        assert_ne!(a.trace_id(), "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn a_new_trace_renders_a_valid_traceparent() {
        let t = TraceContext::start();
        let reparsed = TraceContext::parse(&t.traceparent(), None).unwrap();
        assert_eq!(reparsed, t);
        assert_eq!(t.traceparent().len(), 55);
    }

    #[test]
    fn unknown_flags_and_oversized_or_binary_state_are_dropped() {
        let long = "a=".to_owned() + &"b".repeat(600);
        let t = TraceContext::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff",
            Some(&long),
        )
        .unwrap();
        assert!(t.traceparent().ends_with("-01"));
        assert_eq!(t.tracestate(), None);
        let t = TraceContext::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            Some("a=\u{7}"),
        )
        .unwrap();
        assert_eq!(t.tracestate(), None);
        assert!(!t.sampled());
    }

    #[test]
    fn xray_headers_map_to_w3c_ids() {
        let t = TraceContext::from_xray(
            "Sampled=1; Root=1-5759E988-BD862E3FE1BE46A994272793; Lineage=a87bd80c:1|68fd508a:5",
        )
        .unwrap();
        assert_eq!(t.trace_id(), "5759e988bd862e3fe1be46a994272793");
        assert!(t.sampled());
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8",
            "Root=1-00000000-000000000000000000000000",
            "garbage",
        ] {
            assert_eq!(TraceContext::from_xray(bad), None, "{bad:?}");
        }
    }
}
