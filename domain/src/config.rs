//! Cell configuration, read from the environment by one function so both clouds read it identically.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PARACELL_CELL_ID` | this cell's id | required |
//! | `PARACELL_TENANTS` | `*` (every tenant) or a comma list of tenant ids | required |
//! | `PARACELL_MAX_BODY_BYTES` | largest request body accepted, 1..=4194304 | 262144 |

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

/// A cell's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellConfig {
    /// This cell.
    pub cell_id: CellId,
    /// Tenants it serves.
    pub tenants: TenantScope,
    /// Limits.
    pub limits: Limits,
}

/// A configuration the cell refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
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
        Ok(config)
    }
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
    fn serves_only_its_tenants() {
        let c = read(&[("PARACELL_CELL_ID", "a"), ("PARACELL_TENANTS", "coop-1")]).unwrap();
        assert!(c.tenants.serves(&TenantId::parse("coop-1").unwrap()));
        assert!(!c.tenants.serves(&TenantId::parse("coop-2").unwrap()));
    }
}
