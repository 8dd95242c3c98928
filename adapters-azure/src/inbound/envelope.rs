//! The payload-mode wire format between the Functions host and the handler, modelled with serde.
//! (The `azure_functions` crate is a 2019 gRPC language worker, not a custom handler.)

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /{FunctionName}` body: `{"Data": {...}, "Metadata": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeRequest {
    /// Input bindings by name; the HTTP trigger is `req`.
    pub data: BTreeMap<String, serde_json::Value>,
    /// Binding data (ignored: it repeats the request with lossy encodings).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// `Data.req`: the HTTP trigger as the host serialises it (`GetRequestAsJObject`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpTrigger {
    /// `scheme://host/path?query`, with the raw query as received: the only place repeated query
    /// keys survive (`Query` comma-joins them).
    pub url: String,
    /// The method.
    pub method: String,
    /// Header name → values (names as Kestrel spelled them: match case-insensitively).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValues>,
    /// The body as a string; missing when the caller sent no `Content-Length` (e.g. chunked);
    /// base64 for `application/octet-stream` and `multipart/*`.
    #[serde(default)]
    pub body: Option<String>,
}

/// A header's values: the host sends arrays; a single string is accepted too.
#[derive(Debug)]
pub enum HeaderValues {
    /// The host's form.
    Many(Vec<String>),
    /// Tolerated.
    One(String),
}

impl<'de> Deserialize<'de> for HeaderValues {
    // By hand rather than `#[serde(untagged)]`, which buffers every value before trying a variant.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> serde::de::Visitor<'de> for Values {
            type Value = HeaderValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HeaderValues::One(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(HeaderValues::One(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(HeaderValues::Many(values))
            }
        }
        d.deserialize_any(Values)
    }
}

impl HeaderValues {
    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Self::Many(v) => v,
            Self::One(v) => std::slice::from_ref(v),
        };
        slice.iter().map(String::as_str)
    }
}

/// The handler's reply to a payload-mode invocation (always sent with HTTP 200, `application/json`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeResponse {
    /// Output bindings; the HTTP output is `res`.
    pub outputs: BTreeMap<String, HttpOutput>,
    /// Lines the host logs under the invocation (Application Insights).
    pub logs: Vec<String>,
    /// Always `null`: the HTTP output goes through `res`, never `$return`.
    pub return_value: Option<serde_json::Value>,
}

/// `Outputs.res`: status as an integer, single-valued headers, body as a pre-serialised string (an
/// object would come back re-indented, and the host never base64-decodes it).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpOutput {
    /// The client's status.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// Header name → value.
    pub headers: BTreeMap<String, String>,
    /// Body text.
    pub body: String,
}
