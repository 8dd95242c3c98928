//! What the Functions host sends the handler: HTTP invocations in payload mode ([`payload`],
//! [`envelope`]) or forwarded ([`forwarding`]), the App Service principal ([`principal`]), and the
//! Cosmos DB change-feed trigger that drives the relay ([`trigger`]), and (for consumers) the Event Grid
//! trigger carrying the cells' events ([`eventgrid`]).

pub mod envelope;
pub mod eventgrid;
pub mod forwarding;
pub mod payload;
pub mod principal;
pub mod trigger;
