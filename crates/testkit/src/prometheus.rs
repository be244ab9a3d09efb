//! A real Prometheus server (Debian's `prometheus` package) on loopback, scraping the targets a
//! test gives it every second, its data in a scratch folder. Killed and removed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::peer::{Peer, PeerError};

pub struct Prometheus {
    _peer: Peer,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    pub fn binary() -> Option<&'static str> {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }

    /// Starts Prometheus scraping each job's targets (`/metrics`) every second; returns once it
    /// is ready to answer queries.
    pub async fn start(jobs: &[(&str, Vec<SocketAddr>)]) -> Result<Prometheus, PeerError> {
        let fail = |e: std::io::Error| PeerError::Spawn("prometheus".into(), e);
        let binary = Prometheus::binary().ok_or_else(|| {
            fail(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "prometheus is not installed (scripts/install-test-deps.sh)",
            ))
        })?;
        let addr = crate::ports::free_loopback_addr().map_err(fail)?;
        let dir = std::env::temp_dir().join(format!(
            "rampart-prometheus-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(dir.join("data")).map_err(fail)?;
        let mut conf = String::from(
            "global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n",
        );
        for (job, targets) in jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
            conf.push_str(&format!(
                "  - job_name: {job}\n    scrape_timeout: 900ms\n    static_configs: [{{ targets: [{}] }}]\n",
                list.join(", ")
            ));
        }
        let conf_path = dir.join("prometheus.yml");
        std::fs::write(&conf_path, conf).map_err(fail)?;
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(fail)?;
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", conf_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(fail)?;
        let server = Prometheus {
            _peer: Peer::from_child(child),
            addr,
            dir,
        };
        let ready = format!("http://{addr}/-/ready");
        let client = crate::client::http1();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = crate::client::get(&client, &ready).await;
            if answer.is_ok_and(|a| a.status == http::StatusCode::OK) {
                return Ok(server);
            }
            if std::time::Instant::now() > deadline {
                return Err(PeerError::NoAddress("prometheus".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prometheus's own log so far (for a failing test's message).
    pub async fn log(&self) -> String {
        tokio::fs::read_to_string(self.dir.join("prometheus.log"))
            .await
            .unwrap_or_default()
    }
}
