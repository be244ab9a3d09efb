//! `rampart control --database` and `rampart control migrate`: a control plane's embedded
//! store copied into a real PostgreSQL server, and the control plane run on it again, with
//! everything it knew — versions, the event log, policies, tokens' revocations.

use std::process::Command;

use rampart_api::ApiClient;

use crate::common;
use common::{free_port, operator_token, start, start_with, wait_up};

#[tokio::test]
async fn an_embedded_store_moves_into_postgresql_and_the_control_plane_runs_on_it() {
    let data = std::env::temp_dir().join(format!("rampart-cli-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let port = free_port();
    let control = start(&data, port);
    let op_token = operator_token(&data).await;
    let url = format!("http://127.0.0.1:{port}");
    let op = ApiClient::new(&url, Some(op_token.clone()));
    wait_up(&op).await;
    let doc = "listeners: [{ name: public, address: \"127.0.0.1:8080\" }]\nupstreams: [{ name: b, endpoints: [\"127.0.0.1:9\"] }]\nroutes: [{ name: r, upstream: b }]\n";
    let v1 = op.push(doc, "first").await.expect("push").version.id;
    op.deploy("testing", &v1, None).await.expect("deploy");
    op.set_policy("production", "waves:\n  - percent: 100\n    bake: 1m\n")
        .await
        .expect("policy");
    let events_before = op.events(0).await.expect("events").len();
    drop(control);

    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server");
    let migrate = |to: &str| {
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["control", "migrate", "--from"])
            .arg(&data)
            .args(["--to", to])
            .output()
            .expect("run migrate")
    };
    let out = migrate(&server.url());
    let (said, progress) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{said}\n{progress}");
    assert!(said.contains("every count checked"), "{said}");
    assert!(
        progress.contains("events:") && progress.contains("policies: 1 rows"),
        "{progress}"
    );

    let port = free_port();
    let _control = start_with(&data, port, &["--database", &server.url()]);
    let op = ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(op_token));
    wait_up(&op).await;
    let versions = op.versions().await.expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].id, v1);
    let envs = op.environments().await.expect("environments");
    assert_eq!(envs[0].desired.as_ref(), Some(&v1));
    let policy = op.policy("production").await.expect("policy");
    assert_eq!(policy.revision, Some(1));
    // The log goes on where it was: what was there, and the new control plane's own events.
    let events = op.events(0).await.expect("events");
    assert!(
        events.len() >= events_before,
        "{} < {events_before}",
        events.len()
    );

    // A database in use is never copied over.
    let again = migrate(&server.url());
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let _ = std::fs::remove_dir_all(&data);
}
