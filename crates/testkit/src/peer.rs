//! Peers that rampart did not write, run as child processes on loopback: Python programs on
//! other HTTP stacks (`peers/*.py`: http.server, h2) and nginx. Each is killed and reaped when
//! its handle is dropped, so a failing test leaves nothing running.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Debian's Python, where the test dependencies (python3-h2) are installed.
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// The path of a peer program shipped in `crates/testkit/peers/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name)
}

/// A child process killed (and reaped) on drop.
pub struct Peer {
    child: Option<Child>,
    /// The address it announced, for servers.
    pub addr: Option<SocketAddr>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killed now; tokio reaps the exited child in the background.
            let _ = child.start_kill();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("starting {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("{0} did not announce its address within 10 s")]
    NoAddress(String),
}

impl Peer {
    /// A started child, killed (and reaped) when the handle drops.
    pub fn from_child(child: Child) -> Peer {
        Peer {
            child: Some(child),
            addr: None,
        }
    }

    /// Starts a Python peer server; it prints `LISTENING <addr>` on its first line of stdout.
    pub async fn python_server(name: &str, args: &[&str]) -> Result<Peer, PeerError> {
        let mut cmd = Command::new(python());
        cmd.arg(script(name)).args(args);
        Peer::server(name, cmd).await
    }

    async fn server(name: &str, mut cmd: Command) -> Result<Peer, PeerError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| PeerError::Spawn(name.to_owned(), e))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(PeerError::NoAddress(name.to_owned()));
        };
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
        let addr = match first {
            Ok(Ok(Some(line))) => line
                .strip_prefix("LISTENING ")
                .and_then(|a| a.trim().parse::<SocketAddr>().ok()),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.start_kill();
            return Err(PeerError::NoAddress(name.to_owned()));
        };
        // Keep draining stdout so the peer never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Peer {
            child: Some(child),
            addr: Some(addr),
        })
    }

    /// Runs a Python peer client to completion (bounded by `within`) and returns its stdout.
    pub async fn python_run(
        name: &str,
        args: &[&str],
        within: Duration,
    ) -> Result<String, PeerError> {
        let mut cmd = Command::new(python());
        cmd.arg(script(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| PeerError::Spawn(name.to_owned(), e))?;
        match tokio::time::timeout(within, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Ok(Err(e)) => Err(PeerError::Spawn(name.to_owned(), e)),
            Err(_) => Err(PeerError::NoAddress(format!(
                "{name} (ran past {within:?})"
            ))),
        }
    }
}

/// Runs a Python peer client that prints one JSON line (bounded by `within`) and returns it
/// parsed; panics with what it printed when that is not JSON (a test's failure, said plainly).
pub async fn python_json(name: &str, args: &[&str], within: Duration) -> serde_json::Value {
    let out = Peer::python_run(name, args, within)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{name} printed no JSON ({e}): {out:?}"))
}

/// nginx from Debian's package, on loopback with a config of the test's own, in a temporary
/// prefix; `None` when nginx is not installed.
pub struct Nginx {
    _peer: Peer,
    pub addr: SocketAddr,
    pub prefix: PathBuf,
}

impl Nginx {
    pub fn binary() -> Option<&'static str> {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }

    /// Starts nginx with `locations` (nginx directives inside the `server` block) on a free
    /// loopback port. Its access log is `prefix/access.log`, one `$status $request` a line.
    pub async fn start(locations: &str) -> Result<Nginx, PeerError> {
        let binary = Nginx::binary().ok_or_else(|| {
            PeerError::Spawn(
                "nginx".into(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "nginx is not installed"),
            )
        })?;
        // A free port, outside the ephemeral range (nginx binds it a moment later).
        let port = crate::ports::free_loopback_addr()
            .map_err(|e| PeerError::Spawn("nginx".into(), e))?
            .port();
        let prefix =
            std::env::temp_dir().join(format!("rampart-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(prefix.join("logs"))
            .and_then(|()| std::fs::create_dir_all(prefix.join("tmp")))
            .map_err(|e| PeerError::Spawn("nginx".into(), e))?;
        let conf = format!(
            "worker_processes 1;\n\
             error_log {p}/logs/error.log warn;\n\
             pid {p}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
               log_format plain '$status $request';\n\
               access_log {p}/access.log plain;\n\
               client_body_temp_path {p}/tmp;\n\
               proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp; uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 {locations}\n\
               }}\n\
             }}\n",
            p = prefix.display()
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| PeerError::Spawn("nginx".into(), e))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg("daemon off; master_process off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| PeerError::Spawn("nginx".into(), e))?;
        let peer = Peer::from_child(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if std::time::Instant::now() > deadline {
                return Err(PeerError::NoAddress("nginx".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Nginx {
            _peer: peer,
            addr,
            prefix,
        })
    }

    /// The access log so far: `(status, request line)` per request.
    pub async fn access_log(&self) -> Vec<(u16, String)> {
        tokio::fs::read_to_string(self.prefix.join("access.log"))
            .await
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (status, request) = l.split_once(' ')?;
                Some((status.parse().ok()?, request.to_owned()))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}
