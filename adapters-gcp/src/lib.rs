//! Paracell's third failure domain: the witness acceptor of the placement quorum on Google Cloud
//! Storage ([`gcs::GcsSlots`]).
//!
//! The placement register is decided by a majority of three acceptors (CASPaxos, Rystsov 2018,
//! arXiv:1802.07000; the protocol is `paracell_domain::placement::quorum`). One acceptor lives on
//! AWS (DynamoDB), one on Azure (Cosmos DB), and the witness here, on a provider that is neither:
//! a witness on S3 or Azure Blob would give one cloud two of the three votes, and that cloud's
//! outage would stop the other cloud's primaries from renewing their leases — the very outage the
//! quorum exists for.
//!
//! The crate has no SDK: it speaks the Cloud Storage JSON API through the domain's
//! [`HttpClient`](paracell_domain::ports::HttpClient) port, so any host (hyper on tokio, a Lambda,
//! a Function) brings its own client.

#![deny(missing_docs)]

pub mod gcs;
