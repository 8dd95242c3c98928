//! The cloud-neutral HTTP contract: a neutral request in, a neutral response out.
//!
//! Adapters translate a platform's envelope into an [`ApiRequest`] and an [`ApiResponse`] back into
//! the platform's reply shape. Everything in between (routing, status codes, headers, problem bodies)
//! is decided here and nowhere else.

mod media_type;
mod panic;
mod problem;
mod request;
mod response;
pub mod router;

pub use media_type::{MediaTypeError, require_json};
pub use panic::{CatchPanic, catch_panic};
pub use problem::{Problem, ProblemType};
pub use request::{ApiRequest, Headers};
pub use response::{ApiResponse, JSON, PROBLEM_JSON, Telemetry};
