//! Who a request is for: the tenant rules every Paracell front door applies, the cells and the edge
//! router alike, so both answer a missing or invalid tenant with the same bytes.

use crate::http::{ApiRequest, Problem, ProblemType};
use crate::tenancy::TenantId;

/// The tenant a request names. A platform-authenticated tenant wins over the header; a header that
/// disagrees with it is refused rather than ignored, so a misconfigured client fails loudly.
///
/// ```
/// use paracell_domain::{contract::tenant::requested_tenant, http::ApiRequest};
/// let request = ApiRequest::new("GET", "/health").with_header("X-Tenant-ID", "coop-1");
/// assert_eq!(requested_tenant(&request).unwrap().as_str(), "coop-1");
/// assert_eq!(requested_tenant(&ApiRequest::new("GET", "/")).unwrap_err().status(), 400);
/// ```
pub fn requested_tenant(request: &ApiRequest) -> Result<TenantId, Problem> {
    let header = request.headers.get("x-tenant-id");
    let raw = match (&request.authenticated_tenant, header.as_deref()) {
        (Some(claim), Some(header)) if claim != header => {
            return Err(Problem::new(ProblemType::InvalidTenant)
                .detail("X-Tenant-ID differs from the tenant the caller authenticated as."));
        }
        (Some(claim), _) => claim.as_str(),
        (None, Some(header)) => header,
        (None, None) => return Err(Problem::new(ProblemType::MissingTenant)),
    };
    TenantId::parse(raw).map_err(|_| Problem::new(ProblemType::InvalidTenant))
}
