//! What the function calls: the cell's DynamoDB table (feature `dynamodb`), the relay's SQS
//! dead-letter queue (feature `sqs`) and the EventBridge bus the relay publishes the cell's events to.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod eventbridge;
#[cfg(feature = "sqs")]
pub mod sqs;
