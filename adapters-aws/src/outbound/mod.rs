//! What the function calls: the cell's DynamoDB table (feature `dynamodb`) and the relay's SQS
//! dead-letter queue (feature `sqs`).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqs")]
pub mod sqs;
