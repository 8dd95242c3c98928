//! Cell configuration, read from the environment by one function so both clouds read it identically.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PARACELL_CELL_ID` | this cell's id | required |
//! | `PARACELL_TENANTS` | `*` (every tenant) or a comma list of tenant ids | required |
//! | `PARACELL_MAX_BODY_BYTES` | largest request body accepted, 1..=4194304 | 262144 |
//! | `PARACELL_PEERS` | the cells this cell replicates to: a comma list of `cell=base-url` | none |
//! | `PARACELL_PEER_SECRETS` | the secrets shared with peer cells: a comma list of `cell=whsec_…` (several per cell while rotating) | none |

use crate::replication::signature::{PeerSecret, SecretError};
use crate::tenancy::{CellId, IdentifierError, TenantId};
use std::collections::BTreeSet;

/// Which tenants a cell serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant (a single-cell deployment, or a local run).
    All,
    /// Exactly these tenants.
    Set(BTreeSet<TenantId>),
}

impl TenantScope {
    /// Whether this cell serves `tenant`.
    pub fn serves(&self, tenant: &TenantId) -> bool {
        match self {
            Self::All => true,
            Self::Set(set) => set.contains(tenant),
        }
    }
}

/// Operational limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes, before the 413 `payload-too-large` problem.
    pub max_body_bytes: usize,
}

impl Limits {
    /// Default body limit (256 KiB).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 262_144;
    /// Highest body limit a cell accepts (4 MiB). Lambda's buffered invoke limit is 6 MB for the whole
    /// event *after* base64 (+33 %); 4 MiB of body stays below it with room for the envelope, so the
    /// contract's 413 always wins over the platform's own error on both clouds.
    pub const MAX_BODY_BYTES_CEILING: usize = 4_194_304;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A cell this cell replicates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer.
    pub cell: CellId,
    /// Its public base URL, with any stage or route prefix (`https://app.azurewebsites.net/api`).
    pub base_url: String,
}

/// Who this cell replicates with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicationConfig {
    /// Where this cell's entries go.
    pub peers: Vec<PeerConfig>,
    /// Secrets shared with peers: deliveries signed with any of them are accepted; the first one of
    /// a peer signs what this cell sends it.
    pub secrets: Vec<PeerSecret>,
}

impl ReplicationConfig {
    /// The first secret shared with `cell`.
    pub fn secret_for(&self, cell: &CellId) -> Option<&PeerSecret> {
        self.secrets.iter().find(|s| &s.cell == cell)
    }

    /// Every secret shared with `cell`, in configuration order: a delivery to it is signed with each
    /// (one signature per secret in `webhook-signature`), and a delivery from it is accepted under
    /// any. Two secrets at once is a rotation in progress ([`crate::replication::signature`]).
    pub fn secrets_for(&self, cell: &CellId) -> Vec<PeerSecret> {
        self.secrets
            .iter()
            .filter(|s| &s.cell == cell)
            .cloned()
            .collect()
    }
}

/// A cell's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellConfig {
    /// This cell.
    pub cell_id: CellId,
    /// Tenants it may hold (the allow-list; which of them it is primary or standby for is data in
    /// its store).
    pub tenants: TenantScope,
    /// Limits.
    pub limits: Limits,
    /// Replication peers and secrets.
    pub replication: ReplicationConfig,
}

/// A configuration the cell refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable's value cannot be used.
    #[error("{name} {value:?} must be {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// `PARACELL_CELL_ID` is not a valid id.
    #[error("PARACELL_CELL_ID {value:?} {reason}")]
    InvalidCellId {
        /// The value.
        value: String,
        /// Why.
        reason: IdentifierError,
    },
    /// An entry of `PARACELL_TENANTS` is not a valid tenant id.
    #[error("PARACELL_TENANTS entry {value:?} {reason} (use * for every tenant, or a comma list)")]
    InvalidTenant {
        /// The entry.
        value: String,
        /// Why.
        reason: IdentifierError,
    },
    /// `PARACELL_MAX_BODY_BYTES` is not an integer in range.
    #[error("PARACELL_MAX_BODY_BYTES {0:?} must be an integer from 1 to 4194304")]
    InvalidBodyLimit(String),
    /// An entry of `PARACELL_PEERS` is not `cell=http(s)://…`.
    #[error("PARACELL_PEERS entry {0:?} must be cell=http(s)://base-url")]
    InvalidPeer(String),
    /// An entry of `PARACELL_PEER_SECRETS` is not `cell=whsec_…` (the secret is not repeated here).
    #[error("PARACELL_PEER_SECRETS entry for {cell:?}: {reason}")]
    InvalidPeerSecret {
        /// The cell the entry names.
        cell: String,
        /// Why.
        reason: SecretError,
    },
    /// A peer has no secret to sign deliveries with.
    #[error("PARACELL_PEERS names {0}, but PARACELL_PEER_SECRETS has no secret for it")]
    PeerWithoutSecret(String),
}

impl CellConfig {
    /// A configuration from explicit parts.
    ///
    /// ```
    /// use paracell_domain::{CellConfig, TenantScope};
    /// let config = CellConfig::new("cell-a", TenantScope::All).unwrap();
    /// assert_eq!(config.limits.max_body_bytes, 262_144);
    /// ```
    pub fn new(cell_id: &str, tenants: TenantScope) -> Result<Self, ConfigError> {
        let cell_id = CellId::parse(cell_id).map_err(|reason| ConfigError::InvalidCellId {
            value: cell_id.to_owned(),
            reason,
        })?;
        Ok(Self {
            cell_id,
            tenants,
            limits: Limits::default(),
            replication: ReplicationConfig::default(),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    ///
    /// ```
    /// use paracell_domain::{CellConfig, TenantScope};
    /// let env = |k: &str| match k {
    ///     "PARACELL_CELL_ID" => Some("cell-a".to_string()),
    ///     "PARACELL_TENANTS" => Some("coop-1, coop-2".to_string()),
    ///     _ => None,
    /// };
    /// let config = CellConfig::from_lookup(env).unwrap();
    /// assert!(matches!(config.tenants, TenantScope::Set(ref s) if s.len() == 2));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let cell = get("PARACELL_CELL_ID").ok_or(ConfigError::Missing("PARACELL_CELL_ID"))?;
        let tenants = parse_tenants(
            &get("PARACELL_TENANTS").ok_or(ConfigError::Missing("PARACELL_TENANTS"))?,
        )?;
        let mut config = Self::new(&cell, tenants)?;
        if let Some(raw) = get("PARACELL_MAX_BODY_BYTES") {
            config.limits.max_body_bytes = raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=Limits::MAX_BODY_BYTES_CEILING).contains(n))
                .ok_or(ConfigError::InvalidBodyLimit(raw))?;
        }
        if let Some(raw) = get("PARACELL_PEER_SECRETS") {
            config.replication.secrets = parse_secrets(&raw)?;
        }
        if let Some(raw) = get("PARACELL_PEERS") {
            config.replication.peers = parse_peers(&raw)?;
        }
        for peer in &config.replication.peers {
            if config.replication.secret_for(&peer.cell).is_none() {
                return Err(ConfigError::PeerWithoutSecret(peer.cell.to_string()));
            }
        }
        Ok(config)
    }
}

fn parse_peers(raw: &str) -> Result<Vec<PeerConfig>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let invalid = || ConfigError::InvalidPeer(entry.to_owned());
            let (cell, url) = entry.split_once('=').ok_or_else(invalid)?;
            let cell = CellId::parse(cell.trim()).map_err(|_| invalid())?;
            let url = url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid());
            }
            Ok(PeerConfig {
                cell,
                base_url: url.trim_end_matches('/').to_owned(),
            })
        })
        .collect()
}

fn parse_secrets(raw: &str) -> Result<Vec<PeerSecret>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (cell, secret) = entry.split_once('=').unwrap_or((entry, ""));
            let invalid = |reason| ConfigError::InvalidPeerSecret {
                cell: cell.trim().chars().take(64).collect(),
                reason,
            };
            let id = CellId::parse(cell.trim()).map_err(|_| invalid(SecretError::Format))?;
            PeerSecret::parse(id, secret.trim()).map_err(invalid)
        })
        .collect()
}

fn parse_tenants(raw: &str) -> Result<TenantScope, ConfigError> {
    if raw == "*" {
        return Ok(TenantScope::All);
    }
    raw.split(',')
        .map(str::trim)
        .map(|t| {
            TenantId::parse(t).map_err(|reason| ConfigError::InvalidTenant {
                value: t.to_owned(),
                reason,
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()
        .map(TenantScope::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<CellConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CellConfig::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn reads_every_variable() {
        let c = read(&[
            ("PARACELL_CELL_ID", "cell-a"),
            ("PARACELL_TENANTS", "*"),
            ("PARACELL_MAX_BODY_BYTES", "1024"),
        ])
        .unwrap();
        assert_eq!(c.cell_id.as_str(), "cell-a");
        assert_eq!(c.tenants, TenantScope::All);
        assert_eq!(c.limits.max_body_bytes, 1024);
    }

    #[test]
    fn bad_configuration_is_a_clear_error() {
        assert_eq!(
            read(&[("PARACELL_TENANTS", "*")]),
            Err(ConfigError::Missing("PARACELL_CELL_ID"))
        );
        assert_eq!(
            read(&[("PARACELL_CELL_ID", "a")]),
            Err(ConfigError::Missing("PARACELL_TENANTS"))
        );
        let err =
            read(&[("PARACELL_CELL_ID", "a"), ("PARACELL_TENANTS", "coop-1,,x")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PARACELL_TENANTS entry \"\" must not be empty (use * for every tenant, or a comma list)"
        );
        for bad in ["0", "-1", "4194305", "lots"] {
            let err = read(&[
                ("PARACELL_CELL_ID", "a"),
                ("PARACELL_TENANTS", "*"),
                ("PARACELL_MAX_BODY_BYTES", bad),
            ])
            .unwrap_err();
            assert_eq!(err, ConfigError::InvalidBodyLimit(bad.into()));
        }
        assert!(matches!(
            read(&[("PARACELL_CELL_ID", "cell a"), ("PARACELL_TENANTS", "*")]),
            Err(ConfigError::InvalidCellId { .. })
        ));
    }

    #[test]
    fn peers_need_secrets_and_secrets_are_never_echoed() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let c = read(&[
            ("PARACELL_CELL_ID", "cell-a"),
            ("PARACELL_TENANTS", "*"),
            ("PARACELL_PEERS", "cell-b=https://b.example/api/"),
            ("PARACELL_PEER_SECRETS", &format!("cell-b={secret}")),
        ])
        .unwrap();
        assert_eq!(c.replication.peers[0].base_url, "https://b.example/api");
        assert!(
            c.replication
                .secret_for(&c.replication.peers[0].cell)
                .is_some()
        );
        let missing = read(&[
            ("PARACELL_CELL_ID", "cell-a"),
            ("PARACELL_TENANTS", "*"),
            ("PARACELL_PEERS", "cell-b=https://b.example"),
        ]);
        assert_eq!(
            missing,
            Err(ConfigError::PeerWithoutSecret("cell-b".into()))
        );
        let bad = read(&[
            ("PARACELL_CELL_ID", "cell-a"),
            ("PARACELL_TENANTS", "*"),
            (
                "PARACELL_PEER_SECRETS",
                "cell-b=MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap_err();
        assert!(!bad.to_string().contains("MfKQ"), "{bad}");
        assert!(matches!(
            read(&[
                ("PARACELL_CELL_ID", "cell-a"),
                ("PARACELL_TENANTS", "*"),
                ("PARACELL_PEERS", "cell-b=ftp://x"),
            ]),
            Err(ConfigError::InvalidPeer(_))
        ));
    }

    #[test]
    fn serves_only_its_tenants() {
        let c = read(&[("PARACELL_CELL_ID", "a"), ("PARACELL_TENANTS", "coop-1")]).unwrap();
        assert!(c.tenants.serves(&TenantId::parse("coop-1").unwrap()));
        assert!(!c.tenants.serves(&TenantId::parse("coop-2").unwrap()));
    }
}
