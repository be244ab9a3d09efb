//! The `rampart` binary: config commands' output and exit codes, and the gateway's signals.

use std::process::{Command, Stdio};

use crate::common::Spawned;
use std::time::{Duration, Instant};

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn validate_prints_every_error_and_fails() {
    let dir = temp_dir("validate");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "listeners: [{ name: public, address: \"127.0.0.1:80\" }]\nupstreams: []\nroutes: [{ name: r, upstream: users, timeout: 10 }]\n",
    )
    .expect("write");
    let out = rampart()
        .args(["config", "validate"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 errors in config"), "{err}");
    assert!(
        err.contains(r#"routes[0].upstream: no upstream named "users""#),
        "{err}"
    );
    assert!(
        err.contains(r#"routes[0].timeout: invalid duration "10": missing unit after 10"#),
        "{err}"
    );

    let out = rampart()
        .args(["config", "validate", "--output", "json"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["errors"][0]["path"], "routes[0].upstream");

    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gateway.yaml");
    let out = rampart()
        .args(["config", "validate", good])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, version "));

    let out = rampart().args(["config", "schema"]).output().expect("run");
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert!(schema["properties"]["routes"].is_object());
    let _ = std::fs::remove_dir_all(&dir);
}

fn free_port() -> u16 {
    rampart_testkit::ports::free_loopback_addr()
        .expect("free port")
        .port()
}

/// GET over a plain socket (this test has no async runtime).
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn version(admin: u16) -> Option<String> {
    let text = http_get(admin, "/config")?;
    let body = text.split("\r\n\r\n").nth(1)?;
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    doc["version"].as_str().map(str::to_owned)
}

#[allow(clippy::disallowed_methods)] // a synchronous test driving a child process
fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
#[allow(clippy::disallowed_methods)] // a synchronous test driving a child process
fn sighup_reloads_reopens_the_access_log_and_sigterm_drains() {
    let dir = temp_dir("signals");
    let path = dir.join("gateway.yaml");
    let log = dir.join("access.log");
    let (listen, admin) = (free_port(), free_port());
    let doc = |timeout: &str| {
        format!(
            "listeners: [{{ name: public, address: \"127.0.0.1:{listen}\" }}]\nadmin: {{ address: \"127.0.0.1:{admin}\" }}\naccess_log: {{ path: \"{}\" }}\nupstreams: [{{ name: u, endpoints: [\"127.0.0.1:9\"] }}]\nroutes: [{{ name: r, upstream: u, timeout: {timeout} }}]\n",
            log.display()
        )
    };
    let logged = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path).is_ok_and(|t| t.contains(what))
    };
    std::fs::write(&path, doc("5000ms")).expect("write");
    let mut child = rampart()
        .args(["gateway", "--config"])
        .arg(&path)
        .args(["--drain", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Spawned)
        .expect("spawn");
    wait_for("the gateway to be ready", Duration::from_secs(10), || {
        http_get(admin, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
    });
    let v1 = version(admin).expect("version");
    http_get(listen, "/before-rotation");
    wait_for("the first access-log line", Duration::from_secs(5), || {
        logged(&log, "/before-rotation")
    });
    // logrotate moves the file, then signals.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");

    // Change the content without changing size or mtime: only SIGHUP can make the gateway see it.
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(&path, doc("6000ms")).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(modified))
        .expect("restore mtime");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        version(admin).as_deref(),
        Some(v1.as_str()),
        "the watcher should not have noticed"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    wait_for("the SIGHUP reload", Duration::from_secs(5), || {
        version(admin).is_some_and(|v| v != v1)
    });
    http_get(listen, "/after-rotation");
    wait_for(
        "a line in the reopened access log",
        Duration::from_secs(5),
        || logged(&log, "/after-rotation"),
    );
    assert!(!logged(&log, "/before-rotation"));
    assert!(logged(&rotated, "/before-rotation") && !logged(&rotated, "/after-rotation"));

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[allow(clippy::disallowed_methods)] // a synchronous test driving a child process
fn up_serves_and_a_second_run_reuses_the_data() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("up");
    for run in 0..2 {
        let ports: Vec<String> = (0..5)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut child = rampart()
            .arg("up")
            .arg("--data")
            .arg(&dir)
            .args([
                "--control",
                &ports[0],
                "--gateway",
                &ports[1],
                "--testing-gateway",
                &ports[2],
                "--backend",
                &ports[3],
                "--auth",
                &ports[4],
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.with_extension("stderr")).expect("log file"))
            .spawn()
            .map(Spawned)
            .expect("spawn up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let start = Instant::now();
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.starts_with("ready")) {
            assert!(
                start.elapsed() < Duration::from_secs(60)
                    && !matches!(child.try_wait(), Ok(Some(_))),
                "run {run}: not ready: {lines:?}\n{}",
                std::fs::read_to_string(dir.with_extension("stderr")).unwrap_or_default()
            );
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                lines.push(l);
            }
        }
        let port: u16 = ports[1]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let answer = http_get(port, "/hello").expect("gateway answers");
        assert!(answer.starts_with("HTTP/1.1 200"), "run {run}: {answer}");
        let secure = http_get(port, "/secure").expect("gateway answers");
        assert!(
            secure.starts_with("HTTP/1.1 401"),
            "run {run}: an unauthenticated request must be refused: {secure}"
        );
        // The status page, served by the control plane, shows the components.
        let control: u16 = ports[0]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let page = http_get(control, "/").expect("status page answers");
        assert!(
            page.starts_with("HTTP/1.1 200")
                && page.contains("Public API")
                && page.contains("Secure API"),
            "run {run}: status page: {}",
            &page[..page.len().min(300)]
        );
        assert!(
            lines.iter().any(|l| l.contains("status page")),
            "run {run}: the status page URL is not printed: {lines:?}"
        );
        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill")
                .success()
        );
        let status = child.wait().expect("wait");
        assert!(status.success(), "run {run}: exit {status}");
    }
    assert!(dir.join("rampart.db").exists() && dir.join("tokens.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("stderr"));
}
