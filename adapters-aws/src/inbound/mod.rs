//! What AWS sends the function: HTTP events from every front door, DynamoDB Streams records of the
//! cell table, SQS messages of the dead-letter replay queue, and (for consumers) the EventBridge
//! deliveries of the cells' events.

pub mod event_json;
pub mod eventbridge;
pub mod http;
pub mod response;
pub mod stream;
