//! `rampart component|incident|postmortem` against a real control plane: an incident opened,
//! updated and resolved by hand, with an action item, and its postmortem written to a file.
//! Bad input is refused with a message and changes nothing.

use crate::common;
use common::{free_port, operator_token, rampart, start, wait_up};

#[tokio::test]
async fn an_incident_by_hand_from_open_to_postmortem() {
    let data = std::env::temp_dir().join(format!("rampart-cli-incident-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let port = free_port();
    let mut control = start(&data, port);
    let token = operator_token(&data).await;
    wait_up(&rampart_api::ApiClient::new(
        &format!("http://127.0.0.1:{port}"),
        Some(token.clone()),
    ))
    .await;

    let ok = |args: &[&str]| {
        let (success, out, err) = rampart(port, &token, args);
        assert!(success, "rampart {args:?} failed: {err}");
        out
    };
    ok(&[
        "component",
        "set",
        "Users API",
        "--route",
        "users",
        "--slo",
        "99.9",
    ]);
    let out = ok(&[
        "incident",
        "open",
        "Logins fail for some users",
        "--component",
        "Users API",
        "--impact",
        "major",
        "--message",
        "Looking into it",
    ]);
    assert!(
        out.contains("incident 1") && out.contains("investigating"),
        "{out}"
    );
    let (success, _, err) = rampart(
        port,
        &token,
        &["incident", "open", "x", "--component", "Nope"],
    );
    assert!(!success && err.contains("no component \"Nope\""), "{err}");
    let (success, _, err) = rampart(
        port,
        &token,
        &["incident", "update", "1", "--status", "fixed"],
    );
    assert!(!success && err.contains("expected investigating"), "{err}");
    let (success, _, err) = rampart(port, &token, &["rollout", "picture", "99"]);
    assert!(!success && err.contains("no release 99"), "{err}");

    ok(&[
        "incident",
        "update",
        "1",
        "--status",
        "identified",
        "--message",
        "A bad session cache node",
    ]);
    ok(&[
        "incident",
        "action",
        "1",
        "--title",
        "Alert on cache node errors",
        "--owner",
        "olivia",
    ]);
    ok(&[
        "incident",
        "update",
        "1",
        "--summary",
        "Logins failed for 4 minutes.",
    ]);
    let out = ok(&["component", "list"]);
    assert!(
        out.contains("Users API") && out.contains("partial_outage"),
        "{out}"
    );
    let out = ok(&["incident", "resolve", "1", "--message", "Node replaced"]);
    assert!(out.contains("resolved"), "{out}");
    let (success, _, err) = rampart(
        port,
        &token,
        &["incident", "update", "1", "--status", "monitoring"],
    );
    assert!(!success && err.contains("is resolved"), "{err}");
    let out = ok(&["component", "list"]);
    assert!(out.contains("operational"), "{out}");

    let file = data.join("pm.md");
    ok(&["postmortem", "1", "--out", file.to_str().expect("path")]);
    let md = tokio::fs::read_to_string(&file)
        .await
        .expect("postmortem file");
    for section in [
        "## Issue Summary",
        "## Timeline",
        "## Root Cause",
        "## Resolution and recovery",
        "## Corrective and preventive measures",
    ] {
        assert!(md.contains(section), "no {section} in\n{md}");
    }
    assert!(
        md.contains("Alert on cache node errors") && md.contains("Logins failed for 4 minutes.")
    );
    assert!(
        md.contains("incident identified: A bad session cache node"),
        "{md}"
    );
    let out = ok(&["incident", "list"]);
    assert!(out.contains("#1") && out.contains("resolved"), "{out}");
    let _ = control.kill();
    let _ = control.wait();
    let _ = std::fs::remove_dir_all(&data);
}
