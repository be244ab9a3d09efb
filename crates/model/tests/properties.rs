//! Property tests: the parser never panics, and the canonical form is a fixed point.

use proptest::prelude::*;
use rampart_model::{Document, canonical_json, compile, diff, load, parse_document};

/// Durations within the accepted range (up to 1h).
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..5000).prop_map(|n| format!("{n}ms")),
        (1u32..3600).prop_map(|n| format!("{n}s")),
        (1u32..=60).prop_map(|n| format!("{n}m")),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}"
}

/// Valid documents: one listener, 1–3 upstreams, routes pointing at them.
fn document() -> impl Strategy<Value = String> {
    (
        prop::collection::btree_set(name(), 1..4),
        prop::collection::vec((duration(), 0u32..4, prop::bool::ANY), 1..6),
        1024u16..60000,
    )
        .prop_map(|(upstreams, routes, port)| {
            let ups: Vec<String> = upstreams.iter().cloned().collect();
            let mut doc = format!("listeners: [{{ name: l, address: \"127.0.0.1:{port}\" }}]\nupstreams:\n");
            for (i, u) in ups.iter().enumerate() {
                doc.push_str(&format!("  - {{ name: {u}, endpoints: [\"127.0.0.1:{}\"] }}\n", 9000 + i));
            }
            doc.push_str("routes:\n");
            for (i, (timeout, retries, exact)) in routes.iter().enumerate() {
                let m = if *exact { "path_exact" } else { "path_prefix" };
                doc.push_str(&format!(
                    "  - {{ name: r{i}, match: {{ {m}: /p{i} }}, upstream: {}, timeout: {timeout}, retries: {{ attempts: {retries} }} }}\n",
                    ups[i % ups.len()]
                ));
            }
            doc
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(text in "\\PC{0,400}") {
        let _ = load(&text);
    }

    #[test]
    fn parser_never_panics_on_yamlish(text in "[a-z_:\\[\\]{}, \\n\"0-9.-]{0,300}") {
        let _ = load(&text);
    }

    #[test]
    fn canonical_form_is_a_fixed_point(text in document()) {
        let config = load(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let canonical = canonical_json(config.document());
        let reparsed = compile(parse_document(&canonical).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reparsed.version(), config.version());
        prop_assert_eq!(canonical_json(reparsed.document()), canonical);
        prop_assert!(diff(config.document(), reparsed.document()).is_empty());
    }

    #[test]
    fn diff_is_empty_exactly_when_versions_match(a in document(), b in document()) {
        let (a, b): (Document, Document) = (parse_document(&a).expect("a"), parse_document(&b).expect("b"));
        let same = canonical_json(&a) == canonical_json(&b);
        prop_assert_eq!(diff(&a, &b).is_empty(), same);
    }
}
