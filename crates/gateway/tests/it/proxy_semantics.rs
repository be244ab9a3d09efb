//! Proxy semantics end to end: what the backend receives and what the client gets back.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use rampart_testkit::EchoServer;
use rampart_testkit::client::{self, call};

use common::*;

fn header_values(doc: &serde_json::Value, name: &str) -> Vec<String> {
    doc["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn headers_table() {
    let backend = EchoServer::start("b1").await.expect("backend");
    let gw = start(&simple(&[backend.addr], "", "")).await;
    let base = base_url(&gw).await;
    let c = client::http1();

    struct Case {
        name: &'static str,
        headers: &'static [(&'static str, &'static str)],
        path: &'static str,
        /// (header, expected values at the backend); "*" alone means "present".
        backend_sees: &'static [(&'static str, &'static [&'static str])],
        backend_lacks: &'static [&'static str],
    }
    let table = [
        Case {
            name: "plain GET gets forwarding headers and a request id",
            headers: &[("host", "api.example.com")],
            path: "/v1/users?id=7",
            backend_sees: &[
                ("host", &["api.example.com"]),
                ("x-forwarded-for", &["127.0.0.1"]),
                ("x-forwarded-proto", &["http"]),
                ("x-forwarded-host", &["api.example.com"]),
                (
                    "forwarded",
                    &["for=127.0.0.1;proto=http;host=\"api.example.com\""],
                ),
                ("x-request-id", &["*"]),
            ],
            backend_lacks: &[],
        },
        Case {
            name: "forwarding headers a client sent are replaced (no trusted proxies)",
            headers: &[
                ("host", "api.example.com:8080"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "admin.internal"),
                ("forwarded", "for=203.0.113.9"),
            ],
            path: "/",
            backend_sees: &[
                ("x-forwarded-for", &["127.0.0.1"]),
                ("x-forwarded-proto", &["http"]),
                ("x-forwarded-host", &["api.example.com:8080"]),
                (
                    "forwarded",
                    &["for=127.0.0.1;proto=http;host=\"api.example.com:8080\""],
                ),
            ],
            backend_lacks: &[],
        },
        Case {
            name: "client request id is passed on",
            headers: &[("x-request-id", "req-42")],
            path: "/",
            backend_sees: &[("x-request-id", &["req-42"])],
            backend_lacks: &[],
        },
        Case {
            name: "hop-by-hop headers and those named by Connection are removed",
            headers: &[
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                ("x-end-to-end", "kept"),
            ],
            path: "/",
            backend_sees: &[("x-end-to-end", &["kept"])],
            backend_lacks: &["x-hop", "keep-alive", "proxy-authorization", "te"],
        },
    ];
    for case in &table {
        let mut req = Request::get(format!("{base}{}", case.path));
        for (k, v) in case.headers {
            req = req.header(*k, *v);
        }
        let answer = call(
            &c,
            req.body(Full::new(Bytes::new())).expect("request"),
            Duration::from_secs(5),
        )
        .await
        .expect("answer");
        assert_eq!(answer.status, StatusCode::OK, "{}", case.name);
        let doc = answer.json();
        assert_eq!(
            doc["path"],
            case.path.split('?').next().expect("path"),
            "{}",
            case.name
        );
        for (name, want) in case.backend_sees {
            let got = header_values(&doc, name);
            if *want == ["*"] {
                assert_eq!(got.len(), 1, "{}: backend should see one {name}", case.name);
            } else {
                assert_eq!(got, want.to_vec(), "{}: header {name}", case.name);
            }
        }
        for name in case.backend_lacks {
            assert!(
                header_values(&doc, name).is_empty(),
                "{}: backend must not see {name}",
                case.name
            );
        }
        // The client gets the same request id the backend saw.
        let id = header_values(&doc, "x-request-id");
        assert_eq!(
            answer.header("x-request-id"),
            id.first().map(String::as_str),
            "{}",
            case.name
        );
        assert_eq!(answer.header("x-backend"), Some("b1"));
    }
    // A query string reaches the backend intact.
    let a = client::get(&c, &format!("{base}/search?q=a%20b&x=1"))
        .await
        .expect("answer");
    assert_eq!(a.json()["query"], "q=a%20b&x=1");
}

#[tokio::test]
async fn errors_say_which_phase_failed() {
    let backend = EchoServer::start("slow").await.expect("backend");
    backend.control.set_latency(Duration::from_millis(800));
    // A port nothing listens on: bind one, note it, drop it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    // A listener that never accepts, its queue filled: further SYNs are dropped, so a connect
    // to it hangs (black-holed, not refused) until the gateway's connect deadline.
    let hole = tokio::net::TcpSocket::new_v4().expect("socket");
    hole.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let hole = hole.listen(1).expect("listen");
    let hole_addr = hole.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(hole_addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
upstreams:
  - {{ name: slow, endpoints: ["{}"] }}
  - {{ name: dead, endpoints: ["{dead}"], connect_timeout: 200ms }}
  - {{ name: hole, endpoints: ["{hole_addr}"], connect_timeout: 200ms }}
routes:
  - {{ name: slow, match: {{ path_prefix: /slow }}, upstream: slow, timeout: 200ms }}
  - {{ name: dead, match: {{ path_prefix: /dead }}, upstream: dead }}
  - {{ name: hole, match: {{ path_prefix: /hole }}, upstream: hole, timeout: 5s }}
limits: {{ max_body_bytes: 1000 }}
"#,
        backend.addr
    );
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    let c = client::http1();

    let t = Instant::now();
    let a = client::get(&c, &format!("{base}/slow"))
        .await
        .expect("answer");
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "timeout took {:?}",
        t.elapsed()
    );
    assert_eq!(a.json()["phase"], "upstream_timeout");
    assert_eq!(a.json()["route"], "slow");
    assert_eq!(a.header("content-type"), Some("application/json"));

    let a = client::get(&c, &format!("{base}/dead"))
        .await
        .expect("answer");
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.json()["phase"], "upstream_connect");
    assert_eq!(a.json()["error"], "upstream_connect_failed");

    // Black-holed: ended by the 200 ms connect deadline, well before the route's 5 s.
    let t = Instant::now();
    let a = client::get(&c, &format!("{base}/hole"))
        .await
        .expect("answer");
    let took = t.elapsed();
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.text());
    assert_eq!(a.json()["phase"], "upstream_connect");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "a black-holed connect took {took:?} (connect deadline 200 ms)"
    );
    drop((fillers, hole));

    let a = client::get(&c, &format!("{base}/nowhere"))
        .await
        .expect("answer");
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["phase"], "routing");

    let req = Request::post(format!("{base}/slow"))
        .body(Full::new(Bytes::from(vec![b'x'; 2000])))
        .expect("req");
    let a = call(&c, req, Duration::from_secs(5)).await.expect("answer");
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json()["phase"], "request");
    assert!(a.header("x-request-id").is_some());
}

#[tokio::test]
async fn http2_end_to_end() {
    let backend = EchoServer::start("b1").await.expect("backend");
    let gw = start(&simple(&[backend.addr], "", "")).await;
    let base = base_url(&gw).await;
    let a = client::get(&client::h2c(), &format!("{base}/h2?x=1"))
        .await
        .expect("answer");
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.version, http::Version::HTTP_2);
    let doc = a.json();
    // The backend speaks HTTP/1.1 and sees the :authority as Host.
    assert_eq!(doc["version"], "HTTP/1.1");
    assert_eq!(
        header_values(&doc, "host"),
        vec![base.trim_start_matches("http://").to_string()]
    );
    assert_eq!(doc["query"], "x=1");
}

#[tokio::test]
async fn tls_with_alpn_h2_and_http1() {
    let backend = EchoServer::start("b1").await.expect("backend");
    let cert = TestCert::new("tls");
    let (cert_path, key_path) = (&cert.cert_path, &cert.key_path);
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0", tls: {{ cert_file: "{}", key_file: "{}" }} }}]
upstreams: [{{ name: backend, endpoints: ["{}"] }}]
routes: [{{ name: main, upstream: backend }}]
"#,
        cert_path.display(),
        key_path.display(),
        backend.addr
    );
    let gw = start(&yaml).await;
    let port = gw.listener_addr("public").await.expect("addr").port();
    let url = format!("https://localhost:{port}/secure");
    for (alpn, version) in [
        (&[b"h2".as_slice()][..], http::Version::HTTP_2),
        (&[b"http/1.1".as_slice()][..], http::Version::HTTP_11),
    ] {
        let c = client::tls(cert.cert_pem.as_bytes(), alpn).expect("tls client");
        let req = Request::get(&url)
            .body(Full::new(Bytes::new()))
            .expect("req");
        let a = call(&c, req, Duration::from_secs(5)).await.expect("answer");
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.version, version);
        let doc = a.json();
        assert_eq!(header_values(&doc, "x-forwarded-proto"), vec!["https"]);
        assert_eq!(doc["path"], "/secure");
    }
}

/// Sends a body chunk by chunk and waits for each chunk to come back through the proxy before
/// sending the next. A proxy that buffered the request (or the response) would deadlock here.
async fn interactive_stream(url: &str, h2: bool, chunks: usize, chunk_size: usize) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let body = StreamBody::new(tokio_stream_from(rx));
    let req = Request::post(url).body(body.boxed()).expect("req");
    let streaming_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(h2)
            .build_http();
    let chunk = Bytes::from(vec![b'z'; chunk_size]);
    tx.send(Ok(Frame::data(chunk.clone())))
        .await
        .expect("send first");
    let resp = tokio::time::timeout(Duration::from_secs(5), streaming_client.request(req))
        .await
        .expect("response headers arrive before the request body is complete")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = 0usize;
    for i in 0..chunks {
        // Read until this chunk has fully come back.
        while received < (i + 1) * chunk_size {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap_or_else(|_| panic!("chunk {i} did not come back: the proxy is buffering"))
                .expect("frame")
                .expect("frame ok");
            if let Some(d) = frame.data_ref() {
                received += d.len();
            }
        }
        if i + 1 < chunks {
            tx.send(Ok(Frame::data(chunk.clone()))).await.expect("send");
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame.expect("frame").data_ref() {
            received += d.len();
        }
    }
    assert_eq!(received, chunks * chunk_size);
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn multi_megabyte_bodies_stream_both_ways() {
    let backend = EchoServer::start("b1").await.expect("backend");
    let gw = start(&simple(&[backend.addr], "", "")).await;
    let base = base_url(&gw).await;
    // 8 MiB in 256 KiB chunks, each echoed back before the next is sent: HTTP/1.1 and h2c.
    interactive_stream(&format!("{base}/stream"), false, 32, 256 * 1024).await;
    interactive_stream(&format!("{base}/stream"), true, 32, 256 * 1024).await;
    let c = client::http1();
    // A large download arrives whole.
    let a = client::get(&c, &format!("{base}/bytes/{}", 6 * 1024 * 1024))
        .await
        .expect("download");
    assert_eq!(a.body.len(), 6 * 1024 * 1024);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_cut() {
    let backend = EchoServer::start("b1").await.expect("backend");
    let yaml = simple(&[backend.addr], "", "")
        .replace("routes:", "limits: { max_body_bytes: 100000 }\nroutes:");
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    // No Content-Length: the limit is enforced while streaming.
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..20)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'a'; 10_000]))))
        .collect();
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let req = Request::post(format!("{base}/count"))
        .body(body)
        .expect("req");
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = tokio::time::timeout(Duration::from_secs(5), c.request(req))
        .await
        .expect("no hang")
        .expect("an answer");
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body over the limit must not be delivered"
    );
}

#[tokio::test]
async fn connections_closed_by_the_upstream_are_not_reused() {
    let first = EchoServer::start("first").await.expect("backend");
    let addr = first.addr;
    let gw = start(&simple(&[addr], "", "")).await;
    let base = base_url(&gw).await;
    let c = client::http1();
    for _ in 0..5 {
        assert_eq!(
            client::get(&c, &format!("{base}/x"))
                .await
                .expect("answer")
                .status,
            StatusCode::OK
        );
    }
    // The upstream restarts: every pooled keep-alive connection to it is now closed.
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = EchoServer::start_on(addr, "second")
        .await
        .expect("restart on the same port");
    for _ in 0..5 {
        let a = client::get(&c, &format!("{base}/x")).await.expect("answer");
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(a.header("x-backend"), Some("second"));
    }
    assert_eq!(second.control.hits(), 5);
}
