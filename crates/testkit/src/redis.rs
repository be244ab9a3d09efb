//! Redis from Debian's package (`redis-server`), on loopback with nothing saved to disk, and a
//! black-holed stand-in: a TCP listener that accepts and never answers.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::peer::{Peer, PeerError};

pub struct RedisServer {
    _peer: Peer,
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn binary() -> Option<&'static str> {
        ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
    }

    /// A fresh server on a free loopback port.
    pub async fn start() -> Result<RedisServer, PeerError> {
        let addr =
            crate::ports::free_loopback_addr().map_err(|e| PeerError::Spawn("redis".into(), e))?;
        RedisServer::start_on(addr).await
    }

    /// A fresh server on `addr` (to bring one back where a stopped one was).
    pub async fn start_on(addr: SocketAddr) -> Result<RedisServer, PeerError> {
        let binary = RedisServer::binary().ok_or_else(|| {
            PeerError::Spawn(
                "redis-server".into(),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "redis-server is not installed: run scripts/install-test-deps.sh",
                ),
            )
        })?;
        let child = Command::new(binary)
            .args(["--bind", &addr.ip().to_string()])
            .args(["--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| PeerError::Spawn("redis-server".into(), e))?;
        let peer = Peer::from_child(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ping(addr).await {
            if std::time::Instant::now() > deadline {
                return Err(PeerError::NoAddress("redis-server".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(RedisServer { _peer: peer, addr })
    }
}

/// Whether a Redis answers PING at `addr` within 500 ms.
pub async fn ping(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        (&buf == b"+PONG\r\n").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), exchange).await,
        Ok(Some(()))
    )
}

/// A TCP server that accepts connections and never sends a byte (a Redis, or anything, that
/// has stopped answering). Connections are held until it is dropped.
pub struct BlackHoleTcp {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHoleTcp {
    pub async fn start() -> std::io::Result<BlackHoleTcp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Ok(BlackHoleTcp { addr, task })
    }
}

impl Drop for BlackHoleTcp {
    fn drop(&mut self) {
        self.task.abort();
    }
}
