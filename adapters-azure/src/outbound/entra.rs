//! Microsoft Entra ID access tokens for the Azure services a cell calls — Event Grid publishing, and
//! Cosmos DB as an option next to its key — through the official `azure_identity` crate, so no
//! static token is ever configured (a static token expires, and every call after that fails).
//!
//! [`credential`] picks the credential the way a deployed cell needs it: the **managed identity** when
//! the Functions host provides one (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, which App Service and
//! Functions set), else the **developer's own** login (Azure CLI, then Azure Developer CLI) for local
//! runs. `azure_identity` 1.0 has no `DefaultAzureCredential`, so the choice is made here, once.
//! [`EntraTokens`] caches a token until five minutes before it expires and drops it when a service
//! refuses it, so the next call asks for a fresh one.

use azure_core::credentials::TokenCredential;
use azure_core::time::OffsetDateTime;
use paracell_domain::ports::{AccessTokens, TokenError};
use std::sync::{Arc, Mutex};

/// Event Grid's scope (role "EventGrid Data Sender" on the topic).
pub const EVENT_GRID_SCOPE: &str = "https://eventgrid.azure.net/.default";

/// The credential for this process: managed identity when the host provides one, else the
/// developer's Azure CLI (or Azure Developer CLI) login.
pub fn credential() -> Result<Arc<dyn TokenCredential>, String> {
    let managed = std::env::var_os("IDENTITY_ENDPOINT").is_some()
        || std::env::var_os("MSI_ENDPOINT").is_some();
    if managed {
        let credential = azure_identity::ManagedIdentityCredential::new(None)
            .map_err(|e| format!("managed identity: {e}"))?;
        Ok(credential)
    } else {
        let credential = azure_identity::DeveloperToolsCredential::new(None)
            .map_err(|e| format!("developer credentials: {e}"))?;
        Ok(credential)
    }
}

/// Tokens for one scope from one credential, cached until five minutes before they expire.
pub struct EntraTokens {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    cached: Mutex<Option<(String, OffsetDateTime)>>,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.debug_struct("EntraTokens")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl EntraTokens {
    /// Tokens for `scope` (e.g. [`EVENT_GRID_SCOPE`]) from `credential`.
    pub fn new(credential: Arc<dyn TokenCredential>, scope: impl Into<String>) -> Self {
        Self {
            credential,
            scope: scope.into(),
            cached: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, OffsetDateTime)>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl AccessTokens for EntraTokens {
    async fn token(&self) -> Result<String, TokenError> {
        let now = OffsetDateTime::now_utc();
        if let Some((token, expires)) = self.lock().as_ref()
            && *expires - now > azure_core::time::Duration::minutes(5)
        {
            return Ok(token.clone());
        }
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| TokenError(format!("Entra ID token for {}: {e}", self.scope)))?;
        let secret = token.token.secret().to_owned();
        *self.lock() = Some((secret.clone(), token.expires_on));
        Ok(secret)
    }

    fn invalidate(&self) {
        *self.lock() = None;
    }
}
