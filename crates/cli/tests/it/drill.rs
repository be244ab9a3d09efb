//! `rampart drill seed-2013` end to end (the short profile it always runs): every defence holds,
//! the share of failed requests is under 1 % and the time from the bad apply to full rollback
//! under 10 s, and the postmortem is written.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
#[allow(clippy::disallowed_methods)] // a synchronous test reading the file the child process wrote
fn the_seed_2013_drill_passes() {
    let dir = std::env::temp_dir().join(format!("rampart-drill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pm = dir.join("pm.md");
    let log = dir.join("drill.log");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["drill", "seed-2013", "--postmortem"])
        .arg(&pm)
        .arg("--log")
        .arg(&log)
        .env("RUST_LOG", "info")
        .output()
        .expect("run the drill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the drill failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the drill took {:?}",
        started.elapsed()
    );
    for shown in [
        "validation refused the push",
        "production refused it",
        "only the canary ever ran v2 (1 of 5",
        "the canary's auth routes failed fast",
        "gate failed:",
        "automatic rollback",
        "incident 1 opened",
        "paged once",
        "on the status page",
        "the incident resolved itself",
        "postmortem with all five sections",
        "configuration rollback succeeds",
        "every defence held",
    ] {
        assert!(stdout.contains(shown), "the drill did not show {shown:?}");
    }
    let number_after = |label: &str, unit: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?}"));
        let rest = &line[line.find(label).expect("label") + label.len()..];
        let end = rest
            .find(unit)
            .unwrap_or_else(|| panic!("no {unit:?} in {line:?}"));
        let text = rest[..end].trim();
        let number = text.rsplit([' ', '(']).next().unwrap_or(text);
        number
            .parse()
            .unwrap_or_else(|e| panic!("{number:?} in {line:?}: {e}"))
    };
    let rollback = number_after("from the bad apply to full rollback:", " s");
    assert!(rollback < 10.0, "rollback took {rollback} s");
    let share = number_after("failed requests:", " %");
    assert!(share < 1.0, "{share} % of requests failed");
    // The terminal carries the story alone; the components' logs went to the file the drill named.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(" INFO ") && !stderr.contains(" WARN "),
        "component logs reached the terminal:\n{stderr}"
    );
    assert!(stdout.contains(&format!("their logs: {}", log.display())));
    let logs = std::fs::read_to_string(&log).expect("the log file");
    assert!(
        logs.contains(" INFO "),
        "no component logs in {}",
        log.display()
    );
    let md = std::fs::read_to_string(&pm).expect("postmortem written");
    assert!(md.contains("## Root Cause") && md.contains("auth.blackhole.test"));
    assert!(pm.with_extension("html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The drill with its control plane as three replica processes on PostgreSQL, the leading one
/// killed with SIGKILL while the bad version runs on the canary: another replica takes over,
/// and every defence still holds — the release rolls back by itself, the incident pages once,
/// the postmortem is written, under 1 % of requests fail.
#[test]
fn the_seed_2013_drill_passes_with_three_replicas_and_the_leader_killed() {
    let dir = std::env::temp_dir().join(format!("rampart-drill-ha-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["drill", "seed-2013", "--replicas", "--postmortem"])
        .arg(dir.join("pm.md"))
        .arg("--log")
        .arg(dir.join("drill.log"))
        .env("RUST_LOG", "info")
        .output()
        .expect("run the drill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the drill failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shown in [
        "three control-plane replicas on PostgreSQL",
        "was killed (SIGKILL) mid-release",
        "only the canary ever ran v2 (1 of 5",
        "automatic rollback: every production gateway is back on v1",
        "paged once",
        "postmortem with all five sections",
        "every defence held",
    ] {
        assert!(stdout.contains(shown), "the drill did not show {shown:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
