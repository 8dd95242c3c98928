//! How the adapter is set up: read from the same `host.json` the Functions host reads, so the two can
//! never disagree about the mode or the route prefix.

use std::path::Path;

/// How the host hands requests to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The default: `POST /{FunctionName}` with a JSON envelope; the reply is an envelope too.
    #[default]
    Payload,
    /// `customHandler.enableForwardingHttpRequest`: the caller's request, forwarded as plain HTTP.
    Forwarding,
}

/// Who sends the handler its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Front {
    /// The Functions host (the default: this is its custom handler). It probes `GET /` for
    /// readiness and invokes trigger functions (the relay's change feed) as `POST /{FunctionName}`.
    #[default]
    FunctionsHost,
    /// Clients, straight (`local-cell`, the standalone edge router): every request is a client's.
    /// There is no readiness probe and no trigger route: `GET /` and `POST /Relay` are unknown
    /// paths like any other (`404`).
    Direct,
}

/// The `extensions.http.routePrefix` of the function app (default `api`, may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePrefix(String);

impl RoutePrefix {
    /// A prefix; surrounding slashes are ignored (`"api"`, `"/api/"` and `"api/"` are the same).
    pub fn new(prefix: &str) -> Self {
        Self(prefix.trim_matches('/').to_owned())
    }

    /// Whether the prefix is empty (`routePrefix: ""`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes the prefix from a raw path. ASP.NET Core matches routes case-insensitively, so the
    /// prefix is too. A path outside the prefix is returned unchanged (the domain answers 404).
    ///
    /// ```
    /// use paracell_azure::RoutePrefix;
    /// let p = RoutePrefix::new("api");
    /// assert_eq!(p.strip("/api/v1/transactions"), "/v1/transactions");
    /// assert_eq!(p.strip("/API/health"), "/health");
    /// assert_eq!(p.strip("/api"), "/");
    /// assert_eq!(p.strip("/apix/health"), "/apix/health");
    /// assert_eq!(RoutePrefix::new("").strip("/health"), "/health");
    /// ```
    pub fn strip<'a>(&self, path: &'a str) -> &'a str {
        if self.0.is_empty() {
            return path;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return path;
        };
        let n = self.0.len();
        if rest.len() >= n && rest.is_char_boundary(n) && rest[..n].eq_ignore_ascii_case(&self.0) {
            match &rest[n..] {
                "" => return "/",
                tail if tail.starts_with('/') => return &path[1 + n..],
                _ => {}
            }
        }
        path
    }
}

impl Default for RoutePrefix {
    fn default() -> Self {
        Self::new("api")
    }
}

/// The adapter's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// Payload or forwarding mode.
    pub mode: Mode,
    /// Route prefix to remove from public paths.
    pub route_prefix: RoutePrefix,
    /// Whether `X-MS-CLIENT-PRINCIPAL` comes from App Service authentication (and so can be trusted).
    /// Only App Service authentication may set it: when authentication is off, any client could.
    pub trust_client_principal: bool,
    /// The name of the function whose Cosmos DB trigger drives the relay (`POST /{name}` is a
    /// change-feed invocation in both modes). Default `Relay`; `PARACELL_RELAY_FUNCTION` overrides.
    pub relay_function: String,
    /// Who sends the requests: the Functions host (default) or clients straight.
    pub front: Front,
}

impl Default for AzureConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            route_prefix: RoutePrefix::default(),
            trust_client_principal: false,
            relay_function: "Relay".into(),
            front: Front::FunctionsHost,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `host.json` exists but is not valid JSON.
    #[error("{path}: not valid JSON: {source}")]
    HostJson {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// `PARACELL_AZURE_MODE` is neither `payload` nor `forwarding`.
    #[error("PARACELL_AZURE_MODE {0:?} must be payload or forwarding")]
    Mode(String),
    /// A trigger function would share its path with client requests.
    #[error(
        "the trigger function {function:?} would be reachable by clients: in forwarding mode with an empty \
         routePrefix a client's POST /{function} is forwarded exactly as the host's trigger invocation is sent. \
         Set extensions.http.routePrefix (e.g. \"api\") or use payload mode"
    )]
    TriggerReachable {
        /// The trigger function's name.
        function: String,
    },
}

impl AzureConfig {
    /// Whether `POST /{relay_function}` can only come from the Functions host: behind the host, in
    /// payload mode (the host sends clients' requests as envelopes to their HTTP function), or in
    /// forwarding mode with a route prefix (forwarded client paths keep it, so they never are
    /// `/{FunctionName}`). In forwarding mode with an empty prefix a client's `POST /Relay` reaches
    /// the handler exactly as the host's trigger invocation does: nothing on the wire tells them apart.
    pub fn trigger_route_is_private(&self) -> bool {
        self.front == Front::FunctionsHost
            && (self.mode == Mode::Payload || !self.route_prefix.is_empty())
    }

    /// Refuses a configuration in which the relay's trigger route would be reachable by clients
    /// (checked at start-up by [`crate::server::run`] when the cell relays).
    ///
    /// ```
    /// use paracell_azure::{AzureConfig, Mode, RoutePrefix};
    /// let forwarding = AzureConfig { mode: Mode::Forwarding, ..AzureConfig::default() };
    /// assert!(forwarding.check_trigger_route().is_ok());
    /// let open = AzureConfig { route_prefix: RoutePrefix::new(""), ..forwarding };
    /// assert!(open.check_trigger_route().is_err());
    /// ```
    pub fn check_trigger_route(&self) -> Result<(), ConfigError> {
        if self.trigger_route_is_private() {
            Ok(())
        } else {
            Err(ConfigError::TriggerReachable {
                function: self.relay_function.clone(),
            })
        }
    }

    /// Reads the environment and the function app's `host.json`
    /// (`$FUNCTIONS_APP_ROOT_PATH/host.json`, else `./host.json`).
    ///
    /// `PARACELL_AZURE_MODE` (`payload`|`forwarding`) and `PARACELL_ROUTE_PREFIX` override `host.json`;
    /// principal trust follows App Service's own `WEBSITE_AUTH_ENABLED`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let root = std::env::var("FUNCTIONS_APP_ROOT_PATH").unwrap_or_else(|_| ".".into());
        let host_json = Path::new(&root).join("host.json");
        let text = std::fs::read_to_string(&host_json).ok();
        Self::from_parts(text.as_deref(), &host_json.display().to_string(), |k| {
            std::env::var(k).ok()
        })
    }

    /// [`AzureConfig::from_env`] with explicit inputs.
    ///
    /// ```
    /// use paracell_azure::{AzureConfig, Mode};
    /// let host_json = r#"{"customHandler":{"enableForwardingHttpRequest":true},"extensions":{"http":{"routePrefix":""}}}"#;
    /// let c = AzureConfig::from_parts(Some(host_json), "host.json", |_| None).unwrap();
    /// assert_eq!(c.mode, Mode::Forwarding);
    /// assert_eq!(c.route_prefix.strip("/health"), "/health");
    /// ```
    pub fn from_parts(
        host_json: Option<&str>,
        host_json_path: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(text) = host_json {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|source| ConfigError::HostJson {
                    path: host_json_path.to_owned(),
                    source,
                })?;
            if doc["customHandler"]["enableForwardingHttpRequest"].as_bool() == Some(true) {
                config.mode = Mode::Forwarding;
            }
            if let Some(prefix) = doc["extensions"]["http"]["routePrefix"].as_str() {
                config.route_prefix = RoutePrefix::new(prefix);
            }
        }
        if let Some(mode) = env("PARACELL_AZURE_MODE") {
            config.mode = match mode.to_ascii_lowercase().as_str() {
                "payload" => Mode::Payload,
                "forwarding" => Mode::Forwarding,
                _ => return Err(ConfigError::Mode(mode)),
            };
        }
        if let Some(prefix) = env("PARACELL_ROUTE_PREFIX") {
            config.route_prefix = RoutePrefix::new(&prefix);
        }
        config.trust_client_principal =
            env("WEBSITE_AUTH_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if let Some(name) = env("PARACELL_RELAY_FUNCTION").filter(|n| !n.is_empty()) {
            config.relay_function = name;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_host_json() {
        let c = AzureConfig::from_parts(Some("{}"), "host.json", |k| match k {
            "PARACELL_AZURE_MODE" => Some("Forwarding".into()),
            "PARACELL_ROUTE_PREFIX" => Some("/edge/".into()),
            "WEBSITE_AUTH_ENABLED" => Some("True".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.mode, Mode::Forwarding);
        assert_eq!(c.route_prefix.strip("/edge/health"), "/health");
        assert!(c.trust_client_principal);
        assert!(AzureConfig::from_parts(Some("{"), "host.json", |_| None).is_err());
        assert!(
            AzureConfig::from_parts(None, "host.json", |k| (k == "PARACELL_AZURE_MODE")
                .then(|| "both".into()))
            .is_err()
        );
        let defaults = AzureConfig::from_parts(None, "host.json", |_| None).unwrap();
        assert_eq!(defaults, AzureConfig::default());
        // The environment can also switch a forwarding app back to payload mode.
        let forwarding = r#"{"customHandler":{"enableForwardingHttpRequest":true}}"#;
        let c = AzureConfig::from_parts(Some(forwarding), "host.json", |k| {
            (k == "PARACELL_AZURE_MODE").then(|| "payload".into())
        })
        .unwrap();
        assert_eq!(c.mode, Mode::Payload);
    }

    #[test]
    fn the_relay_function_is_named_by_the_environment_unless_empty() {
        let named = AzureConfig::from_parts(None, "host.json", |k| {
            (k == "PARACELL_RELAY_FUNCTION").then(|| "Outbox".into())
        })
        .unwrap();
        assert_eq!(named.relay_function, "Outbox");
        let empty = AzureConfig::from_parts(None, "host.json", |k| {
            (k == "PARACELL_RELAY_FUNCTION").then(String::new)
        })
        .unwrap();
        assert_eq!(empty.relay_function, AzureConfig::default().relay_function);
    }

    #[test]
    fn a_path_not_under_the_prefix_is_left_alone() {
        let prefix = RoutePrefix::new("api");
        for path in ["/a", "/ap", "/", "", "/é", "/aé", "/xyz/health", "/ap/x"] {
            assert_eq!(prefix.strip(path), path);
        }
        assert_eq!(prefix.strip("/api"), "/");
        assert_eq!(prefix.strip("/API/x"), "/x");
    }
}
