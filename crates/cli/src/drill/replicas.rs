//! The drill's control plane as three replicas on PostgreSQL (`--replicas`): `rampart control
//! --replica` processes of this very binary on a PostgreSQL server the drill starts (Debian's
//! package, a scratch folder), one of which the drill kills with SIGKILL during the bad release.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_control::tokens::TokenEntry;

/// How long the replicas' lease lasts: short, so the takeover fits in the drill's minute.
const LEASE: &str = "2s";

pub struct Replicas {
    _database: rampart_demo::postgres::PostgresServer,
    children: Mutex<Vec<Option<Child>>>,
    urls: Vec<String>,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in self
            .children
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the replicas are started with (the drill's settings, as flags).
pub struct ReplicaFlags<'a> {
    pub environments: &'a str,
    pub page_name: &'a str,
    pub incident_quiet: &'a str,
    pub tick: &'a str,
}

impl Replicas {
    /// Starts PostgreSQL and three replicas sharing `tokens` (written to `dir/control`).
    pub async fn start(dir: &Path, tokens: &[TokenEntry], flags: ReplicaFlags<'_>) -> Result<Self> {
        let database = rampart_demo::postgres::PostgresServer::start()
            .await
            .context("starting PostgreSQL for the replicas")?;
        let data = dir.join("control");
        tokio::fs::create_dir_all(&data).await?;
        tokio::fs::write(data.join("tokens.json"), serde_json::to_vec(tokens)?).await?;
        let bin = std::env::current_exe().context("finding this binary")?;
        let mut children = vec![];
        let mut urls = vec![];
        for i in 0..3 {
            let port = rampart_demo::ports::free_loopback_addr()?.port();
            let log = std::fs::File::create(dir.join(format!("r{i}.log")))?;
            let child = Command::new(&bin)
                .args(["control", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--data")
                .arg(&data)
                .args(["--database", &database.url(), "--replica", &format!("r{i}")])
                .args(["--lease-ttl", LEASE, "--environments", flags.environments])
                .args(["--page-name", flags.page_name])
                .args(["--incident-quiet", flags.incident_quiet])
                .args(["--reconcile-every", flags.tick])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("starting a replica")?;
            children.push(Some(child));
            urls.push(format!("http://127.0.0.1:{port}"));
        }
        let replicas = Replicas {
            _database: database,
            children: Mutex::new(children),
            urls,
        };
        replicas
            .leader(Duration::from_secs(20))
            .await
            .context("no replica took the lease within 20 s")?;
        Ok(replicas)
    }

    /// Every replica's URL, as agents and clients take them.
    pub fn all(&self) -> String {
        self.urls.join(",")
    }

    /// A live replica's URL (for pages a browser would open).
    pub fn one(&self) -> String {
        let children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let live = children.iter().position(Option::is_some).unwrap_or(0);
        self.urls.get(live).cloned().unwrap_or_default()
    }

    /// The replica the live ones agree leads, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> Option<usize> {
        let client = rampart_demo::client::http1();
        let start = Instant::now();
        while start.elapsed() < within {
            let live: Vec<usize> = {
                let children = self.children.lock().unwrap_or_else(|p| p.into_inner());
                (0..children.len())
                    .filter(|i| children[*i].is_some())
                    .collect()
            };
            // Each live replica's view: who it says leads, and whether it is that one.
            let mut views = vec![];
            for i in &live {
                let url = format!("{}/v1/replica", self.urls[*i]);
                let view = rampart_demo::client::get(&client, &url)
                    .await
                    .ok()
                    .map(|a| a.json());
                views.push((*i, view));
            }
            let leaders: Vec<usize> = views
                .iter()
                .filter(|(_, v)| v.as_ref().is_some_and(|v| v["role"] == "leader"))
                .map(|(i, _)| *i)
                .collect();
            if let [leader] = leaders[..] {
                let name = format!("r{leader}");
                let agreed = views
                    .iter()
                    .all(|(_, v)| v.as_ref().is_some_and(|v| v["leader"] == name.as_str()));
                if agreed {
                    return Some(leader);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Kills the leader with SIGKILL; returns its name.
    pub async fn kill_leader(&self) -> Result<String> {
        let leader = self
            .leader(Duration::from_secs(5))
            .await
            .context("no leader to kill")?;
        let child = self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(leader)
            .and_then(Option::take);
        if let Some(mut c) = child {
            c.kill()?;
            let _ = c.wait();
        }
        Ok(format!("r{leader}"))
    }
}
