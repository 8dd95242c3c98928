//! App Service authentication ("Easy Auth") hands the authenticated caller to the app as
//! `X-MS-CLIENT-PRINCIPAL`: base64 of `{"auth_typ":…,"claims":[{"typ":…,"val":…}],…}`.
//! A `tenant_id` claim there is the authenticated tenant (the domain decides what follows from it).

use base64::Engine as _;

/// The `tenant_id` claim of an `X-MS-CLIENT-PRINCIPAL` value; `None` when absent or unreadable.
///
/// ```
/// use base64::Engine as _;
/// let principal = base64::engine::general_purpose::STANDARD
///     .encode(r#"{"auth_typ":"aad","claims":[{"typ":"tenant_id","val":"coop-1"}]}"#);
/// assert_eq!(paracell_azure::inbound::principal::tenant_claim(&principal).as_deref(), Some("coop-1"));
/// assert_eq!(paracell_azure::inbound::principal::tenant_claim("not base64"), None);
/// ```
pub fn tenant_claim(header_value: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header_value.trim())
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    doc["claims"]
        .as_array()?
        .iter()
        .find(|c| c["typ"].as_str() == Some("tenant_id"))
        .and_then(|c| c["val"].as_str())
        .map(str::to_owned)
}
