//! An agent trusts its own `--env` over what a control plane says: a version addressed to
//! another environment is never applied, and the refusal is reported. The control plane here
//! is a small hand-written HTTP/1.1 server that lies, so nothing of rampart's answers for it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use rampart_gateway::agent::{AgentOptions, run};
use rampart_gateway::watchdog::WatchdogSettings;

/// What the fake control plane saw: "METHOD path", the instance credential, the body.
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

/// One request's method, path, credential header and body; answers with `answer(path)`.
async fn serve_one(
    stream: tokio::net::TcpStream,
    seen: Seen,
    answer: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    let (mut length, mut credential) = (0usize, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-rampart-instance-credential" => credential = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap_or_else(|p| p.into_inner()).push((
        format!("{method} {path}"),
        credential,
        body,
    ));
    let json = answer(&path);
    let status = if json.is_empty() {
        "204 No Content"
    } else {
        "200 OK"
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
        json.len()
    );
    reader.get_mut().write_all(reply.as_bytes()).await
}

#[tokio::test]
async fn an_agent_refuses_a_version_addressed_to_another_environment() {
    let listen: SocketAddr = common_free_addr();
    let document = format!(
        r#"{{"listeners":[{{"name":"public","address":"{listen}"}}],"upstreams":[{{"name":"b","endpoints":["127.0.0.1:9"]}}],"routes":[{{"name":"r","upstream":"b"}}]}}"#
    );
    let config = rampart_model::load(&document).expect("a valid config");
    let version = config.version().as_str().to_owned();
    let canonical = rampart_model::canonical_json(config.document());
    let control = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", control.local_addr().expect("addr"));
    let seen: Seen = Arc::default();
    let server = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = control.accept().await {
                let (seen, version, canonical) = (seen.clone(), version.clone(), canonical.clone());
                tokio::spawn(serve_one(stream, seen, move |path| {
                    if path.starts_with("/v1/agents/register") {
                        serde_json::json!({ "poll_wait_ms": 200, "report_interval_ms": 1000, "credential": "ri_issued" }).to_string()
                    } else if path.contains("/desired") {
                        // The lie: production's gateway is handed testing's version.
                        serde_json::json!({ "environment": "testing", "version": version, "document": canonical, "restart": 0 }).to_string()
                    } else {
                        String::new()
                    }
                }));
            }
        })
    };
    let state_dir = std::env::temp_dir().join(format!("rampart-env-lie-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let opts = AgentOptions {
        control: url,
        ca: None,
        token: Some("agent".into()),
        environment: "production".into(),
        instance: "p1".into(),
        zone: "z1".into(),
        state_dir: state_dir.clone(),
        gateway: rampart_gateway::Options {
            listen: vec![],
            admin: Some("127.0.0.1:0".parse().expect("addr")),
            drain: Duration::from_millis(100),
            probe_secret: None,
        },
        watchdog: WatchdogSettings::quiet(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(run(opts, async move {
        let _ = stopped.await;
    }));

    // Wait for a report that names the refusal.
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let all = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        refused = all.iter().any(|(what, credential, body)| {
            what.ends_with("/report")
                && credential.as_deref() == Some("ri_issued")
                && body.contains("addressed to testing")
        });
        if refused {
            break;
        }
    }
    let all = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(refused, "no report of the refusal: {all:?}");
    // Polls carried the credential the registration gave.
    assert!(
        all.iter()
            .filter(|(what, ..)| what.contains("/desired"))
            .all(|(_, credential, _)| credential.as_deref() == Some("ri_issued")),
        "{all:?}"
    );
    // Nothing was applied: nothing listens where the lie said, and no report claims it.
    assert!(tokio::net::TcpStream::connect(listen).await.is_err());
    assert!(
        all.iter()
            .filter(|(what, ..)| what.ends_with("/report"))
            .all(|(_, _, body)| body.contains("\"applied\":null")),
        "{all:?}"
    );
    let _ = stop.send(());
    let _ = agent.await;
    server.abort();
    let _ = std::fs::remove_dir_all(&state_dir);
}

/// A loopback address nothing listens on (yet).
fn common_free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}
