//! The access log: one JSON (or CLF) line per request with what happened to it, written by a
//! writer of its own. A full disk (`/dev/full`) or a writer that falls behind costs lines,
//! counted, never a request's time.

// Tests read back the small log files they made, synchronously.
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rampart_testkit::client::{self, call};
use rampart_testkit::peer::Peer;
use sha2::Digest;

use common::*;

const KEY: &str = "k-log";

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rampart-{tag}-{}-{}",
        std::process::id(),
        fastrand_u32()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    eventually(Duration::from_secs(5), async || lines(path).len() >= n).await;
    lines(path)
}

#[tokio::test]
async fn every_request_leaves_one_json_line_with_what_happened_to_it() {
    let test_began = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let python = Peer::python_server("path_echo.py", &[])
        .await
        .expect("python backend");
    let py = python.addr.expect("addr");
    let dir = temp_dir("access-log");
    let log = dir.join("access.log");
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    let gw = start(&format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
access_log: {{ path: "{}" }}
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams: [{{ name: python, endpoints: ["{py}"] }}]
routes:
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: python }}
  - {{ name: keyed, match: {{ path_prefix: /keyed }}, upstream: python, auth: keys }}
"#,
        log.display()
    ))
    .await;
    let base = base_url(&gw).await;
    let c = client::http1();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let req = Request::post(format!("{base}/open/a/./b//c?q=1"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(Full::new(Bytes::from_static(b"hello world")))
        .expect("request");
    let ok = call(&c, req, Duration::from_secs(5)).await.expect("post");
    assert_eq!(ok.status, 200);
    let keyed = Request::get(format!("{base}/keyed/x"))
        .header("x-api-key", KEY)
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(
        call(&c, keyed, Duration::from_secs(5))
            .await
            .expect("keyed")
            .status,
        200
    );
    // A client's request id that JSON must escape (kept: it is printable ASCII).
    let hostile_id = r#"id"with\back"#;
    let nowhere = Request::get(format!("{base}/nowhere"))
        .header("x-request-id", hostile_id)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let missing = call(&c, nowhere, Duration::from_secs(5))
        .await
        .expect("404");
    assert_eq!(missing.status, 404);
    let refused = client::get(&c, &format!("{base}/keyed/x"))
        .await
        .expect("401");
    assert_eq!(refused.status, 401);

    let got = wait_for_lines(&log, 4).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let first = &got[0];
    // The fields in their documented order (read from the text: JSON maps do not keep order).
    let text = std::fs::read_to_string(&log).expect("log");
    let first_line = text.lines().next().expect("a line");
    let order = [
        "time",
        "request_id",
        "trace_id",
        "listener",
        "route",
        "upstream",
        "endpoint",
        "method",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_headers_ms",
        "duration_ms",
        "auth_subject",
        "client",
        "reason",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|f| first_line.find(&format!("\"{f}\":")).expect(f))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{first_line}");
    assert_eq!(first.as_object().expect("object").len(), order.len());
    assert_eq!(first["request_id"], ok.header("x-request-id").expect("id"));
    assert_eq!(first["trace_id"], trace);
    assert_eq!(first["listener"], "public");
    assert_eq!(first["route"], "open");
    assert_eq!(first["upstream"], "python");
    assert_eq!(first["endpoint"], py.to_string());
    assert_eq!(first["method"], "POST");
    assert_eq!(
        first["path"], "/open/a/b/c",
        "the normalized path, without the query"
    );
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_in"], 11);
    assert_eq!(first["bytes_out"], ok.body.len());
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["reason"], serde_json::Value::Null);
    let headers_ms = first["duration_headers_ms"].as_f64().expect("ms");
    let total_ms = first["duration_ms"].as_f64().expect("ms");
    assert!(
        headers_ms > 0.0 && headers_ms <= total_ms,
        "{headers_ms} {total_ms}"
    );
    // The line's time is when the request began: between the test's start and now.
    let at = rampart_api::time::parse_ms(first["time"].as_str().expect("time")).expect("RFC 3339");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(at <= now && at + 60_000 >= now, "{at} vs now {now}");
    assert!(
        at >= test_began,
        "{at} began before the test ({test_began})"
    );

    assert_eq!(got[1]["route"], "keyed");
    assert!(
        got[1]["auth_subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("apikey:")),
        "{}",
        got[1]
    );
    assert_eq!(got[2]["status"], 404);
    assert_eq!(got[2]["route"], serde_json::Value::Null);
    assert_eq!(got[2]["reason"], "no_route");
    assert_eq!(got[2]["trace_id"], serde_json::Value::Null);
    assert_eq!(got[2]["request_id"], hostile_id);
    assert_eq!(got[3]["status"], 401);
    assert_eq!(got[3]["reason"], "unauthorized");
    assert_eq!(got[3]["endpoint"], serde_json::Value::Null);
    assert_eq!(metric(&gw, "rampart_access_log_lines_total").await, 4.0);

    // Log rotation: the file is moved away, the gateway told to reopen (SIGHUP does this), and
    // the next line lands in a new file at the same path.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    gw.reopen_logs();
    client::get(&c, &format!("{base}/open/after"))
        .await
        .expect("get");
    let fresh = wait_for_lines(&log, 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["path"], "/open/after");
    assert_eq!(lines(&rotated).len(), 4, "the old file keeps its lines");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_common_log_format_and_chosen_fields() {
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let dir = temp_dir("access-clf");
    let (clf, json) = (dir.join("clf.log"), dir.join("json.log"));
    let yaml = |path: &std::path::Path, rest: &str| {
        simple(&[echo.addr], "", "").replace(
            "upstreams:",
            &format!(
                "access_log: {{ path: \"{}\"{rest} }}\nupstreams:",
                path.display()
            ),
        )
    };
    let gw = start(&yaml(&clf, ", format: clf")).await;
    let base = base_url(&gw).await;
    client::get(&client::http1(), &format!("{base}/x/y"))
        .await
        .expect("get");
    eventually(Duration::from_secs(5), async || {
        std::fs::read_to_string(&clf).is_ok_and(|t| !t.is_empty())
    })
    .await;
    let line = std::fs::read_to_string(&clf).expect("clf");
    let re_ok = line.starts_with("127.0.0.1 - - [")
        && line.contains("] \"GET /x/y HTTP/1.1\" 200 ")
        && line.ends_with('\n');
    assert!(re_ok, "{line:?}");
    gw.apply(config(&yaml(&json, ", fields: [status, route]")))
        .await
        .expect("apply");
    client::get(&client::http1(), &format!("{base}/x/y"))
        .await
        .expect("get");
    let got = wait_for_lines(&json, 1).await;
    assert_eq!(got[0], serde_json::json!({"status": 200, "route": "main"}));
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_full_disk_costs_log_lines_never_requests() {
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let yaml = simple(&[echo.addr], "", "")
        .replace("upstreams:", "access_log: { path: /dev/full }\nupstreams:");
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    let c = client::http1();
    let started = Instant::now();
    for _ in 0..200 {
        let a = client::get(&c, &format!("{base}/x")).await.expect("get");
        assert_eq!(a.status, 200);
    }
    let took = started.elapsed();
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(
                &gw,
                "rampart_access_log_dropped_total{reason=\"write_error\"}",
            )
            .await
                >= 200.0
        })
        .await,
        "every line counted as lost"
    );
    assert!(took < Duration::from_secs(10), "200 requests took {took:?}");
    assert_eq!(metric(&gw, "rampart_access_log_lines_total").await, 0.0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_log_nobody_reads_drops_lines_once_its_buffer_is_full_and_requests_go_on() {
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let dir = temp_dir("access-fifo");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // A FIFO that no one ever opens for reading: the writer waits on it forever; requests
    // must not.
    let yaml = simple(&[echo.addr], "", "").replace(
        "upstreams:",
        &format!(
            "access_log: {{ path: \"{}\", buffer: 16 }}\nupstreams:",
            fifo.display()
        ),
    );
    let started = Instant::now();
    let gw = start(&yaml).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "apply waited on the FIFO"
    );
    let base = base_url(&gw).await;
    let c = client::http1();
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let t = Instant::now();
        let a = client::get(&c, &format!("{base}/x")).await.expect("get");
        assert_eq!(a.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest request {slowest:?}"
    );
    assert!(
        metric(
            &gw,
            "rampart_access_log_dropped_total{reason=\"buffer_full\"}"
        )
        .await
            >= 84.0,
        "lines past the 16-line buffer are dropped and counted"
    );
    // The writer thread is still waiting to open the FIFO: give it a reader so it can end.
    let reader = std::fs::File::open(&fifo);
    gw.shutdown().await;
    drop(reader);
    let _ = std::fs::remove_dir_all(&dir);
}
