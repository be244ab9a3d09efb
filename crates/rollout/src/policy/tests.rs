use super::*;
use crate::plan::{InconclusiveAction, WaveTarget};

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Err(PolicyError::Invalid(list)) => list.iter().map(ToString::to_string).collect(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn a_written_policy_becomes_its_plan() {
    let plan = load(
        "waves:\n  - instances: 1\n    bake: 30s\n  - percent: 25\n    bake: 1m\n    pause: true\n  - percent: 100\n\
         gates:\n  min_requests: 50\n  error_ceiling: 0.1\n\
         on_inconclusive: { after: 2m, action: rollback }\n\
         probes:\n  - { name: health, path: /healthz, rate: 5 }\n\
         prometheus:\n  url: http://127.0.0.1:9090/\n  interval: 2s\n  queries:\n    - { name: down, query: 'sum(x)', comparison: '<', threshold: 0.5 }\n",
    )
    .expect("valid");
    assert_eq!(plan.waves.len(), 3);
    assert_eq!(plan.waves[0].target, WaveTarget::Instances(1));
    assert_eq!(plan.waves[0].bake_ms, 30_000);
    assert!(plan.waves[1].pause && !plan.waves[2].pause);
    assert_eq!(plan.waves[2].bake_ms, 0);
    assert_eq!(plan.gates.min_requests, 50);
    assert_eq!(plan.gates.ceiling, 0.1);
    assert_eq!(
        plan.gates.alpha, 0.01,
        "an omitted threshold keeps its default"
    );
    let o = plan.on_inconclusive.expect("on_inconclusive");
    assert_eq!(
        (o.after_ms, o.action),
        (120_000, InconclusiveAction::Rollback)
    );
    assert_eq!(plan.probes[0].method, "GET");
    assert_eq!(plan.probes[0].expect_status, 200);
    let p = plan.prometheus.expect("prometheus");
    assert_eq!(p.url, "http://127.0.0.1:9090");
    assert_eq!((p.interval_ms, p.deadline_ms), (2_000, 5_000));
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let found = problems(
        "waves:\n  - { instances: 1, percent: 5 }\n  - { percent: 50, bake: 3x }\n  - { percent: 20 }\n\
         gates: { alpha: 0.9 }\n\
         probes:\n  - { name: a, path: nope, method: BREW, expect_status: 999, rate: 0 }\n  - { name: a, path: / }\n\
         prometheus: { url: 'ftp://x', queries: [] }\n",
    );
    let expected = [
        "waves[0]: give `instances` or `percent`, not both",
        "waves[1].bake: invalid duration",
        "waves[2].percent: 20% is smaller than the wave before (50%)",
        "waves[2]: the last wave must cover every instance",
        "gates.alpha: 0.9 is out of range",
        "probes[0].method: \"BREW\" is not one of",
        "probes[0].path: \"nope\" is not a path",
        "probes[0].expect_status: 999 is not an HTTP status",
        "probes[0].rate: 0 per second",
        "probes[1].name: \"a\" is used twice",
        "prometheus.url: \"ftp://x\" is not an http(s) URL",
        "prometheus.queries: 0 queries",
    ];
    for e in expected {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn unknown_fields_and_bad_types_are_parse_errors_with_a_place() {
    for text in ["waves: []\nwaevs: 1\n", "waves:\n  - percent: ten\n"] {
        match load(text) {
            Err(PolicyError::Parse(m)) => assert!(m.contains("line"), "{m}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(load(""), Err(PolicyError::Parse(_))));
    let big = format!("waves: []\n#{}\n", "x".repeat(70_000));
    assert!(matches!(load(&big), Err(PolicyError::Parse(_))));
}

#[test]
fn a_plan_written_back_as_a_document_compiles_to_itself() {
    for mut plan in [Plan::standard(30_000), Plan::at_once(), Plan::short(1_000)] {
        let text = PolicyDocument::from_plan(&plan).to_yaml();
        let back = load(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        plan.source = String::new();
        assert_eq!(back, plan, "{text}");
    }
}

#[test]
fn the_schema_names_the_fields() {
    let schema = json_schema().to_string();
    for field in [
        "waves",
        "on_inconclusive",
        "probes",
        "prometheus",
        "on_no_data",
    ] {
        assert!(schema.contains(field), "{field}");
    }
}
