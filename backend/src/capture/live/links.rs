//! Word of interfaces coming and going, from the kernel as it happens: a `NETLINK_ROUTE` socket
//! in the `RTMGRP_LINK` group (rtnetlink(7)). A pod's veth appears a few milliseconds before its
//! first packet (the runtime starts the container after the CNI plugin made it), well inside the
//! one-second rescan: with this the capture is open before the pod says anything. The messages
//! themselves are not read for content — any of them means "look again".
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct LinkEvents {
    fd: OwnedFd,
}

impl LinkEvents {
    /// The socket, non-blocking; `None` where netlink is not allowed (the rescan still runs).
    pub fn open() -> Option<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            tracing::debug!("no link notifications: {}", io::Error::last_os_error());
            return None;
        }
        // SAFETY: `raw` is a new descriptor this function owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is valid before the fields are set.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: binds `fd` to an address of the stated size.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            tracing::debug!("no link notifications: {}", io::Error::last_os_error());
            return None;
        }
        Some(LinkEvents { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every message waiting; whether there was any (or the kernel dropped some: then the
    /// list must be read again all the same).
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            // SAFETY: receives into `buf`, at most its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                any = true;
                continue;
            }
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                any = true;
                continue;
            }
            return any;
        }
    }
}
