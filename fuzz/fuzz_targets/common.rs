//! Shared by the fuzz targets: one connection's bytes fed in pieces, with gaps where the input
//! says, through any `ConnHandler`.

use podtap::reassemble::{ConnHandler, ConnInfo, ConnLife, Dir};

/// A connection from 10.0.0.1:1 to 10.0.0.2:`port`, opened by its client unless `joined`.
pub fn info(port: u16, joined: bool) -> ConnInfo {
    ConnInfo {
        id: 1,
        interface: 0,
        points: 1,
        tunnel: None,
        a: "10.0.0.1:1".parse().unwrap(),
        b: format!("10.0.0.2:{port}").parse().unwrap(),
        opener: (!joined).then_some(Dir::AtoB),
        life: ConnLife::new(0, !joined),
        seq: [0; 2],
        isn: None,
    }
}

/// Control bytes then data: where the client's bytes end, the piece size, and a gap mask (a set
/// bit n: the n-th piece of each direction is lost instead of delivered).
pub fn drive<H: ConnHandler>(h: &mut H, info: &ConnInfo, data: &[u8], out: &mut Vec<H::Output>) {
    let [split, piece, gaps, rest @ ..] = data else { return };
    let split = (*split as usize * rest.len()) / 256;
    let piece = (*piece as usize % 64).max(1);
    let (up, down) = rest.split_at(split);
    let (mut u, mut d) = (up.chunks(piece), down.chunks(piece));
    for n in 0u64.. {
        let (a, b) = (u.next(), d.next());
        if a.is_none() && b.is_none() {
            break;
        }
        let lost = n < 8 && gaps & (1 << n) != 0;
        for (dir, chunk) in [(Dir::AtoB, a), (Dir::BtoA, b)] {
            if let Some(c) = chunk {
                if lost {
                    h.on_gap(info, dir, c.len() as u64);
                } else {
                    h.on_data(info, dir, n * 10 + dir as u64, c, out);
                }
            }
        }
    }
    h.on_close(info, u64::MAX / 2, out);
}
