//! [`HttpService`]: what a front door serves. A cell and the edge router are both one, so each cloud
//! adapter hosts either with the same translation code.

use super::{ApiRequest, ApiResponse};

/// Something that answers neutral HTTP requests: a [`crate::Cell`] or an [`crate::edge::Edge`].
/// Adapters translate a platform's envelope into an [`ApiRequest`], call [`HttpService::handle`],
/// and translate the [`ApiResponse`] back.
#[async_trait::async_trait]
pub trait HttpService: Send + Sync {
    /// Answers one request; every outcome, errors included, is a response.
    async fn handle(&self, request: ApiRequest) -> ApiResponse;

    /// The largest request body it accepts; adapters stop reading one byte past it.
    fn max_body_bytes(&self) -> usize;

    /// The `413 payload-too-large` answer, for an envelope too large to even parse.
    fn oversized_request(&self) -> ApiResponse;

    /// Its name in logs and metrics (the cell's id, the router's id).
    fn name(&self) -> &str;
}

#[async_trait::async_trait]
impl HttpService for crate::Cell {
    async fn handle(&self, request: ApiRequest) -> ApiResponse {
        crate::Cell::handle(self, request).await
    }

    fn max_body_bytes(&self) -> usize {
        self.config().limits.max_body_bytes
    }

    fn oversized_request(&self) -> ApiResponse {
        crate::Cell::oversized_request(self)
    }

    fn name(&self) -> &str {
        self.config().cell_id.as_str()
    }
}
