//! Where a tenant's requests go: the [`Route`] the edge router forwards by, the [`RouteSource`] port
//! it reads routes from, and the two sources every host can use: a [`RouteTable`] (the registry file
//! format) and [`PlacementRoutes`] (the placement registry of [`crate::placement`], or its replica,
//! plus a [`CellDirectory`] saying where each cell listens).

use crate::CellId;
use crate::DecodeError;
use crate::placement::registry::{Placement, PlacementRegistry, PlacementReplica};
use crate::ports::StoreError;
use crate::tenancy::TenantId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The cloud a cell runs on (reported in `X-Paracell-Cloud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// AWS (Lambda behind API Gateway, a Function URL or an ALB).
    Aws,
    /// Azure (a Functions custom handler).
    Azure,
}

impl Cloud {
    /// `aws` or `azure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::Azure => "azure",
        }
    }

    /// Parses `aws` or `azure`.
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        match raw {
            "aws" => Ok(Self::Aws),
            "azure" => Ok(Self::Azure),
            other => Err(DecodeError::new(
                "cloud",
                format!("{other:?} is neither \"aws\" nor \"azure\""),
            )),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cell's base URL: `http://` or `https://`, a host, any stage or route prefix, no trailing slash,
/// no query. The request's path and query are appended as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses a base URL (a trailing slash is dropped).
    ///
    /// ```
    /// use paracell_domain::edge::routes::BaseUrl;
    /// assert_eq!(BaseUrl::parse("https://cell-a.example/Prod/").unwrap().as_str(), "https://cell-a.example/Prod");
    /// assert!(BaseUrl::parse("ftp://x").is_err());
    /// assert!(BaseUrl::parse("http://x/?a=1").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        let rest = raw
            .strip_prefix("http://")
            .or_else(|| raw.strip_prefix("https://"))
            .ok_or_else(|| {
                DecodeError::new(
                    "url",
                    format!("{raw:?} does not start with http:// or https://"),
                )
            })?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || raw.contains(['?', '#']) || raw.bytes().any(|b| !b.is_ascii_graphic())
        {
            return Err(DecodeError::new(
                "url",
                format!(
                    "{raw:?} is not a base URL (a host, an optional path, no query or fragment)"
                ),
            ));
        }
        Ok(Self(raw.trim_end_matches('/').to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where one tenant's requests go, and the placement epoch that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The tenant's primary cell.
    pub cell: CellId,
    /// Its cloud.
    pub cloud: Cloud,
    /// Where it listens.
    pub url: BaseUrl,
    /// The placement epoch this route is valid for; the router passes it to the cell
    /// (`Paracell-Expected-Epoch`), which refuses a write routed by another epoch.
    pub epoch: u64,
}

/// Reads tenants' routes. Hosts implement it (a file, DynamoDB, a Cosmos DB replica, Workers KV).
#[async_trait::async_trait]
pub trait RouteSource: Send + Sync {
    /// The tenant's route; `Ok(None)` when the registry allocates the tenant to no cell. An `Err`
    /// means the registry could not be read: the router keeps serving what it knew.
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError>;
}

/// A registry snapshot: the routes of a registry file, in this shape (extra members are allowed and
/// ignored, so a file can carry notes or fields of later versions):
///
/// ```json
/// {"tenants": {"coop-1": {"cell": "cell-a", "cloud": "aws", "url": "http://127.0.0.1:8081", "epoch": 1}}}
/// ```
///
/// ```
/// use paracell_domain::edge::routes::RouteTable;
/// let table = RouteTable::parse(br#"{"tenants": {"coop-1": {"cell": "cell-a", "cloud": "aws",
///     "url": "http://127.0.0.1:8081", "epoch": 1, "note": "ok"}}}"#).unwrap();
/// assert_eq!(table.len(), 1);
/// let err = RouteTable::parse(br#"{"tenants": {"coop-1": {"cell": "cell-a", "cloud": "gcp", "url": "http://x", "epoch": 1}}}"#).unwrap_err();
/// assert!(err.detail.contains("coop-1") && err.detail.contains("gcp"), "{err}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: BTreeMap<TenantId, Route>,
}

impl RouteTable {
    /// Parses a registry file; every problem names the tenant and the member.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let invalid = |detail: String| DecodeError::new("route table", detail);
        let document: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let tenants = document
            .get("tenants")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| invalid("no \"tenants\" object".into()))?;
        let mut routes = BTreeMap::new();
        for (name, entry) in tenants {
            let route = (|| {
                let tenant = TenantId::parse(name).map_err(|e| e.to_string())?;
                let text = |member: &str| {
                    entry
                        .get(member)
                        .and_then(serde_json::Value::as_str)
                        .ok_or_else(|| format!("\"{member}\" is missing or not a string"))
                };
                let cell = CellId::parse(text("cell")?).map_err(|e| format!("cell: {e}"))?;
                let cloud = Cloud::parse(text("cloud")?).map_err(|e| e.to_string())?;
                let url = BaseUrl::parse(text("url")?).map_err(|e| e.to_string())?;
                let epoch = entry
                    .get("epoch")
                    .and_then(serde_json::Value::as_u64)
                    .filter(|e| *e > 0)
                    .ok_or("\"epoch\" is missing or not a positive integer")?;
                Ok::<_, String>((
                    tenant,
                    Route {
                        cell,
                        cloud,
                        url,
                        epoch,
                    },
                ))
            })()
            .map_err(|e| invalid(format!("tenant {name:?}: {e}")))?;
            routes.insert(route.0, route.1);
        }
        Ok(Self { routes })
    }

    /// Adds or replaces a route.
    pub fn insert(&mut self, tenant: TenantId, route: Route) {
        self.routes.insert(tenant, route);
    }

    /// A tenant's route.
    pub fn get(&self, tenant: &TenantId) -> Option<&Route> {
        self.routes.get(tenant)
    }

    /// How many tenants it routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether it routes no tenant.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[async_trait::async_trait]
impl RouteSource for RouteTable {
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError> {
        Ok(self.get(tenant).cloned())
    }
}

/// Where each cell listens: `cell=cloud=url`, comma-separated (`PARACELL_EDGE_CELLS`), for routes
/// read from the placement registry, which names cells, not URLs.
///
/// ```
/// use paracell_domain::edge::routes::CellDirectory;
/// let cells = CellDirectory::parse("cell-aws=aws=https://a.example/Prod, cell-azure=azure=https://b.example/api").unwrap();
/// assert_eq!(cells.len(), 2);
/// assert!(CellDirectory::parse("cell-a=aws").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellDirectory {
    cells: BTreeMap<CellId, (Cloud, BaseUrl)>,
}

impl CellDirectory {
    /// Parses `cell=cloud=url,…`.
    pub fn parse(list: &str) -> Result<Self, DecodeError> {
        let invalid = |detail: String| DecodeError::new("cells", detail);
        let mut cells = BTreeMap::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let mut parts = item.splitn(3, '=');
            let (Some(cell), Some(cloud), Some(url)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid(format!("{item:?} is not cell=cloud=url")));
            };
            let cell = CellId::parse(cell).map_err(|e| invalid(format!("{item:?}: {e}")))?;
            let cloud = Cloud::parse(cloud).map_err(|e| invalid(format!("{item:?}: {e}")))?;
            let url = BaseUrl::parse(url).map_err(|e| invalid(format!("{item:?}: {e}")))?;
            cells.insert(cell, (cloud, url));
        }
        if cells.is_empty() {
            return Err(invalid("names no cell".into()));
        }
        Ok(Self { cells })
    }

    /// How many cells it knows.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether it knows no cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The route to a placement's primary.
    pub fn route(&self, placement: &Placement) -> Result<Route, StoreError> {
        let (cloud, url) = self.cells.get(&placement.primary).ok_or_else(|| {
            StoreError::Failed(format!(
                "the registry places tenant {} on cell {}, which the cell directory does not list",
                placement.tenant, placement.primary
            ))
        })?;
        Ok(Route {
            cell: placement.primary.clone(),
            cloud: *cloud,
            url: url.clone(),
            epoch: placement.epoch,
        })
    }
}

enum Placements {
    Authority(Arc<dyn PlacementRegistry>),
    Replica(Arc<dyn PlacementReplica>),
    Acceptors(Arc<crate::placement::quorum::AcceptorReads>),
}

/// Routes from the placement registry (the authority, or its read replica on the other cloud): a
/// tenant goes to its primary, at the placement's epoch. A tenant being migrated still goes to its
/// primary, which answers `503 tenant-frozen` itself while the move holds its writes.
pub struct PlacementRoutes {
    placements: Placements,
    cells: CellDirectory,
}

impl PlacementRoutes {
    /// Routes from the placement authority.
    pub fn from_registry(registry: Arc<dyn PlacementRegistry>, cells: CellDirectory) -> Self {
        Self {
            placements: Placements::Authority(registry),
            cells,
        }
    }

    /// Routes from the placement quorum's acceptors, without a quorum (the newest any answers, the
    /// host's own cloud's first: [`crate::placement::quorum::AcceptorReads`]).
    pub fn from_acceptors(
        reads: Arc<crate::placement::quorum::AcceptorReads>,
        cells: CellDirectory,
    ) -> Self {
        Self {
            placements: Placements::Acceptors(reads),
            cells,
        }
    }

    /// Routes from the placement registry's replica.
    pub fn from_replica(replica: Arc<dyn PlacementReplica>, cells: CellDirectory) -> Self {
        Self {
            placements: Placements::Replica(replica),
            cells,
        }
    }
}

#[async_trait::async_trait]
impl RouteSource for PlacementRoutes {
    async fn route(&self, tenant: &TenantId) -> Result<Option<Route>, StoreError> {
        let placement = match &self.placements {
            Placements::Authority(registry) => registry.get(tenant).await?,
            Placements::Replica(replica) => replica.get(tenant).await?,
            Placements::Acceptors(reads) => reads.get(tenant).await?,
        };
        placement.map(|p| self.cells.route(&p)).transpose()
    }
}
