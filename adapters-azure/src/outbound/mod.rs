//! What the handler calls: the cell's Cosmos DB container (feature `cosmos`), which also keeps the
//! relay's dead letters, the Event Grid topic the relay publishes the cell's events to, and the
//! Entra ID tokens both can authenticate with (feature `entra`).

#[cfg(feature = "cosmos")]
pub mod cosmos;
#[cfg(feature = "entra")]
pub mod entra;
pub mod eventgrid;
