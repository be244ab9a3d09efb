//! Loopback addresses for servers a test names before it starts them (a gateway told
//! `--listen public=ADDR`, a control plane on a fixed port).
//!
//! A port taken from the kernel's ephemeral range (what binding port 0 gives) can be handed,
//! a moment later, to some client's outgoing connection as its local port, and the server
//! then fails with "address in use". Ports are picked below that range instead, where the
//! kernel never assigns on its own, and checked free.
//!
//! A port checked free is not reserved: two picks that land on the same port before either
//! server binds it collide. So a process never hands out the same port twice (it walks its
//! slice of the range in order), and processes walk different slices (chosen by process id),
//! so a test and the `rampart` child it runs do not pick the same ports either.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Below Linux's default ephemeral range (32768–60999) and above well-known services.
const FIRST: u16 = 20_000;
const SLICES: u16 = 12;
const SLICE: u16 = 1_000;

/// Where this process's walk through its slice began, and how far it has gone.
static START: OnceLock<u16> = OnceLock::new();
static TAKEN: AtomicU32 = AtomicU32::new(0);

fn candidate() -> u16 {
    let base = FIRST + (std::process::id() % u32::from(SLICES)) as u16 * SLICE;
    let start = *START.get_or_init(|| fastrand::u16(..SLICE));
    let step = TAKEN.fetch_add(1, Ordering::Relaxed) % u32::from(SLICE);
    base + (start + step as u16) % SLICE
}

/// A free loopback address outside the ephemeral range, never handed out before by this process.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    for _ in 0..SLICE {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, candidate()));
        if TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    // The whole slice is in use: fall back on the kernel's choice.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_never_hands_out_a_port_twice() {
        let ports: std::collections::HashSet<u16> = (0..300)
            .map(|_| free_loopback_addr().expect("a port").port())
            .collect();
        assert_eq!(ports.len(), 300);
        assert!(
            ports
                .iter()
                .all(|p| (FIRST..FIRST + SLICES * SLICE).contains(p))
        );
    }
}
