//! podtap's wire types: what the engine produces, what the HTTP API and the WebSocket stream carry,
//! and what the browser app draws. Compiled for the server and for wasm32, so it does no IO and
//! depends on nothing platform-specific.
//!
//! These are our own serde structs, never Kubernetes API types: the API can change shape without
//! changing what a browser that is already open understands.

pub mod balance;
pub mod database;
pub mod filter;
pub mod group;
pub mod headers;
pub mod health;
pub mod histogram;
pub mod kafka;
pub mod map;
pub mod record;
pub mod share;
pub mod stream;
pub mod topic;

pub use balance::{Balance, EndpointBalance};
pub use database::{RedisExchange, SqlExchange, WebSocketExchange, WebSocketSide, sqlstate_name};
pub use filter::{Filter, FilterError};
pub use headers::{HeaderName, HeaderValue, Headers};
pub use health::{AgentStatus, BusPartition, BusStatus, MissingKind, Outage};
pub use histogram::Histogram;
pub use kafka::{KafkaExchange, KafkaTopic};
pub use map::{EdgePath, EdgeStats, MapBuilder, MapEdge, MapNode, MapStats, OperationStats, PROTOCOLS, ServiceMap};
pub use record::{
    Detail, DnsExchange, Endpoint, EndpointKind, GrpcExchange, HttpExchange, Method, Name, Record, TcpClose,
    TcpConnection, TlsExchange, Tunnel, TunnelKind, Via, ViaKind, grpc_status_name, method_of, port_hint,
};
pub use share::{Access, PacketsInfo, SessionMeta, SharedLink, WhoAmI};
pub use stream::{ClientMessage, Clock, ServerMessage};
