//! Stage 1, capture: where frames come from. Today capture files (pcap, pcapng); live AF_PACKET
//! capture joins here later. Owns the `Frame` type handed to decode; knows nothing of protocols.

pub mod file;
mod pcapng;

pub use file::{CaptureError, CaptureFile, Frame, Interface, LinkType};
