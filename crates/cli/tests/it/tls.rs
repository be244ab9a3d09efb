//! The control plane over HTTPS with a private CA: the CLI and a gateway's agent trust it when
//! given `--ca`, and refuse a certificate that does not chain to what they trust. The public
//! status page can be served alone on a second, plain listener.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;
use common::{Spawned, bootstrap_token, free_port};

/// A CA, and a certificate for 127.0.0.1 and localhost that it signed: (ca, cert, key) PEM.
fn private_ca() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rampart test CA");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// `rampart fleet` against `url`, with `--ca` when given: (succeeded, stderr).
fn fleet(url: &str, token: &str, ca: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(["fleet", "--control", url, "--token", token]);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = cmd.env_remove("RAMPART_CA").output().expect("run rampart");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_and_agents_trust_a_private_ca_and_nothing_else() {
    let data = std::env::temp_dir().join(format!("rampart-cli-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let (ca, cert, key) = private_ca();
    let (other_ca, _, _) = private_ca();
    for (name, pem) in [
        ("ca.pem", &ca),
        ("other-ca.pem", &other_ca),
        ("cert.pem", &cert),
        ("key.pem", &key),
    ] {
        std::fs::write(data.join(name), pem).expect("write");
    }
    let (port, page_port) = (free_port(), free_port());
    let _control = Spawned(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["control", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(data.join("cp"))
            .arg("--tls-cert")
            .arg(data.join("cert.pem"))
            .arg("--tls-key")
            .arg(data.join("key.pem"))
            .args(["--public-listen", &format!("127.0.0.1:{page_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn control plane"),
    );
    let operator = bootstrap_token(&data.join("cp"), "operator").await;
    let agent_token = bootstrap_token(&data.join("cp"), "agent").await;
    let url = format!("https://127.0.0.1:{port}");
    let trusted = rampart_api::ApiClient::new(&url, Some(operator.clone()))
        .with_ca(ca.as_bytes())
        .expect("CA");
    let mut up = false;
    for _ in 0..100 {
        if trusted.versions().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the control plane never answered over HTTPS");

    // The CLI: trusted with the private CA; refused without it or with another one.
    let (ok, err) = fleet(&url, &operator, Some(&data.join("ca.pem")));
    assert!(ok, "{err}");
    for ca in [None, Some(data.join("other-ca.pem"))] {
        let (ok, err) = fleet(&url, &operator, ca.as_deref());
        assert!(!ok, "trusted a certificate outside its roots ({ca:?})");
        assert!(err.to_lowercase().contains("certificate"), "{err}");
    }
    // Plain HTTP to the HTTPS listener gets nothing.
    let plain = rampart_api::ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(operator));
    assert!(plain.versions().await.is_err());

    // An agent with the wrong CA never registers; one with the right CA does.
    let gateway = |name: &str, ca: &str| {
        Spawned(
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .args(["gateway", "--control", &url, "--env", "testing"])
                .args(["--instance", name, "--token", &agent_token])
                .arg("--state-dir")
                .arg(data.join(name))
                .arg("--ca")
                .arg(data.join(ca))
                .env_remove("RAMPART_CA")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn gateway"),
        )
    };
    let _wrong = gateway("wrong-ca", "other-ca.pem");
    let _right = gateway("right-ca", "ca.pem");
    let registered = async || -> Vec<String> {
        let envs = trusted.environments().await.expect("environments");
        envs.into_iter()
            .flat_map(|e| e.instances)
            .map(|i| i.id)
            .collect()
    };
    for _ in 0..100 {
        if !registered().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The wrong-CA agent has had as long, and more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let registered = registered().await;
    assert_eq!(registered, ["right-ca"], "{registered:?}");

    // The public listener serves the page and nothing of the API.
    let page = format!("http://127.0.0.1:{page_port}");
    let client = rampart_testkit::client::http1();
    let home = rampart_testkit::client::get(&client, &format!("{page}/"))
        .await
        .expect("page");
    assert_eq!(home.status, 200);
    let api = rampart_testkit::client::get(&client, &format!("{page}/v1/versions"))
        .await
        .expect("answer");
    assert_eq!(api.status, 404, "the API was served on the public listener");
    let _ = std::fs::remove_dir_all(&data);
}
