//! What the Functions host sends the handler: HTTP invocations in payload mode ([`payload`],
//! [`envelope`]) or forwarded ([`forwarding`]), the App Service principal ([`principal`]), and the
//! Cosmos DB change-feed trigger that drives the relay ([`trigger`]).

pub mod envelope;
pub mod forwarding;
pub mod payload;
pub mod principal;
pub mod trigger;
