//! Helpers shared by the gateway's integration tests: real gateways on loopback.
#![allow(dead_code)]

use std::time::Duration;

use rampart_gateway::{Gateway, Options};

/// Compiles a YAML document; panics with every error if it is invalid (a test bug).
pub fn config(yaml: &str) -> rampart_model::Config {
    match rampart_model::load(yaml) {
        Ok(c) => c,
        Err(e) => panic!("test config invalid: {e}\n{yaml}"),
    }
}

/// Starts a gateway; listeners and admin should use port 0.
pub async fn start(yaml: &str) -> Gateway {
    let options = Options {
        drain: Duration::from_secs(5),
        ..Options::default()
    };
    match Gateway::start(config(yaml), options).await {
        Ok(g) => g,
        Err(e) => panic!("gateway did not start: {e}"),
    }
}

pub async fn base_url(gw: &Gateway) -> String {
    format!(
        "http://{}",
        gw.listener_addr("public").await.expect("listener public")
    )
}

pub fn admin_url(gw: &Gateway) -> String {
    format!("http://{}", gw.admin_addr().expect("admin"))
}

/// A config with one public listener, an admin listener and one upstream with the given endpoints.
pub fn simple(endpoints: &[std::net::SocketAddr], extra_upstream: &str, route: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - name: backend
    endpoints: [{}]
{extra_upstream}
routes:
  - name: main
    upstream: backend
{route}
"#,
        eps.join(", ")
    )
}

/// Polls `f` every 20 ms until it returns true or `within` passes.
pub async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A self-signed certificate for `localhost`, written as PEM files into a fresh temporary
/// folder named after `tag`; the folder is removed when the returned value is dropped.
pub struct TestCert {
    pub dir: std::path::PathBuf,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
    pub cert_pem: String,
}

impl TestCert {
    pub fn new(tag: &str) -> TestCert {
        let dir = std::env::temp_dir().join(format!("rampart-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
        TestCert {
            dir,
            cert_path,
            key_path,
            cert_pem: cert.cert.pem(),
        }
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of the first metric line starting with `line_start` (0 when absent).
pub async fn metric(gw: &Gateway, line_start: &str) -> f64 {
    let text = rampart_testkit::client::get(
        &rampart_testkit::client::http1(),
        &format!("{}/metrics", admin_url(gw)),
    )
    .await
    .expect("metrics")
    .text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
