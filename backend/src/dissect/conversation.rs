//! For the dissectors' tests: a conversation on one connection driven through the protocol
//! dispatcher, each step one segment at its own time, sequence numbers advancing as a
//! reassembler's do.

use super::Dissected;
use super::any::AnyProtocol;
use crate::reassemble::{ConnHandler, ConnInfo, Dir};

/// What the dispatcher made of `steps` on a connection from 10.0.0.1:40000 to 10.0.0.2:`port`,
/// opened by its client (`AtoB`) when `syn`, else joined mid-stream; closed at the end.
pub fn converse(port: u16, syn: bool, steps: &[(Dir, Vec<u8>)]) -> Vec<Dissected> {
    let mut info = ConnInfo::test(1, 0, "10.0.0.1:40000", &format!("10.0.0.2:{port}"));
    info.opener = syn.then_some(Dir::AtoB);
    info.seq = [1000, 5000];
    let mut p = AnyProtocol::new(&info);
    let mut out = Vec::new();
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        p.on_data(&info, *dir, 10 + i as u64, bytes, &mut out);
        info.seq[*dir as usize] = info.seq[*dir as usize].wrapping_add(bytes.len() as u32);
    }
    p.on_close(&info, 99, &mut out);
    out
}
