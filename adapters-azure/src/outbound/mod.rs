//! What the handler calls: the cell's Cosmos DB container (feature `cosmos`), which also keeps the
//! relay's dead letters, and the Event Grid topic the relay publishes the cell's events to.

#[cfg(feature = "cosmos")]
pub mod cosmos;
pub mod eventgrid;
