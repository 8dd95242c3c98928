//! The [`HttpClient`] port on hyper: pooled keep-alive connections, HTTP/1.1, a deadline per request,
//! and errors that say whether the request may have reached the server (the relay and the router
//! decide retries on it). HTTPS with the `tls` feature (rustls, webpki roots).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use paracell_domain::ports::{HttpClient, OutboundRequest, OutboundResponse, TransportError};
use std::time::Duration;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

/// An HTTP client for peers, buses and cells.
#[derive(Clone)]
pub struct HyperClient {
    client: Client<Connector, Full<Bytes>>,
}

impl Default for HyperClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperClient {
    /// A client with a 1 s connect timeout and 60 s idle connections.
    pub fn new() -> Self {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(1)));
        http.set_nodelay(true);
        #[cfg(feature = "tls")]
        let connector = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "tls"))]
        let connector = http;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self { client }
    }
}

#[async_trait::async_trait]
impl HttpClient for HyperClient {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, TransportError> {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|e| TransportError::Connect(format!("not a valid request: {e}")))?;
        let exchange = async {
            let response = self.client.request(http_request).await.map_err(|e| {
                if e.is_connect() {
                    TransportError::Connect(e.to_string())
                } else {
                    TransportError::Broken(e.to_string())
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| TransportError::Broken(e.to_string()))?
                .to_bytes()
                .to_vec();
            Ok(OutboundResponse {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body,
            })
        };
        tokio::time::timeout(request.timeout, exchange)
            .await
            .unwrap_or(Err(TransportError::Timeout))
    }
}

/// [`Sleep`](paracell_domain::ports::Sleep) on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

#[async_trait::async_trait]
impl paracell_domain::ports::Sleep for TokioSleep {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}
