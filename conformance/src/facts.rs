//! Platform facts that force a client-visible difference, named and modelled. A request that meets a
//! fact is still run everywhere; the envelopes the fact affects form their own parity group, which
//! must agree internally, while `expect` applies to the unaffected group (always including `direct`).

use crate::envelopes::Envelope;
use crate::request::ClientRequest;

/// A documented platform fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    /// API Gateway REST APIs (without `binaryMediaTypes`) and the Azure Functions host (payload mode,
    /// any media type but octet-stream and multipart) read request bodies as UTF-8 text: invalid bytes
    /// become U+FFFD before the cell sees them.
    LossyTextBody,
    /// The Azure Functions host copies a request body only when the caller sent `Content-Length > 0`:
    /// a chunked upload reaches the handler without a body, in both modes.
    ChunkedBodyDropped,
    /// An ALB target group with multi-value headers off passes only the last value of a repeated header.
    AlbLastHeaderWins,
}

impl Fact {
    /// Its name in reports and in `docs/conformance.md`.
    pub fn name(self) -> &'static str {
        match self {
            Self::LossyTextBody => "lossy-text-body",
            Self::ChunkedBodyDropped => "chunked-body-dropped",
            Self::AlbLastHeaderWins => "alb-last-header-wins",
        }
    }

    /// Whether `request` meets this fact on `envelope`.
    pub fn applies(self, envelope: Envelope, request: &ClientRequest) -> bool {
        match self {
            Self::LossyTextBody => {
                let invalid_utf8 = std::str::from_utf8(&request.body).is_err();
                // The host's own rule for which bodies it passes as base64 (exact bytes).
                let octet_or_multipart = paracell_azure::inbound::payload::is_base64_media_type(
                    request.header("content-type"),
                );
                invalid_utf8
                    && (envelope == Envelope::AwsApigwV1
                        || (envelope == Envelope::AzurePayload
                            && !octet_or_multipart
                            && !request.chunked))
            }
            Self::ChunkedBodyDropped => {
                request.chunked
                    && !request.body.is_empty()
                    && matches!(envelope, Envelope::AzurePayload | Envelope::AzureForwarding)
            }
            Self::AlbLastHeaderWins => {
                envelope == Envelope::AwsAlb && {
                    let mut names: Vec<String> = request
                        .headers
                        .iter()
                        .map(|(n, _)| n.to_ascii_lowercase())
                        .collect();
                    names.sort();
                    let before = names.len();
                    names.dedup();
                    names.len() != before
                }
            }
        }
    }

    /// Every fact.
    pub const ALL: [Fact; 3] = [
        Self::LossyTextBody,
        Self::ChunkedBodyDropped,
        Self::AlbLastHeaderWins,
    ];

    /// The facts a request meets on an envelope.
    pub fn for_request(envelope: Envelope, request: &ClientRequest) -> Vec<Fact> {
        Self::ALL
            .into_iter()
            .filter(|f| f.applies(envelope, request))
            .collect()
    }
}
