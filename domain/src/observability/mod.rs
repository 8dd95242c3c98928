//! What a cell or a router tells its operator besides its answers: the [`metrics`] both clouds emit
//! and the [`trace`] context that follows a request across them, both
//! under the same names and dimensions. (Log events are the adapters'; the causes they carry come
//! from [`crate::http::Telemetry::cause`].)

pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod store_requests;
pub mod trace;
