//! Headless Chromium driven over the DevTools protocol: loads a page with JavaScript on or off
//! at a given viewport, and returns the DOM as rendered and a PNG screenshot. (Chromium's own
//! `--dump-dom` and `--screenshot` switches need JavaScript, so they cannot show a page
//! rendered without it.)

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

/// A rendered page.
pub struct Rendered {
    pub html: String,
    pub png: Vec<u8>,
}

/// The headless Chromium binary on this machine, if any. Debian's `/usr/bin` entries are shell
/// wrappers that run the real binary as a child: killing the wrapper would orphan the browser,
/// so the real binaries under `/usr/lib/chromium` come first.
pub fn chromium() -> Option<&'static str> {
    [
        "/usr/lib/chromium/chromium-headless-shell",
        "/usr/lib/chromium/chromium",
        "chromium-headless-shell",
        "chromium",
    ]
    .into_iter()
    .find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Loads `url` in a fresh headless Chromium and renders it.
pub async fn render(
    url: &str,
    width: u32,
    height: u32,
    javascript: bool,
) -> Result<Rendered, String> {
    let binary =
        chromium().ok_or("headless Chromium is missing: run scripts/install-test-deps.sh")?;
    let profile = std::env::temp_dir().join(format!(
        "rampart-chromium-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let mut child = tokio::process::Command::new(binary)
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so the browser and every process it starts end together.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {binary}: {e}"))?;
    let _group = child.id().map(ProcessGroup);
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let result = tokio::time::timeout(Duration::from_secs(30), async {
        let mut lines = BufReader::new(stderr).lines();
        let ws = loop {
            let line = lines
                .next_line()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("Chromium exited before DevTools listened")?;
            if let Some(u) = line.split("DevTools listening on ").nth(1) {
                break u.trim().to_owned();
            }
        };
        // Keep draining stderr so Chromium never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        drive(&ws, url, width, height, javascript).await
    })
    .await
    .map_err(|_| "Chromium did not render within 30 s".to_owned())?;
    let _ = child.kill().await;
    let _ = tokio::fs::remove_dir_all(&profile).await;
    result
}

/// Kills a process group when dropped: on every path out of `render`, a panic included.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // `kill -KILL -PGID` signals the whole group; there is no safe std call for it.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

struct Session {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    session: Option<String>,
}

impl Session {
    /// Sends a command and waits for its answer, remembering events seen meanwhile.
    async fn call(
        &mut self,
        method: &str,
        params: Value,
        events: &mut Vec<String>,
    ) -> Result<Value, String> {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = Value::String(s.clone());
        }
        self.socket
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let frame = self
                .socket
                .next()
                .await
                .ok_or("DevTools closed")?
                .map_err(|e| e.to_string())?;
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v["result"].clone());
            }
            if let Some(m) = v["method"].as_str() {
                events.push(m.to_owned());
            }
        }
    }

    async fn wait_event(&mut self, name: &str, events: &[String]) -> Result<(), String> {
        if events.iter().any(|e| e == name) {
            return Ok(());
        }
        loop {
            let frame = self
                .socket
                .next()
                .await
                .ok_or("DevTools closed")?
                .map_err(|e| e.to_string())?;
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["method"] == name {
                return Ok(());
            }
        }
    }
}

async fn drive(
    ws: &str,
    url: &str,
    width: u32,
    height: u32,
    javascript: bool,
) -> Result<Rendered, String> {
    let (socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .map_err(|e| e.to_string())?;
    let mut s = Session {
        socket,
        next: 0,
        session: None,
    };
    let mut events = vec![];
    let target = s
        .call(
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            &mut events,
        )
        .await?;
    let attached = s
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
            &mut events,
        )
        .await?;
    s.session = attached["sessionId"].as_str().map(str::to_owned);
    s.call("Page.enable", json!({}), &mut events).await?;
    s.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": !javascript }),
        &mut events,
    )
    .await?;
    s.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        &mut events,
    )
    .await?;
    events.clear();
    s.call("Page.navigate", json!({ "url": url }), &mut events)
        .await?;
    s.wait_event("Page.loadEventFired", &events).await?;
    let doc = s
        .call("DOM.getDocument", json!({ "depth": 0 }), &mut events)
        .await?;
    let html = s
        .call(
            "DOM.getOuterHTML",
            json!({ "nodeId": doc["root"]["nodeId"] }),
            &mut events,
        )
        .await?["outerHTML"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let shot = s
        .call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
            &mut events,
        )
        .await?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    Ok(Rendered { html, png })
}
