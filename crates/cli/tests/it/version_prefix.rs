//! Wherever the CLI takes a version id it takes a unique abbreviation of one, as `rampart fleet`
//! and `config history` print them; anything else is refused with the reason, and nothing moves.

use crate::common;
use common::{free_port, operator_token, rampart, start, wait_up};

const DOC: &str = r#"
listeners: [{ name: public, address: "127.0.0.1:18080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9"] }]
routes: [{ name: users, upstream: users }]
"#;

#[tokio::test]
async fn deploy_and_rollback_take_a_unique_prefix_of_a_version_id() {
    let data = std::env::temp_dir().join(format!("rampart-cli-prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let port = free_port();
    let mut control = start(&data, port);
    let token = operator_token(&data).await;
    let client =
        rampart_api::ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(token.clone()));
    wait_up(&client).await;
    let file = data.join("v1.yaml");
    tokio::fs::write(&file, DOC).await.expect("write");
    let (ok, out, err) = rampart(port, &token, &["config", "push", &file.to_string_lossy()]);
    assert!(ok, "push failed: {err}");
    let id = client.versions().await.expect("versions")[0].id.clone();
    assert!(out.contains(id.as_str()), "{out}");
    let desired = async || {
        client.environments().await.expect("environments")[0]
            .desired
            .clone()
    };

    // Refused: not hex, too short, and a prefix no version has. Nothing moves.
    for (prefix, why) in [
        ("zzzzzzzz", "is not a version id or a prefix of one"),
        ("abc", "is not a version id or a prefix of one"),
        (
            if id.starts_with("000000") {
                "ffffff"
            } else {
                "000000"
            },
            "no version starts with",
        ),
    ] {
        let (ok, _, err) = rampart(
            port,
            &token,
            &["deploy", "--env", "testing", "--version", prefix],
        );
        assert!(!ok, "deploy --version {prefix} succeeded");
        assert!(err.contains(why), "{prefix}: {err}");
        assert_eq!(desired().await, None, "{prefix} moved testing");
    }

    // The 12 characters `rampart fleet` shows are enough.
    let (ok, out, err) = rampart(
        port,
        &token,
        &["deploy", "--env", "testing", "--version", id.short()],
    );
    assert!(ok, "deploy by prefix failed: {err}");
    assert!(out.contains(&format!("desired {}", id.short())), "{out}");
    assert_eq!(desired().await, Some(id.clone()));

    // Rollback resolves the prefix too; with no gateway ever having run the version, the
    // server then refuses it by rule (rollback only goes back), naming the whole id's short form.
    let (ok, _, err) = rampart(
        port,
        &token,
        &["rollback", "--env", "testing", "--to", &id[..8]],
    );
    assert!(!ok, "rollback to a version testing never ran succeeded");
    assert!(
        err.contains(&format!("version {} never was", id.short())),
        "{err}"
    );
    assert_eq!(desired().await, Some(id.clone()));

    let _ = control.kill();
    let _ = control.wait();
    let _ = std::fs::remove_dir_all(&data);
}
