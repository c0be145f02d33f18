//! What a view reads: the windowed queries every page and export makes, answered by the live store
//! (the hub) or by a saved session, so the API serves both alike.

use std::sync::Arc;

use podtap_shared::{Filter, Record, ServiceMap};

use super::{Bucket, Connection, Cursor, Kinds, StoreStats, Window};
use crate::aggregate::balance::Balance;
use crate::packets::{Found, Wanted};

/// What the windowed endpoints read: the live store (`Hub`) or a saved session (`Frozen`).
pub trait Data: Send + Sync {
    /// "Now" for relative times.
    fn now_us(&self) -> u64;
    fn store_stats(&self) -> StoreStats;
    fn total(&self) -> u64;
    fn records(&self, w: Window, f: &Filter, k: Kinds, after: Option<Cursor>, limit: usize) -> (Vec<Record>, bool);
    fn record(&self, id: u64) -> Option<Record>;
    fn connection(&self, conn: u64) -> Option<Connection>;
    fn map(&self, filter: &Filter, w: Window) -> ServiceMap;
    fn timeline(&self, w: Window, step_us: u64, filter: &Filter) -> Vec<Bucket>;
    fn balance(&self, service: &str, w: Window) -> Option<Balance>;
    fn balances(&self, w: Window) -> Vec<Balance>;
    /// The retained packets of the wanted flows, and whether some aged out; `None` when this
    /// source keeps no packets here (see `remote`).
    fn packets(&self, _wanted: &[Wanted]) -> Option<Found> {
        None
    }
    /// Where packets are kept when not here: the nodes' agents, asked over their connections.
    fn remote(&self) -> Option<Arc<dyn RemotePackets>> {
        None
    }
}

/// Packets kept on other machines (every node's agent), fetched on demand.
pub trait RemotePackets: Send + Sync {
    fn fetch(&self, wanted: Vec<Wanted>) -> std::pin::Pin<Box<dyn Future<Output = Option<Found>> + Send>>;
}

/// The packets of the wanted flows, wherever the data keeps them.
pub async fn find_packets(data: &dyn Data, wanted: Vec<Wanted>) -> Option<Found> {
    match data.remote() {
        Some(remote) => remote.fetch(wanted).await,
        None => data.packets(&wanted),
    }
}
