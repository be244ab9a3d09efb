//! `rampart policy`: an environment's policy shown (the default written out until one is
//! stored), a bad file refused with its paths before anything is sent, a good one diffed, set,
//! shown with who set it, and listed in the history with what it changed; the README's example
//! policy validates.

use crate::common;
use common::{free_port, operator_token, rampart, start, wait_up};

const POLICY: &str = "waves:\n  - instances: 1\n    bake: 30s\n  - percent: 100\n    bake: 1m\n    pause: true\ngates:\n  min_requests: 50\n";

#[tokio::test]
async fn policies_are_shown_checked_diffed_set_and_listed() {
    let data = std::env::temp_dir().join(format!("rampart-cli-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("dir");
    let port = free_port();
    let _control = start(&data, port);
    let op = operator_token(&data).await;
    wait_up(&rampart_api::ApiClient::new(
        &format!("http://127.0.0.1:{port}"),
        Some(op.clone()),
    ))
    .await;

    let (ok, shown, err) = rampart(port, &op, &["policy", "show", "production"]);
    assert!(ok, "{err}");
    assert!(
        shown.starts_with("# production follows the default policy"),
        "{shown}"
    );
    assert!(shown.contains("waves:"), "{shown}");
    let (ok, schema, _) = rampart(port, &op, &["policy", "schema"]);
    assert!(ok && schema.contains("on_inconclusive"), "{schema}");

    let bad = data.join("bad.yaml");
    std::fs::write(
        &bad,
        "waves:\n  - percent: 0\n  - { instances: 1, percent: 5 }\n",
    )
    .expect("write");
    let (ok, _, err) = rampart(
        port,
        &op,
        &[
            "policy",
            "set",
            "production",
            bad.to_str().unwrap_or_default(),
        ],
    );
    assert!(!ok, "a bad policy was accepted");
    assert!(err.contains("waves[0].percent: 0 is not in 1–100"), "{err}");
    assert!(
        err.contains("waves[1]: give `instances` or `percent`, not both"),
        "{err}"
    );
    let (_, history, _) = rampart(port, &op, &["policy", "history", "production"]);
    assert!(history.contains("no stored policy"), "{history}");

    let good = data.join("good.yaml");
    std::fs::write(&good, POLICY).expect("write");
    let good = good.to_str().unwrap_or_default();
    let (ok, diff, err) = rampart(port, &op, &["policy", "diff", "production", good]);
    assert!(ok, "{err}");
    assert!(diff.contains("~ gates.min_requests: 200 -> 50"), "{diff}");
    let (ok, set, err) = rampart(port, &op, &["policy", "set", "production", good]);
    assert!(ok, "{err}");
    assert!(set.contains("stored production policy r1"), "{set}");
    let (ok, shown, _) = rampart(port, &op, &["policy", "show", "production"]);
    assert!(
        ok && shown.starts_with("# production policy r1, set by "),
        "{shown}"
    );
    assert!(shown.contains(POLICY), "{shown}");
    let (_, diff, _) = rampart(port, &op, &["policy", "diff", "production", good]);
    assert_eq!(diff.trim(), "no changes");
    let (ok, history, _) = rampart(port, &op, &["policy", "history", "production"]);
    assert!(ok && history.starts_with("r1"), "{history}");
    let _ = std::fs::remove_dir_all(&data);
}

/// The policy README.md shows is a valid one.
#[test]
fn the_readme_policy_validates() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Rollout policies")
        .nth(1)
        .expect("the README has a rollout-policies section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a YAML block");
    let file =
        std::env::temp_dir().join(format!("rampart-readme-policy-{}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["policy", "validate"])
        .arg(&file)
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&file);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said.trim(), "valid: 3 wave(s)");
}
