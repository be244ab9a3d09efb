//! A real PostgreSQL server (Debian's package) for a test, a benchmark or the drill: a fresh
//! cluster in a scratch folder (`initdb`), listening on a free loopback port, durability off
//! (its data need not survive a power cut). Run as the `postgres` user when this process runs as
//! root, since PostgreSQL refuses root. Killed and its folder removed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("starting {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("{0}")]
    Failed(String),
}

pub struct PostgresServer {
    /// Killed (`kill_on_drop`) when the server is dropped.
    _child: tokio::process::Child,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self._child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fail(e: impl Into<String>) -> PostgresError {
    PostgresError::Failed(e.into())
}

impl PostgresServer {
    /// The folder holding `initdb` and `postgres` (Debian: `/usr/lib/postgresql/N/bin`).
    pub fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
            .collect();
        found.sort();
        found.pop()
    }

    /// A command run as the `postgres` user when we are root, as ourselves otherwise.
    fn command(program: &Path) -> Command {
        // /proc/self belongs to the user this process runs as.
        let root = std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        if root {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// Creates a cluster and starts it; returns once it accepts connections.
    pub async fn start() -> Result<PostgresServer, PostgresError> {
        let bin = PostgresServer::bin_dir()
            .ok_or_else(|| fail("PostgreSQL is not installed (Debian: apt-get install postgresql; scripts/install-test-deps.sh)"))?;
        let port = crate::ports::free_loopback_addr()
            .map_err(|e| PostgresError::Spawn("postgres".into(), e))?
            .port();
        // initdb creates the folder itself, so it belongs to the user the server runs as.
        let dir = std::env::temp_dir().join(format!(
            "rampart-pg-{}-{port}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let init = PostgresServer::command(&bin.join("initdb"))
            .arg("-D")
            .arg(&dir)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| PostgresError::Spawn("initdb".into(), e))?;
        if !init.status.success() {
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            )));
        }
        let log = dir.join("server.log");
        let mut cmd = PostgresServer::command(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&dir)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                "unix_socket_directories=",
                "-c",
                "shared_memory_type=mmap",
            ])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "max_connections=50", "-c", "log_destination=stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(&log)
                    .map_err(|e| PostgresError::Spawn("postgres".into(), e))?,
            ))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| PostgresError::Spawn("postgres".into(), e))?;
        let server = PostgresServer {
            _child: child,
            port,
            dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
            if text.contains("ready to accept connections") {
                return Ok(server);
            }
            if std::time::Instant::now() > deadline {
                return Err(fail(format!("not ready within 30 s: {text}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}
