//! Agents and the hub: `podtap agent` observes one node and streams what it finds (exchanges
//! with the addresses as captured, no names) to `podtap hub`, which names and merges every
//! node's observations into one record per request. `wire` is the protocol, `outbox` the agent's
//! bounded buffer, `agent` its capture and sender, `server` the hub's endpoint and `join` the
//! hub's merge of all agents.

pub mod agent;
pub mod bus;
pub mod fetch;
pub mod join;
pub mod outbox;
pub mod run;
pub mod server;
pub mod wire;
