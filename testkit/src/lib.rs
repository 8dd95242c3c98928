//! Harness pieces for Paracell's drills and for users' own: start here when a test needs the
//! network to misbehave.
//!
//! - [`proxy::FaultProxy`]: a TCP proxy between one process and one store or peer that can **cut**
//!   (close, refuse), **black-hole** (accept and never answer), **delay** and **heal** its link,
//!   each direction on its own. Stopping a process is not a partition: a partition leaves both
//!   sides running, and a black hole makes every timeout matter.
//! - [`runtime::OnTokio`]: the domain's contract suites on a tokio runtime (stores on real
//!   services need one).

#![deny(missing_docs)]

pub mod proxy;
pub mod runtime;
