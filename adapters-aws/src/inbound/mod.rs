//! What AWS sends the function: HTTP events from every front door, DynamoDB Streams records of the
//! cell table, and SQS messages of the dead-letter replay queue.

pub mod http;
pub mod runtime;
pub mod stream;
