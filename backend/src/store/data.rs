//! What a view reads: the windowed queries every page and export makes, answered by the live store
//! (the hub) or by a saved session, so the API serves both alike.

use std::sync::Arc;

use podtap_shared::{Record, ServiceMap};

use super::{Bucket, Connection, Cursor, Kinds, Lens, StoreStats, Window};
use crate::access::Sight;
use crate::aggregate::balance::Balance;
use crate::packets::{Found, Wanted};

/// What the windowed endpoints read: the live store (`Hub`) or a saved session (`Frozen`). Every
/// query that reads records reads them through the viewer's sight (`Lens`, `Sight`): nothing
/// here answers from records the viewer may not see.
pub trait Data: Send + Sync {
    /// "Now" for relative times.
    fn now_us(&self) -> u64;
    fn store_stats(&self) -> StoreStats;
    /// Records since start (a saved session: in it) that `sight` sees.
    fn total(&self, sight: &Sight) -> u64;
    fn records(&self, w: Window, lens: Lens, k: Kinds, after: Option<Cursor>, limit: usize) -> (Vec<Record>, bool);
    fn record(&self, id: u64, sight: &Sight) -> Option<Record>;
    fn connection(&self, conn: u64, sight: &Sight) -> Option<Connection>;
    fn map(&self, lens: Lens, w: Window) -> ServiceMap;
    fn timeline(&self, w: Window, step_us: u64, lens: Lens) -> Vec<Bucket>;
    fn balance(&self, service: &str, w: Window, sight: &Sight) -> Option<Balance>;
    fn balances(&self, w: Window, sight: &Sight) -> Vec<Balance>;
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
