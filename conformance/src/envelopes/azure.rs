//! Azure envelopes: a client request → what the Functions host sends the handler (payload or
//! forwarding mode), and the handler's reply → what the client receives. The host's behaviour is
//! [`paracell_azure::host_model`]; App Service authentication is modelled as on: a client-sent
//! `X-MS-CLIENT-PRINCIPAL` is removed and the authenticated tenant, if any, is injected as one.

use super::Envelope;
use crate::request::{ClientRequest, ClientResponse};
use base64::Engine as _;
use paracell_azure::host_model::{self, HttpOutputBinding};
use paracell_azure::{HandlerReply, HostRequest};

/// The function app's route prefix in the suite (the Functions default).
pub const ROUTE_PREFIX: &str = "api";

/// The function that serves a path (the route groups of `examples/azure/app`).
pub fn function_name(path: &str) -> &'static str {
    if path == "/health" {
        "Health"
    } else if path.starts_with("/v1/transactions") {
        "Transactions"
    } else if path.starts_with("/v1/replication/") {
        "Replication"
    } else if path.starts_with("/v1/accounts/") {
        "Accounts"
    } else {
        "Fallback"
    }
}

/// The host's request to the handler for `request`.
pub fn host_request(
    envelope: Envelope,
    request: &ClientRequest,
    invocation_id: &str,
) -> HostRequest {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("x-ms-client-principal"))
        .cloned()
        .collect();
    if let Some(tenant) = &request.authenticated_tenant {
        let principal = serde_json::json!({"auth_typ": "aad", "claims": [{"typ": "tenant_id", "val": tenant}], "name_typ": "name", "role_typ": "roles"});
        headers.push((
            "X-MS-CLIENT-PRINCIPAL".into(),
            base64::engine::general_purpose::STANDARD.encode(principal.to_string()),
        ));
    }
    let client = host_model::ClientRequest {
        method: request.method.clone(),
        path: format!("/{ROUTE_PREFIX}{}", request.path),
        query: request.query.clone(),
        headers,
        body: request.body.clone(),
        chunked: request.chunked,
    };
    match envelope {
        Envelope::AzureForwarding => host_model::forwarded_request(&client, invocation_id),
        _ => host_model::payload_invocation(&client, function_name(&request.path), invocation_id),
    }
}

/// What the client receives for the handler's reply.
pub fn client_view(envelope: Envelope, method: &str, reply: &HandlerReply) -> ClientResponse {
    let seen = match envelope {
        Envelope::AzureForwarding => host_model::forwarded_reply_to_client(reply, method),
        _ => host_model::payload_reply_to_client(reply, HttpOutputBinding::Res, method),
    };
    ClientResponse::new(seen.status, seen.headers, seen.body)
}

/// The Functions host's invocation of the `Relay` function for a batch of changed entry documents
/// (the Cosmos DB trigger): the documents JSON-encoded into a string under the binding's name, as the
/// host encodes string-typed bindings.
pub fn change_feed_invocation(
    entries: &[&paracell_domain::replication::SealedEntry],
    invocation_id: &str,
) -> HostRequest {
    let pending: Vec<_> = entries.iter().map(|e| (*e, true)).collect();
    change_feed_invocation_of(&pending, invocation_id)
}

/// [`change_feed_invocation`] with entries that are not pending too: a standby's container feeds the
/// entries it receives, which its relay must leave alone.
pub fn change_feed_invocation_of(
    entries: &[(&paracell_domain::replication::SealedEntry, bool)],
    invocation_id: &str,
) -> HostRequest {
    let documents: Vec<serde_json::Value> = entries
        .iter()
        .map(|(e, pending)| {
            serde_json::json!({
                "id": format!("seq:{:020}", e.seq()),
                "tenant": e.tenant().as_str(),
                "kind": "entry",
                "seq": e.seq(),
                "doc": e.document(),
                "digest": e.digest().to_string(),
                "pending": pending,
                "_ts": 1_767_225_600,
            })
        })
        .collect();
    let encoded = serde_json::to_string_pretty(&documents).unwrap_or_default();
    let envelope = serde_json::json!({
        "Data": {"documents": encoded},
        "Metadata": {"sys": {"MethodName": "Relay", "UtcNow": "2026-01-01T00:00:00Z"}},
    });
    HostRequest::new("POST", "/Relay")
        .with_header("Content-Type", "application/json")
        .with_header("X-Azure-Functions-InvocationId", invocation_id)
        .with_body(envelope.to_string())
}
