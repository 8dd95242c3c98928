//! The cloud-neutral contract a client sees: the neutral HTTP request and response ([`http`]), how a
//! request becomes a domain command ([`validation`], [`tenant`]) and how a domain result becomes a
//! response ([`seam`]).
//!
//! Use cases ([`crate::ledger`], [`crate::replication`]) never build a status, a header or a problem:
//! they return domain results, and [`seam`] maps them, once, for every caller (the cell, the relay,
//! the router).

pub mod http;
pub mod json;
pub mod seam;
pub mod tenant;
pub mod validation;
