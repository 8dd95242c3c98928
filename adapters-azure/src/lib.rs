//! # paracell-azure
//!
//! Runs a Paracell [`Cell`](paracell_domain::Cell) as an Azure Functions **custom handler**: an HTTP
//! server the Functions host starts and talks to on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`.
//!
//! The adapter only translates: the host's request (a payload-mode envelope, or a forwarded plain
//! HTTP request) into the domain's [`ApiRequest`](paracell_domain::http::ApiRequest), and the domain's
//! response back into what the host expects. It follows the host as implemented, not as documented
//! (see `shared/notes/azure-custom-handler.md` in the project): repeated query values are recovered
//! from `Data.req.Url`, `Body` is missing without `Content-Length`, base64 only for
//! octet-stream/multipart, and every payload-mode reply is HTTP 200 JSON with the real status inside.
//!
//! | module | holds |
//! |---|---|
//! | [`config`] | mode, route prefix and principal trust, read from the function app's own `host.json` |
//! | [`inbound::envelope`] | serde models of the payload-mode request and reply |
//! | [`inbound::payload`] | payload mode: envelope → neutral request, neutral response → envelope |
//! | [`inbound::forwarding`] | forwarding mode: plain HTTP → neutral request and back |
//! | [`inbound::principal`] | App Service authentication's `X-MS-CLIENT-PRINCIPAL` → authenticated tenant |
//! | [`inbound::trigger`] | the Cosmos DB change-feed trigger's invocation → entries for the relay |
//! | [`outbound`] | the Cosmos DB store and dead-letter container (feature `cosmos`) |
//! | [`server`] | the handler: readiness probe, trigger route, body deadlines, the in-process entry point |
//! | [`listener`] | the front door: connection cap, header-read and idle timeouts, graceful shutdown |
//! | [`host_model`] | what the Functions host does around the handler (the conformance suite reuses it) |
//!
//! ```
//! use paracell_azure::{AzureConfig, AzureHandler, HostRequest, Mode};
//! use paracell_domain::{Cell, CellConfig, TenantScope};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cell = Cell::in_memory(CellConfig::new("cell-b", TenantScope::All).unwrap());
//! let handler = AzureHandler::new(cell, AzureConfig { mode: Mode::Forwarding, ..AzureConfig::default() });
//! let reply = handler.invoke(HostRequest::new("GET", "/api/health")).await;
//! assert_eq!(reply.status, 200);
//! # });
//! ```

#![deny(missing_docs)]

pub mod config;
mod front_door;
pub mod functions;
pub mod host_model;
pub mod inbound;
pub mod listener;
pub mod logging;
pub mod outbound;
pub mod server;

pub use config::{AzureConfig, Front, Mode, RoutePrefix};
pub use front_door::{serve, serve_workload};
pub use server::{AzureHandler, HandlerReply, HostRequest};
