//! One AF_PACKET socket with a TPACKET_V3 receive ring, bound to one interface. The kernel fills
//! blocks of packets in shared memory; we read a block in place (no copy, no syscall per packet)
//! and hand it back. The `unsafe` of live capture is here (the socket calls, the mapping, and the
//! block status word shared with the kernel) and in `links` (one netlink socket).
//!
//! Layouts are from `linux/if_packet.h` (stable ABI since 3.2); offsets are spelled out below.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V3: libc::c_int = 2;
const ETH_P_ALL: u16 = 0x0003;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_block_desc`: version, offset_to_priv, then `tpacket_hdr_v1`.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;

/// `struct tpacket3_hdr` field offsets.
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
const PKT_VLAN_TPID: usize = 36;

/// Ring geometry: `blocks` blocks of `block_size` bytes (a power-of-two multiple of the page size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSize {
    pub block_size: u32,
    pub blocks: u32,
    /// How long the kernel keeps a partly filled block before handing it over (ms).
    pub retire_ms: u32,
}

impl Default for RingSize {
    fn default() -> Self {
        Self { block_size: 1 << 18, blocks: 16, retire_ms: 50 }
    }
}

/// Kernel counters of one socket since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingStats {
    /// Packets the kernel passed to the ring (after the filter), including dropped ones.
    pub packets: u64,
    /// Packets the kernel dropped because the ring was full.
    pub drops: u64,
}

/// One captured packet, borrowed from the ring until the block is released.
pub struct RingPacket<'a> {
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` if the block could not hold it all).
    pub wire_len: u32,
    pub data: &'a [u8],
    /// An 802.1Q tag the NIC or kernel stripped into metadata: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
}

pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    size: RingSize,
    next_block: u32,
    stats: RingStats,
}

// The mapping belongs to this value alone; moving it to another thread is fine.
unsafe impl Send for Ring {}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, initialised T of `len` bytes for the duration of the call.
    check(unsafe { libc::setsockopt(fd, SOL_PACKET, name, (value as *const T).cast(), len) }).map(drop)
}

impl Ring {
    /// A ring, with an optional classic BPF program run in the kernel, not yet bound to an
    /// interface: nothing reaches it until `bind`. Setting one up
    /// (the kernel zeroes its memory) is what takes time, so several are prepared first and bound
    /// together, and none fills up while the others are being set up.
    pub fn prepare(size: RingSize, filter: Option<&[libc::sock_filter]>) -> io::Result<Ring> {
        // Protocol 0 first: nothing is queued until bind, so no packet of another interface slips in.
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw = check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(raw, PACKET_VERSION, &TPACKET_V3)?;
        if let Some(program) = filter {
            let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
            let len = std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t;
            // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
            check(unsafe {
                libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, (&raw const prog).cast(), len)
            })?;
        }
        // struct tpacket_req3
        let frame_size = 1u32 << 11;
        let req: [u32; 7] = [
            size.block_size,
            size.blocks,
            frame_size,
            size.block_size / frame_size * size.blocks,
            size.retire_ms,
            0,
            0,
        ];
        setsockopt(raw, PACKET_RX_RING, &req)?;
        let len = size.block_size as usize * size.blocks as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, raw, 0)
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Ring { fd, map: map.cast(), size, next_block: 0, stats: RingStats::default() })
    }

    /// Starts capturing on interface `ifindex`.
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        let raw = self.fd.as_raw_fd();
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex as i32;
        let addr_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_ll of `addr_len` bytes.
        check(unsafe { libc::bind(raw, (&raw const addr).cast(), addr_len) }).map(drop)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn status_word(&self, block: u32) -> &AtomicU32 {
        let offset = block as usize * self.size.block_size as usize + BLOCK_STATUS;
        // SAFETY: in bounds of the mapping, 4-aligned (blocks are page-aligned); the kernel and we
        // both access it as a 32-bit word, so an atomic view is the honest type.
        unsafe { AtomicU32::from_ptr(self.map.add(offset).cast()) }
    }

    /// Calls `each` for every packet of every block the kernel has filled, then returns the blocks.
    /// Returns the number of packets seen.
    pub fn drain(&mut self, mut each: impl FnMut(RingPacket<'_>)) -> usize {
        let mut seen = 0;
        for _ in 0..self.size.blocks {
            let block = self.next_block;
            let status = self.status_word(block);
            if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            let start = block as usize * self.size.block_size as usize;
            // SAFETY: the block is ours until we store TP_STATUS_KERNEL (the kernel writes no
            // byte of a block in user status), and it lies within the mapping.
            let bytes = unsafe { std::slice::from_raw_parts(self.map.add(start), self.size.block_size as usize) };
            seen += read_block(bytes, &mut each);
            self.status_word(block).store(TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (block + 1) % self.size.blocks;
        }
        seen
    }

    /// Kernel counters since open (the kernel resets its own on each read; we accumulate).
    pub fn stats(&mut self) -> RingStats {
        let mut raw = [0u32; 3];
        let mut len = std::mem::size_of_val(&raw) as libc::socklen_t;
        // SAFETY: `raw` has room for struct tpacket_stats_v3 and `len` says so.
        let ok = unsafe {
            libc::getsockopt(self.fd.as_raw_fd(), SOL_PACKET, PACKET_STATISTICS, raw.as_mut_ptr().cast(), &mut len)
        };
        if ok == 0 {
            self.stats.packets += u64::from(raw[0]);
            self.stats.drops += u64::from(raw[1]);
        }
        self.stats
    }
}

/// Sleeps until one of `fds` has something to read or `timeout_ms` passes. Returns the indexes of
/// sockets that reported an error (interface gone or down); the error is read and so cleared,
/// otherwise `poll` would report it again at once, forever.
pub fn wait(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<usize>> {
    let mut polls: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `polls` is a live array of `polls.len()` pollfd.
    let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(Vec::new()) } else { Err(e) };
    }
    let mut failed = Vec::new();
    for (i, p) in polls.iter().enumerate() {
        if p.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: reads SO_ERROR into a c_int of the stated size.
            unsafe { libc::getsockopt(p.fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut err).cast(), &mut len) };
            failed.push(i);
        }
    }
    Ok(failed)
}

impl Drop for Ring {
    fn drop(&mut self) {
        let len = self.size.block_size as usize * self.size.blocks as usize;
        // SAFETY: unmaps exactly what `open` mapped; no borrow of it outlives `&mut self`.
        unsafe { libc::munmap(self.map.cast(), len) };
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

/// Walks the packets of one filled block. Safe code over the block's bytes: a header that points
/// outside the block ends the walk instead of reading past it.
fn read_block(block: &[u8], each: &mut impl FnMut(RingPacket<'_>)) -> usize {
    let count = u32_at(block, BLOCK_NUM_PKTS) as usize;
    let mut at = u32_at(block, BLOCK_FIRST_PKT) as usize;
    for n in 0..count {
        let Some(hdr) = block.get(at..) else { return n };
        let mac = usize::from(u16_at(hdr, PKT_MAC));
        let snap = u32_at(hdr, PKT_SNAPLEN) as usize;
        let Some(data) = hdr.get(mac..mac + snap) else { return n };
        let status = u32_at(hdr, PKT_STATUS);
        let vlan = (status & TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 { u16_at(hdr, PKT_VLAN_TPID) } else { 0x8100 };
            (tpid, u32_at(hdr, PKT_VLAN_TCI) as u16)
        });
        let ts_ns = u64::from(u32_at(hdr, PKT_SEC)) * 1_000_000_000 + u64::from(u32_at(hdr, PKT_NSEC));
        each(RingPacket { ts_ns, wire_len: u32_at(hdr, PKT_LEN), data, vlan });
        let next = u32_at(hdr, PKT_NEXT) as usize;
        if next == 0 {
            return n + 1;
        }
        at += next;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out: descriptor, then packets chained by `tp_next_offset`.
    fn block(packets: &[(&[u8], u32)]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&(packets.len() as u32).to_ne_bytes());
        b[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&48u32.to_ne_bytes());
        let mut at = 48;
        for (i, (data, status)) in packets.iter().enumerate() {
            let h = &mut b[at..];
            let next = if i + 1 == packets.len() { 0 } else { 256u32 };
            h[PKT_NEXT..PKT_NEXT + 4].copy_from_slice(&next.to_ne_bytes());
            h[PKT_SEC..PKT_SEC + 4].copy_from_slice(&7u32.to_ne_bytes());
            h[PKT_NSEC..PKT_NSEC + 4].copy_from_slice(&(i as u32).to_ne_bytes());
            h[PKT_SNAPLEN..PKT_SNAPLEN + 4].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            h[PKT_LEN..PKT_LEN + 4].copy_from_slice(&(data.len() as u32 + 10).to_ne_bytes());
            h[PKT_STATUS..PKT_STATUS + 4].copy_from_slice(&status.to_ne_bytes());
            h[PKT_MAC..PKT_MAC + 2].copy_from_slice(&64u16.to_ne_bytes());
            h[PKT_VLAN_TCI..PKT_VLAN_TCI + 4].copy_from_slice(&42u32.to_ne_bytes());
            h[64..64 + data.len()].copy_from_slice(data);
            at += 256;
        }
        b
    }

    #[test]
    fn walks_chained_packets_with_timestamps_and_vlan_metadata() {
        let b = block(&[(b"first", TP_STATUS_USER), (b"second", TP_STATUS_USER | TP_STATUS_VLAN_VALID)]);
        let mut got = Vec::new();
        let n = read_block(&b, &mut |p| got.push((p.data.to_vec(), p.ts_ns, p.wire_len, p.vlan)));
        assert_eq!(n, 2);
        assert_eq!(got[0], (b"first".to_vec(), 7_000_000_000, 15, None));
        assert_eq!(got[1], (b"second".to_vec(), 7_000_000_001, 16, Some((0x8100, 42))));
    }

    #[test]
    fn a_header_pointing_outside_the_block_ends_the_walk() {
        let mut b = block(&[(b"ok", TP_STATUS_USER), (b"bad", TP_STATUS_USER)]);
        // Second packet claims a snaplen far beyond the block.
        let second = 48 + 256;
        b[second + PKT_SNAPLEN..second + PKT_SNAPLEN + 4].copy_from_slice(&1_000_000u32.to_ne_bytes());
        let mut got = 0;
        assert_eq!(read_block(&b, &mut |_| got += 1), 1);
        assert_eq!(got, 1);
    }
}
