//! What a cell or a router tells its operator besides its answers: the [`metrics`] both clouds emit,
//! under the same names and dimensions. (Log events are the adapters'; the causes they carry come
//! from [`crate::http::Telemetry::cause`].)

pub mod metrics;
