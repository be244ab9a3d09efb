//! Helpers for tests that run the `rampart` binary against a control plane it started.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_api::ApiClient;

pub fn free_port() -> u16 {
    rampart_testkit::ports::free_loopback_addr()
        .expect("free port")
        .port()
}

/// A child process that is killed (and reaped) when the test that started it ends, however it
/// ends: a failed assertion does not leave a control plane or gateway running.
pub struct Spawned(pub Child);

impl Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub fn start(data: &std::path::Path, port: u16) -> Spawned {
    start_with(data, port, &[])
}

/// Like [`start`], with more arguments for `rampart control`.
pub fn start_with(data: &std::path::Path, port: u16, more: &[&str]) -> Spawned {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "control",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(data)
        .args(more)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Spawned)
        .expect("spawn control plane")
}

pub async fn operator_token(data: &std::path::Path) -> String {
    bootstrap_token(data, "operator").await
}

/// The bootstrap token of `role` the control plane wrote to `DATA/tokens.json`.
pub async fn bootstrap_token(data: &std::path::Path, role: &str) -> String {
    for _ in 0..100 {
        if let Ok(bytes) = tokio::fs::read(data.join("tokens.json")).await
            && let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&bytes)
            && let Some(t) = list.iter().find(|t| t["role"] == role)
        {
            return t["token"].as_str().unwrap_or_default().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no tokens.json");
}

pub async fn wait_up(client: &ApiClient) {
    let start = Instant::now();
    while client.versions().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "control plane did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `rampart ARGS` against the control plane on `port`; (succeeded, stdout, stderr).
pub fn rampart(port: u16, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("RAMPART_CONTROL", format!("http://127.0.0.1:{port}"))
        .env("RAMPART_TOKEN", token)
        .output()
        .expect("run rampart");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
