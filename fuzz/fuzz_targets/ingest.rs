//! What an agent (or anything that reaches the ingest port) sends the hub: any bytes decode to a
//! message or one error, never a panic; a batch that decodes goes through naming and the merge.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use podtap::dissect::Dissected;
use podtap::engine::Joiner;
use podtap::ingest::wire::{AgentMessage, decode_agent, decode_hub};
use podtap::resolve::ClusterState;

fuzz_target!(|data: &[u8]| {
    let _ = decode_hub(data);
    let Ok(AgentMessage::Batch(batch)) = decode_agent(data) else { return };
    let mut joiner = Joiner::new(Arc::new(ClusterState::default()));
    let mut out = Vec::new();
    for o in batch.items {
        joiner.take(1, [Dissected::Exchange(Box::new(o.exchange))], o.at_us, &mut out);
    }
    joiner.flush(batch.watermark_us, &mut out);
    joiner.finish(1, Vec::new(), &mut out);
});
