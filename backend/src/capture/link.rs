//! What a frame is and where it was captured: the link type its bytes begin with, the interface
//! (its name when the file records one, its timestamp units) and the frame itself, borrowed from
//! the capture's bytes. Shared by the file readers (`file`, `pcapng`) and the live rings.

/// How the bytes of a frame begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux "cooked" capture v1 (`tcpdump -i any` before libpcap 1.10).
    LinuxSll,
    /// Linux "cooked" capture v2.
    LinuxSll2,
    /// Bare IPv4 or IPv6.
    RawIp,
    /// BSD loopback, the address family in host byte order (macOS and BSD `lo0`).
    Null,
    /// OpenBSD loopback, the address family in network byte order.
    Loop,
    /// Anything else; decode counts and skips such frames.
    Other(u32),
}

impl LinkType {
    /// From a LINKTYPE_ value (the low 16 bits; the rest carries FCS information).
    pub fn from_code(code: u32) -> Self {
        match code & 0xffff {
            0 => LinkType::Null,
            108 => LinkType::Loop,
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            other => LinkType::Other(other),
        }
    }
}

/// What a LINKTYPE_ value is called (tcpdump's names), for the line that says frames of it were
/// skipped.
pub fn link_type_name(code: u32) -> String {
    let name = match code {
        6 => "IEEE 802.5 Token Ring",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP in HDLC",
        104 => "Cisco HDLC",
        105 => "IEEE 802.11",
        119 => "Prism",
        127 => "IEEE 802.11 radiotap",
        143 => "DOCSIS",
        147..=162 => "user-defined (DLT_USER)",
        163 => "AVS 802.11",
        187 => "Bluetooth HCI",
        189 | 220 => "USB (Linux)",
        192 => "PPI",
        195 => "IEEE 802.15.4",
        201 => "Bluetooth HCI H4",
        215 => "IEEE 802.15.4 (no FCS)",
        239 => "NFLOG",
        249 => "USB (USBPcap)",
        252 => "upper-layer protocol (wireshark exported PDU)",
        258 => "PKTAP (macOS)",
        263 => "Bluetooth LE",
        266 => "NetANALYZER",
        270 => "Linux vsock",
        _ => return format!("link type {code}"),
    };
    format!("link type {code} ({name})")
}

/// A capture interface: its name when the file records one (pcapng `if_name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: Option<String>,
    pub link: LinkType,
    /// Timestamp units per second (pcapng `if_tsresol`; 10^6 by default).
    units_per_sec: u64,
}

impl Interface {
    pub fn new(name: Option<String>, link: LinkType, units_per_sec: u64) -> Self {
        Self { name, link, units_per_sec: units_per_sec.max(1) }
    }

    pub fn set_units_per_sec(&mut self, units: u64) {
        self.units_per_sec = units.max(1);
    }

    pub(super) fn micros(&self, raw: u64) -> u64 {
        match self.units_per_sec {
            1_000_000 => raw,
            u => (u128::from(raw) * 1_000_000 / u128::from(u)) as u64,
        }
    }
}

/// One captured frame, borrowed from the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    /// Index into the file's interfaces (0 for pcap).
    pub interface: u32,
    pub link: LinkType,
    pub data: &'a [u8],
}
