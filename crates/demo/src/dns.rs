//! DNS servers for tests: one that receives queries and never answers (the seed incident's
//! black hole), and one that answers A queries from a fixed table.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, UdpSocket};

/// Receives DNS queries over UDP and TCP on one port and never answers any of them.
pub struct BlackHoleDns {
    pub addr: SocketAddr,
    queries: Arc<AtomicU64>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl BlackHoleDns {
    /// On a free loopback port. The UDP port the system picks may be taken for TCP (by a
    /// client's ephemeral port, say); then another is tried.
    pub async fn start() -> std::io::Result<BlackHoleDns> {
        let mut tries = 0;
        loop {
            match Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => tries += 1,
                other => return other,
            }
        }
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<BlackHoleDns> {
        let udp = UdpSocket::bind(addr).await?;
        let addr = udp.local_addr()?;
        let tcp = TcpListener::bind(addr).await?;
        let queries = Arc::new(AtomicU64::new(0));
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let q = queries.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => if r.is_ok() { q.fetch_add(1, Ordering::Relaxed); },
                    r = tcp.accept() => if let Ok((s, _)) = r { q.fetch_add(1, Ordering::Relaxed); held.push(s); },
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(BlackHoleDns {
            addr,
            queries,
            _stop: stop,
        })
    }

    /// Queries received so far (UDP datagrams and TCP connections).
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// Answers A queries for the names in its table (case-insensitive), NXDOMAIN otherwise. UDP only.
/// Can be silenced at run time (it then behaves like [`BlackHoleDns`]).
pub struct StaticDns {
    pub addr: SocketAddr,
    silent: Arc<std::sync::atomic::AtomicBool>,
    queries: Arc<AtomicU64>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl StaticDns {
    pub async fn start(table: &[(&str, Ipv4Addr)]) -> std::io::Result<StaticDns> {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = udp.local_addr()?;
        let table: HashMap<String, Ipv4Addr> = table
            .iter()
            .map(|(n, ip)| (n.trim_end_matches('.').to_ascii_lowercase(), *ip))
            .collect();
        let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queries = Arc::new(AtomicU64::new(0));
        let (s, q) = (silent.clone(), queries.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => {
                        let Ok((n, peer)) = r else { continue };
                        q.fetch_add(1, Ordering::Relaxed);
                        if s.load(Ordering::Relaxed) {
                            continue;
                        }
                        if let Some(answer) = answer(&buf[..n], &table) {
                            let _ = udp.send_to(&answer, peer).await;
                        }
                    }
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(StaticDns {
            addr,
            silent,
            queries,
            _stop: stop,
        })
    }

    /// Stops (or resumes) answering.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::Relaxed);
    }

    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// Builds a response to a single-question query: A record with TTL 30 s, or NXDOMAIN;
/// other record types get an empty NOERROR answer.
fn answer(query: &[u8], table: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // Walk the question name.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*query.get(i)?, *query.get(i + 1)?]);
    let question_end = i + 4;
    let name = labels.join(".");
    let ip = table.get(&name);
    let mut out = Vec::with_capacity(question_end + 16);
    out.extend_from_slice(&query[0..2]); // id
    let rcode: u8 = if ip.is_some() { 0 } else { 3 };
    out.extend_from_slice(&[0x81, 0x80 | rcode]); // response, RD, RA, rcode
    out.extend_from_slice(&[0, 1]); // qdcount
    let with_answer = ip.is_some() && qtype == 1;
    out.extend_from_slice(&[0, u8::from(with_answer)]); // ancount
    out.extend_from_slice(&[0, 0, 0, 0]); // nscount, arcount
    out.extend_from_slice(query.get(12..question_end)?);
    if let (true, Some(ip)) = (with_answer, ip) {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        out.extend_from_slice(&ip.octets());
    }
    Some(out)
}
