//! `rampart token`: an approver creates a token (its secret printed once), lists and revokes
//! it; an operator can do none of it; a revoked token is refused.

use crate::common;
use common::{bootstrap_token, free_port, rampart, start, wait_up};

#[tokio::test]
async fn an_approver_creates_lists_and_revokes_tokens() {
    let data = std::env::temp_dir().join(format!("rampart-cli-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let port = free_port();
    let _control = start(&data, port);
    let approver = bootstrap_token(&data, "approver").await;
    let operator = bootstrap_token(&data, "operator").await;
    wait_up(&rampart_api::ApiClient::new(
        &format!("http://127.0.0.1:{port}"),
        Some(operator.clone()),
    ))
    .await;

    let create = [
        "token", "create", "--name", "ci", "--role", "agent", "--env", "testing",
    ];
    let (ok, _, err) = rampart(port, &operator, &create);
    assert!(
        !ok && err.contains("approver"),
        "an operator created a token: {err}"
    );
    let (ok, secret, err) = rampart(port, &approver, &create);
    assert!(ok, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("rp_") && secret.len() > 20, "{secret:?}");
    assert!(err.contains("shown this once"), "{err}");

    let (ok, list, err) = rampart(port, &approver, &["token", "list"]);
    assert!(ok, "{err}");
    let line = list.lines().find(|l| l.starts_with("ci ")).expect("listed");
    assert!(
        line.contains("agent") && line.contains("[testing]"),
        "{line}"
    );
    assert!(!list.contains(&secret), "a secret was listed");
    assert!(list.contains("bootstrap"), "{list}");

    let agent = rampart_api::ApiClient::new(&format!("http://127.0.0.1:{port}"), Some(secret));
    let register = rampart_api::RegisterRequest {
        instance: "ci-1".into(),
        environment: "testing".into(),
        zone: "z".into(),
        build: "test".into(),
    };
    agent
        .register(&register)
        .await
        .expect("the new token works");
    let (ok, _, err) = rampart(port, &approver, &["token", "revoke", "ci"]);
    assert!(ok, "{err}");
    let refused = agent.register(&register).await;
    assert!(
        matches!(
            refused,
            Err(rampart_api::ClientError::Api { status: 401, .. })
        ),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(&data);
}
