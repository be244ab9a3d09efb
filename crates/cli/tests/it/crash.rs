//! The control plane killed with SIGKILL at random points during pushes: after a restart every
//! acknowledged version and its event are there, and every stored document still hashes to
//! its id (design §7, invariant 9).

use std::process::Command;
use std::time::{Duration, Instant};

use rampart_api::ApiClient;

use crate::common;
use common::{free_port, operator_token, start, wait_up};

fn document(i: usize) -> String {
    format!(
        "listeners: [{{ name: public, address: \"127.0.0.1:8080\" }}]\nupstreams: [{{ name: b, endpoints: [\"127.0.0.1:9000\"] }}]\nroutes: [{{ name: r, upstream: b, timeout: {}ms }}]\n",
        1000 + i
    )
}

#[tokio::test]
async fn sigkill_during_pushes_loses_nothing_committed() {
    let data = std::env::temp_dir().join(format!("rampart-crash-{}", std::process::id()));
    let _ = tokio::fs::remove_dir_all(&data).await;
    tokio::fs::create_dir_all(&data).await.expect("dir");
    let port = free_port();
    let mut acknowledged: Vec<rampart_api::VersionId> = Vec::new();
    let mut n = 0;
    for round in 0..5 {
        let mut child = start(&data, port);
        let client = ApiClient::new(
            &format!("http://127.0.0.1:{port}"),
            Some(operator_token(&data).await),
        );
        wait_up(&client).await;
        // Push as fast as possible; kill at a random moment.
        let kill_after = Duration::from_millis(50 + fastrand::u64(..400));
        let started = Instant::now();
        let pusher = {
            let client = client.clone();
            let first = n;
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in first..first + 10_000 {
                    match client.push(&document(i), &format!("push {i}")).await {
                        Ok(p) => acked.push(p.version.id),
                        Err(_) => break,
                    }
                }
                acked
            })
        };
        tokio::time::sleep(kill_after.saturating_sub(started.elapsed())).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let acked = pusher.await.expect("join");
        n += acked.len() + 1;
        assert!(
            !acked.is_empty() || round > 0,
            "no push was acknowledged before the kill"
        );
        acknowledged.extend(acked);
    }

    let mut child = start(&data, port);
    let client = ApiClient::new(
        &format!("http://127.0.0.1:{port}"),
        Some(operator_token(&data).await),
    );
    wait_up(&client).await;
    let stored = client.versions().await.expect("versions");
    let ids: std::collections::HashSet<&str> = stored.iter().map(|v| v.id.as_str()).collect();
    for id in &acknowledged {
        assert!(
            ids.contains(id.as_str()),
            "acknowledged version {id} was lost"
        );
    }
    for v in &stored {
        let doc = client.version(&v.id).await.expect("version").document;
        let config = rampart_model::load(&doc).expect("stored document parses");
        assert_eq!(
            config.version().as_str(),
            v.id,
            "stored document does not hash to its id"
        );
    }
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = client.events(after).await.expect("events");
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page);
    }
    // Counted, not collected into a set: a version with two creation events must fail here.
    let mut created: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in events.iter().filter(|e| e.kind == "version.created") {
        *created.entry(e.subject.as_str()).or_default() += 1;
    }
    assert_eq!(
        created.len(),
        stored.len(),
        "every stored version has its event, and no event names a version not stored"
    );
    for v in &stored {
        assert_eq!(
            created.get(v.id.as_str()).copied(),
            Some(1),
            "version {} has not exactly one creation event",
            v.id
        );
    }
    assert!(
        acknowledged.len() >= 5,
        "only {} pushes acknowledged across 5 runs",
        acknowledged.len()
    );
    eprintln!(
        "{} pushes acknowledged across 5 kills; {} versions stored; {} events",
        acknowledged.len(),
        stored.len(),
        events.len()
    );
    // `config diff` takes version ids (or unique prefixes) as well as files.
    let token = operator_token(&data).await;
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "config",
            "diff",
            acknowledged[0].short(),
            acknowledged[1].short(),
        ])
        .args([
            "--control",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            &token,
        ])
        .output()
        .expect("run diff");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("~ routes[r].timeout: \"1s\" -> \"1s1ms\""),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = tokio::fs::remove_dir_all(&data).await;
}
