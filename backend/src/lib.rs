//! podtap: capture → decode → reassemble → dissect → resolve → correlate → aggregate → publish.
//! Each stage is a module, arrows point only downstream, and a domain type crosses every boundary
//! (`Frame`, `Segment`, ordered bytes, `Exchange`, `Endpoint`, `Record`, `ServiceMap`).
//! The `podtap` binary (`main.rs`) only parses flags and calls in here.

pub mod access;
pub mod aggregate;
pub mod analyze;
pub mod capture;
pub mod cli;
pub mod correlate;
pub mod decode;
pub mod demo;
pub mod dissect;
pub mod engine;
pub mod feed;
pub mod ingest;
pub mod packets;
pub mod publish;
pub mod reassemble;
pub mod resolve;
pub mod share;
pub mod store;
pub mod timespec;
