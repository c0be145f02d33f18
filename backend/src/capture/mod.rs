//! Stage 1, capture: where frames come from. Capture files (pcap, pcapng) and live AF_PACKET rings
//! on a node's interfaces. Owns the `Frame` type handed to decode; knows nothing of protocols.

pub mod file;
pub mod link;
pub mod live;
mod order;
mod pcapng;
mod prefetch;
pub mod write;

pub use file::{CaptureError, CaptureFile};
pub use link::{Frame, Interface, LinkType, link_type_name};
