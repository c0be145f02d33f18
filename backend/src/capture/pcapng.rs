//! pcapng block walker (draft-ietf-opsawg-pcapng §3–§4): section headers (either byte order),
//! interface descriptions (`if_name`, `if_tsresol`), enhanced and simple packet blocks; every other
//! block is skipped by its length. Borrows packet bytes; allocates only per interface.
//! Hand-written because pcap-file allocates per packet and ignores `if_tsresol`.

use super::link::{Interface, LinkType};

pub const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const OPT_END: u16 = 0;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

/// One step of the walk.
pub enum Step<'a> {
    /// A packet on interface `interface`, timestamp in that interface's units.
    Packet { interface: u32, ts_raw: u64, data: &'a [u8] },
    /// A block that carries no packet (section, interface, statistics, …).
    Other,
}

/// Reads fields in the current section's byte order.
#[derive(Clone, Copy)]
pub struct Order {
    big: bool,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big { u16::from_be_bytes(x) } else { u16::from_le_bytes(x) })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big { u32::from_be_bytes(x) } else { u32::from_le_bytes(x) })
    }
}

/// The walker's state: byte order and interfaces of the current section.
pub struct Walker {
    order: Order,
    pub interfaces: Vec<Interface>,
}

impl Walker {
    pub fn new() -> Self {
        Self { order: Order { big: false }, interfaces: Vec::new() }
    }

    /// Reads the block at the start of `rest`: the step and the block's length, or why not.
    pub fn next<'a>(&mut self, rest: &'a [u8]) -> Result<(Step<'a>, usize), String> {
        let le = Order { big: false };
        let kind = le.u32(rest, 0).ok_or("block header cut short")?;
        if kind == SHB {
            // The byte-order magic decides how this block's own length is read.
            self.order = match le.u32(rest, 8).ok_or("section header cut short")? {
                BYTE_ORDER_MAGIC => Order { big: false },
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => Order { big: true },
                m => return Err(format!("section header with byte-order magic {m:#010x}")),
            };
            self.interfaces.clear();
        }
        let o = self.order;
        let kind = o.u32(rest, 0).expect("read above");
        let len = o.u32(rest, 4).ok_or("block header cut short")? as usize;
        if len < 12 || !len.is_multiple_of(4) {
            return Err(format!("block of type {kind:#x} claims length {len}"));
        }
        let block =
            rest.get(..len).ok_or_else(|| format!("block of type {kind:#x} needs {len} bytes, {} left", rest.len()))?;
        if o.u32(block, len - 4) != Some(len as u32) {
            return Err(format!("block of type {kind:#x}: trailing length differs"));
        }
        let body = &block[8..len - 4];
        let step = match kind {
            IDB => {
                self.interfaces.push(interface(o, body)?);
                Step::Other
            }
            EPB => {
                let field = |at| o.u32(body, at).ok_or("enhanced packet block cut short");
                let (interface, hi, lo, caplen) = (field(0)?, field(4)?, field(8)?, field(12)? as usize);
                let data = body.get(20..20 + caplen).ok_or("packet longer than its block")?;
                Step::Packet { interface, ts_raw: (u64::from(hi) << 32) | u64::from(lo), data }
            }
            SPB => {
                let orig = o.u32(body, 0).ok_or("simple packet block cut short")? as usize;
                let data = &body[4..];
                Step::Packet { interface: 0, ts_raw: 0, data: &data[..orig.min(data.len())] }
            }
            _ => Step::Other,
        };
        Ok((step, len))
    }
}

/// An interface description: link type and the two options podtap uses.
fn interface(o: Order, body: &[u8]) -> Result<Interface, String> {
    let link = o.u16(body, 0).ok_or("interface block cut short")?;
    let mut iface = Interface::new(None, LinkType::from_code(u32::from(link)), 1_000_000);
    let mut at = 8;
    while let (Some(code), Some(len)) = (o.u16(body, at), o.u16(body, at + 2)) {
        let len = len as usize;
        let value = body.get(at + 4..at + 4 + len).ok_or("interface option cut short")?;
        match code {
            OPT_END => break,
            IF_NAME => iface.name = Some(String::from_utf8_lossy(value).trim_end_matches('\0').to_string()),
            IF_TSRESOL => {
                // High bit set: a negative power of 2; else of 10.
                let r = *value.first().ok_or("empty if_tsresol")?;
                iface.set_units_per_sec(if r & 0x80 != 0 {
                    1u64 << (r & 0x7f).min(63)
                } else {
                    10u64.pow(u32::from(r).min(19))
                });
            }
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Ok(iface)
}
