//! Validation as a table: each broken document and the exact errors it must produce.

use rampart_model::{LoadError, compile, diff, load, parse_document};

const BASE: &str = r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: r, upstream: users }]
"#;

fn errors_of(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => vec![],
        Err(LoadError::Invalid(e)) => e.0.iter().map(ToString::to_string).collect(),
        Err(LoadError::Parse(e)) => vec![format!("parse: {e}")],
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(errors_of(BASE), Vec::<String>::new());
}

#[test]
fn broken_configs_get_exact_errors() {
    let table: &[(&str, &[&str])] = &[
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: a, upstream: users }, { name: b, match: { path_prefix: /x }, upstream: users },
         { name: c, match: { path_prefix: /y }, upstream: users }, { name: d, match: { path_prefix: /z }, upstream: userz }]
"#,
            &[r#"routes[3].upstream: no upstream named "userz" (did you mean "users"?)"#],
        ),
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080", trusted_proxies: ["10.0.0.0/8", "10.1.2.3", "10.0.0.0/33", "proxy.internal"] }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"], health_check: { path: /healthz, host: "a b/c" } }]
routes:
  - { name: a, match: { path_prefix: /v1/../admin }, upstream: users }
  - { name: b, match: { path_exact: "/v1//x" }, upstream: users }
  - { name: c, match: { path_prefix: "/%2e%2e" }, upstream: users }
limits: { header_timeout: 0s, idle_timeout: 2h, park_after: 0ms, send_timeout: 30, body_timeout: 5s }
"#,
            &[
                r#"listeners[0].trusted_proxies[2]: "10.0.0.0/33" is not a CIDR block ("10.0.0.0/8") or an IP address"#,
                r#"listeners[0].trusted_proxies[3]: "proxy.internal" is not a CIDR block ("10.0.0.0/8") or an IP address"#,
                r#"upstreams[0].health_check.host: "a b/c" is not a host (name or name:port)"#,
                r#"routes[0].match.path_prefix: "/v1/../admin" is not in normal form; requests are routed on normalized paths: write "/admin""#,
                r#"routes[1].match.path_exact: "/v1//x" is not in normal form; requests are routed on normalized paths: write "/v1/x""#,
                r#"routes[2].match.path_prefix: "/%2e%2e": the path climbs above the root with '..'"#,
                r#"limits.header_timeout: must be greater than zero"#,
                r#"limits.idle_timeout: 2h is longer than the maximum of 1h"#,
                r#"limits.park_after: must be greater than zero"#,
                r#"limits.send_timeout: invalid duration "30": missing unit after 30 (units: ms, s, m, h)"#,
            ],
        ),
        (
            "listeners: []\nupstreams: []\nroutes: []\n",
            &["listeners: at least one listener is required"],
        ),
        (
            r#"
listeners: [{ name: public, address: "localhost:8080" }, { name: public, address: "127.0.0.1:80" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: r, upstream: users }]
"#,
            &[
                r#"listeners[1].name: duplicate name "public" (also listeners[0])"#,
                r#"listeners[0].address: invalid socket address "localhost:8080": expected IP:PORT, e.g. "127.0.0.1:8080" or "[::1]:8080""#,
            ],
        ),
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000", "bad host:80", "h.internal:0", "::1:80", "127.0.0.1:9000"], connect_timeout: 10 }]
routes: [{ name: r, upstream: users, timeout: 0s }]
"#,
            &[
                r#"upstreams[0].endpoints[1]: invalid endpoint "bad host:80": "bad host" is not an IP address or DNS name"#,
                r#"upstreams[0].endpoints[2]: invalid endpoint "h.internal:0": port "0" is not a number from 1 to 65535"#,
                r#"upstreams[0].endpoints[3]: invalid endpoint "::1:80": write IPv6 addresses in brackets, e.g. "[::1]:8000""#,
                r#"upstreams[0].endpoints[4]: duplicate endpoint "127.0.0.1:9000""#,
                r#"upstreams[0].connect_timeout: invalid duration "10": missing unit after 10 (units: ms, s, m, h)"#,
                r#"routes[0].timeout: must be greater than zero"#,
            ],
        ),
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
auth_providers:
  - { name: main, type: introspection, endpoint: "ftp://auth/introspect" }
  - { name: j, type: jwt, jwks_url: "http://auth.internal/jwks", algorithms: [none] }
  - { name: k, type: api_key, header: "x api key", keys_sha256: ["abc"] }
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: r, upstream: users, auth: mian }]
"#,
            &[
                r#"auth_providers[0].endpoint: invalid URL "ftp://auth/introspect": scheme must be http or https"#,
                r#"auth_providers[1].algorithms[0]: unsupported algorithm "none" (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"#,
                r#"auth_providers[2].header: "x api key" is not a valid header name"#,
                r#"auth_providers[2].keys_sha256[0]: not a SHA-256 hash: expected 64 hex characters"#,
                r#"routes[0].auth: no auth provider named "mian" (did you mean "main"?)"#,
            ],
        ),
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"], health_check: { path: healthz, unhealthy_after: 0 } }]
routes:
  - { name: r, match: { path_prefix: /a, path_exact: /b, methods: [get, "GE T"] }, upstream: users, retries: { attempts: 11, budget_percent: 101 } }
  - { name: s, match: { path_prefix: v1, host: "api.example.com:443" }, upstream: users }
  - { name: t, match: { path_prefix: v1, host: "api.example.com:443" }, upstream: users }
limits: { max_header_bytes: 100 }
"#,
            &[
                r#"upstreams[0].health_check.path: "healthz" must start with '/'"#,
                r#"upstreams[0].health_check.unhealthy_after: 0 is out of range (1 to 100)"#,
                r#"routes[0].match: path_prefix and path_exact are exclusive; use one"#,
                r#"routes[0].match.methods[0]: write methods in upper case: "GET""#,
                r#"routes[0].match.methods[1]: "GE T" is not an HTTP method"#,
                r#"routes[0].retries.attempts: 11 is out of range (0 to 10)"#,
                r#"routes[0].retries.budget_percent: 101 is out of range (0 to 100)"#,
                r#"routes[1].match.host: "api.example.com:443" is not a host name (without port) or "*.domain" wildcard"#,
                r#"routes[1].match.path_prefix: "v1" must start with '/'"#,
                r#"routes[2].match: same match as routes[1] ("s"); this route could never be chosen"#,
                r#"routes[2].match.host: "api.example.com:443" is not a host name (without port) or "*.domain" wildcard"#,
                r#"routes[2].match.path_prefix: "v1" must start with '/'"#,
                r#"limits.max_header_bytes: 100 is out of range (8192 to 16777216)"#,
            ],
        ),
        (
            r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
admin: { address: "127.0.0.1:8080" }
resolver: { nameservers: ["10.0.0.1", "dns:53"], attempts: 0, timeout: 5x }
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: r, upstream: users }]
"#,
            &[
                r#"admin.address: 127.0.0.1:8080 is also the address of listener "public""#,
                r#"resolver.nameservers[1]: invalid socket address "dns:53": expected IP:PORT, e.g. "127.0.0.1:8080" or "[::1]:8080""#,
                r#"resolver.timeout: invalid duration "5x": unknown unit "x" (units: ms, s, m, h)"#,
                r#"resolver.attempts: 0 is out of range (1 to 10)"#,
            ],
        ),
    ];
    for (doc, expected) in table {
        let got = errors_of(doc);
        assert_eq!(
            got,
            expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "document:\n{doc}"
        );
    }
}

#[test]
fn unknown_fields_and_bad_types_are_parse_errors_with_location() {
    let cases = [
        (
            BASE.replace("routes: [{ name: r,", "routes: [{ name: r, timout: 2s,"),
            "timout",
        ),
        (
            BASE.replace("upstreams: [{", "upstreams: [{ max_concurrency: lots,"),
            "line",
        ),
        (
            format!("{BASE}\nauth_providers: [{{ name: x, type: ldap }}]\n"),
            "ldap",
        ),
        ("{\"listeners\": [}".to_string(), "line 1 column"),
    ];
    for (doc, needle) in cases {
        match load(&doc) {
            Err(LoadError::Parse(msg)) => {
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
            }
            other => panic!("expected a parse error mentioning {needle:?}, got {other:?}"),
        }
    }
}

#[test]
#[allow(clippy::disallowed_methods)] // a synchronous test, no runtime
fn every_example_config_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "json")
        ) {
            let text = std::fs::read_to_string(&path).expect("read example");
            if let Err(e) = load(&text) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected example configs in {dir}");
}

#[test]
fn version_id_is_independent_of_spelling() {
    let yaml = load(BASE).expect("yaml");
    let json = load(
        r#"{"routes":[{"upstream":"users","name":"r"}],
            "upstreams":[{"endpoints":["127.0.0.1:9000"],"name":"users"}],
            "listeners":[{"address":"127.0.0.1:8080","name":"public"}]}"#,
    )
    .expect("json");
    assert_eq!(yaml.version(), json.version());
    let a =
        load(&BASE.replace("upstream: users }", "upstream: users, timeout: 1500ms }")).expect("a");
    let b =
        load(&BASE.replace("upstream: users }", "upstream: users, timeout: 1s500ms }")).expect("b");
    assert_eq!(
        a.version(),
        b.version(),
        "equal durations are the same version"
    );
    assert_ne!(
        yaml.version(),
        a.version(),
        "a changed timeout is a new version"
    );
}

#[test]
fn diff_matches_named_items() {
    let old = parse_document(BASE).expect("old");
    let new = parse_document(
        &BASE
            .replace(
                "routes: [{ name: r, upstream: users }]",
                "routes: [{ name: s, upstream: users }, { name: r, upstream: users, timeout: 2s }]",
            )
            .replace(
                "[\"127.0.0.1:9000\"]",
                "[\"127.0.0.1:9000\", \"127.0.0.1:9001\"]",
            ),
    )
    .expect("new");
    let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            r#"+ routes[r].timeout: "2s""#.to_string(),
            r#"+ routes[s]: {"name":"s","upstream":"users"}"#.to_string(),
            r#"~ upstreams[users].endpoints: ["127.0.0.1:9000"] -> ["127.0.0.1:9000","127.0.0.1:9001"]"#.to_string(),
        ]
    );
    assert!(diff(&old, &old).is_empty());
}

#[test]
fn override_addresses_keeps_version() {
    let mut config = compile(parse_document(BASE).expect("doc")).expect("config");
    let version = config.version().clone();
    let addr = "127.0.0.1:18080".parse().expect("addr");
    config
        .override_addresses(&[("public".into(), addr)], None)
        .expect("override");
    assert_eq!(config.listeners[0].address, addr);
    assert_eq!(config.version(), &version);
    let err = config
        .override_addresses(&[("private".into(), addr)], None)
        .unwrap_err();
    assert_eq!(
        err,
        r#"--listen private=127.0.0.1:18080: no listener named "private""#
    );
}

#[test]
fn schema_describes_the_document() {
    let schema = rampart_model::json_schema();
    let text = schema.to_string();
    for needle in [
        "listeners",
        "auth_providers",
        "introspection",
        "round_robin",
        "ms|s|m|h",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}

#[test]
fn high_risk_sections_are_named() {
    let base = parse_document(BASE).expect("base");
    let first = rampart_model::high_risk(&diff(&rampart_model::Document::default(), &base));
    assert_eq!(first, vec!["listeners"]);
    let timeout_only =
        parse_document(&BASE.replace("upstream: users }", "upstream: users, timeout: 3s }"))
            .expect("doc");
    assert!(rampart_model::high_risk(&diff(&base, &timeout_only)).is_empty());
    let limits = parse_document(&format!("{BASE}limits: {{ max_inflight: 10 }}\n")).expect("doc");
    assert_eq!(
        rampart_model::high_risk(&diff(&base, &limits)),
        vec!["limits"]
    );
}

#[test]
fn access_log_rate_limit_and_cors_errors_carry_their_paths() {
    let doc = r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
access_log: { path: "", format: clf, fields: [status, colour, status], buffer: 0 }
redis: { address: "redis.internal", timeout: 0s, key_prefix: "a b" }
auth_providers: [{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["%KEY%"] }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes:
  - name: a
    upstream: users
    rate_limit: { key: "client ip", rate: "100/d", burst: 0, on_unavailable: deny }
    cors: { origins: [], credentials: true }
  - name: b
    match: { path_prefix: /b }
    upstream: users
    rate_limit: { key: auth_subject, rate: "0/s" }
    cors: { origins: ["*", "app.example.com", "https://x.*.example.com", "ftp://a"], credentials: true, methods: [get], headers: ["bad header"] }
  - name: c
    match: { path_prefix: /c }
    upstream: users
    auth: keys
    rate_limit: { key: api_key, rate: "5/m", global: true }
    cors: { origins: ["https://*.example.com"], max_age: 2h }
"#;
    let doc = doc.replace("%KEY%", &"a".repeat(64));
    assert_eq!(
        errors_of(&doc),
        [
            r#"routes[0].rate_limit.key: unknown key "client ip": use client_ip, auth_subject, api_key or header:NAME"#,
            r#"routes[0].rate_limit.rate: invalid rate "100/d": expected COUNT/UNIT with unit s, m or h, e.g. "100/s""#,
            r#"routes[0].rate_limit.burst: 0 is out of range (1 to 1000000)"#,
            r#"routes[0].rate_limit.on_unavailable: only a global limit can be unavailable (set `global: true`)"#,
            r#"routes[0].cors.origins: empty: name at least one origin, or "*""#,
            r#"routes[1].rate_limit.key: auth_subject needs an auth provider on the route (set `auth`)"#,
            r#"routes[1].rate_limit.rate: invalid rate "0/s": the count must be from 1 to 1000000"#,
            r#"routes[1].cors.origins[1]: invalid origin "app.example.com": expected SCHEME://HOST[:PORT], e.g. "https://app.example.com""#,
            r#"routes[1].cors.origins[2]: invalid origin "https://x.*.example.com": a wildcard may only open the host: "https://*.example.com""#,
            r#"routes[1].cors.origins[3]: invalid origin "ftp://a": the scheme must be http or https"#,
            r#"routes[1].cors.credentials: browsers refuse credentials with origin "*": list the origins"#,
            r#"routes[1].cors.methods[0]: "get" is not an HTTP method in upper case"#,
            r#"routes[1].cors.headers[0]: "bad header" is not a valid header name"#,
            r#"routes[2].cors.max_age: 2h is longer than the maximum of 1h"#,
            r#"access_log.path: empty: name a file, or "stdout""#,
            r#"access_log.fields: the clf format has fixed fields; choose fields with format json"#,
            r#"access_log.fields[1]: unknown field "colour"; known: time, request_id, trace_id, listener, route, upstream, endpoint, method, path, status, bytes_in, bytes_out, duration_headers_ms, duration_ms, auth_subject, client, reason"#,
            r#"access_log.fields[2]: "status" is listed twice"#,
            r#"access_log.buffer: 0 is out of range (1 to 1048576)"#,
            r#"redis.address: invalid endpoint "redis.internal": expected HOST:PORT"#,
            r#"redis.timeout: must be greater than zero"#,
            r#"redis.key_prefix: use 1 to 64 printable characters without spaces"#,
        ]
    );
    // Without `redis`, a global limit has nothing to share through.
    let no_redis = r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: a, upstream: users, rate_limit: { key: "header:x-tenant", rate: "10/s", global: true } }]
"#;
    assert_eq!(
        errors_of(no_redis),
        [
            r#"routes[0].rate_limit.global: a global limit shares its counters through Redis: set the top-level `redis`"#
        ]
    );
    let good = rampart_model::load(
        r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
access_log: { path: stdout }
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: a, upstream: users, rate_limit: { key: client_ip, rate: "600/m" }, cors: { origins: ["https://*.example.com"] } }]
"#,
    )
    .expect("valid");
    let rl = good.routes[0].rate_limit.as_ref().expect("limit");
    assert_eq!((rl.count, rl.burst), (600, 600));
    assert_eq!(rl.interval(), std::time::Duration::from_millis(100));
    let cors = good.routes[0].cors.as_ref().expect("cors");
    assert!(cors.origins[0].matches("https://a.example.com"));
    assert!(cors.origins[0].matches("https://a.b.example.com"));
    assert!(!cors.origins[0].matches("https://example.com"));
    assert!(!cors.origins[0].matches("http://a.example.com"));
    assert!(!cors.origins[0].matches("https://a.example.com.evil.com"));
    assert!(!cors.origins[0].matches("https://evil.com/.example.com"));
    let schema = rampart_model::json_schema().to_string();
    for needle in [
        "access_log",
        "rate_limit",
        "on_unavailable",
        "cors",
        "expose_headers",
        "redis",
    ] {
        assert!(schema.contains(needle), "schema lacks {needle}");
    }
}

#[test]
fn upstream_protocols_tls_and_grpc_health_checks_are_checked() {
    let doc = r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams:
  - { name: a, endpoints: ["127.0.0.1:9000"], health_check: { grpc_service: "" } }
  - { name: b, endpoints: ["127.0.0.1:9001"], protocol: h2, health_check: { path: /healthz, grpc_service: x } }
  - { name: c, endpoints: ["127.0.0.1:9002"], protocol: h2, health_check: { interval: 1s } }
  - { name: d, endpoints: ["127.0.0.1:9003"], protocol: auto, tls: { server_name: "not a name", ca_file: "" } }
routes:
  - { name: a, upstream: a }
  - { name: b, match: { path_prefix: /b }, upstream: b }
  - { name: c, match: { path_prefix: /c }, upstream: c }
  - { name: d, match: { path_prefix: /d }, upstream: d }
"#;
    assert_eq!(
        errors_of(doc),
        [
            r#"upstreams[0].health_check.grpc_service: gRPC health checks need HTTP/2: set `protocol: h2` (or `auto` with `tls`)"#,
            r#"upstreams[1].health_check: path and grpc_service are exclusive; use one"#,
            r#"upstreams[2].health_check: name a path to GET, or a grpc_service to check"#,
            r#"upstreams[3].tls.server_name: "not a name" is not a DNS name or an IP address"#,
            r#"upstreams[3].tls.ca_file: empty: name a PEM file, or omit it"#,
        ]
    );
    let ok = rampart_model::load(
        r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
upstreams:
  - { name: g, endpoints: ["127.0.0.1:9000"], protocol: h2, health_check: { grpc_service: "" } }
  - { name: t, endpoints: ["api.internal:443"], protocol: auto, tls: { server_name: api.internal } }
  - { name: p, endpoints: ["127.0.0.1:9001"], protocol: auto }
routes:
  - { name: g, upstream: g }
  - { name: t, match: { path_prefix: /t }, upstream: t }
  - { name: p, match: { path_prefix: /p }, upstream: p }
"#,
    )
    .expect("valid");
    assert_eq!(
        ok.upstreams[0].protocol,
        rampart_model::UpstreamProtocol::H2
    );
    assert_eq!(
        ok.warnings,
        [
            "upstreams[2].protocol: auto without tls speaks HTTP/1.1 (the protocol is chosen by ALPN, in the TLS handshake)"
        ]
    );
}

#[test]
fn tracing_is_checked() {
    let doc = r#"
listeners: [{ name: public, address: "127.0.0.1:8080" }]
tracing: { otlp_endpoint: "udp://collector:4318", sample: 1.5, service_name: "", timeout: 0s, buffer: 0 }
upstreams: [{ name: users, endpoints: ["127.0.0.1:9000"] }]
routes: [{ name: r, upstream: users }]
"#;
    assert_eq!(
        errors_of(doc),
        [
            r#"tracing.otlp_endpoint: invalid URL "udp://collector:4318": scheme must be http or https"#,
            r#"tracing.sample: 1.5 is not a share from 0 to 1"#,
            r#"tracing.service_name: use 1 to 128 characters"#,
            r#"tracing.timeout: must be greater than zero"#,
            r#"tracing.buffer: 0 is out of range (1 to 1048576)"#,
        ]
    );
    let ok = rampart_model::load(&doc.replace(
        r#"tracing: { otlp_endpoint: "udp://collector:4318", sample: 1.5, service_name: "", timeout: 0s, buffer: 0 }"#,
        r#"tracing: { otlp_endpoint: "http://collector:4318/v1/traces" }"#,
    ))
    .expect("valid");
    let t = ok.tracing.expect("tracing");
    assert_eq!(
        (t.sample, t.service_name.as_str(), t.buffer),
        (0.01, "rampart", 4096)
    );
}
