//! Loopback addresses for servers a test names before it starts them (a gateway told
//! `--listen public=ADDR`, a control plane on a fixed port).
//!
//! A port taken from the kernel's ephemeral range (what binding port 0 gives) can be handed,
//! a moment later, to some client's outgoing connection as its local port, and the server
//! then fails with "address in use". Ports are picked below that range instead, where the
//! kernel never assigns on its own, and checked free.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Below Linux's default ephemeral range (32768–60999) and above well-known services.
const RANGE: std::ops::Range<u16> = 20_000..32_000;

/// A free loopback address outside the ephemeral range.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    for _ in 0..200 {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, fastrand::u16(RANGE)));
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    // Fall back on the kernel's choice.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}
