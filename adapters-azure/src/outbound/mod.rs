//! What the handler calls: the cell's Cosmos DB container (feature `cosmos`), which also keeps the
//! relay's dead letters.

#[cfg(feature = "cosmos")]
pub mod cosmos;
