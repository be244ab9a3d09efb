//! The public status page: Statuspage v2 JSON shapes (field names, types, enums) for a page
//! with components, an active incident and maintenance windows; Atom and RSS feeds read by a
//! standard feed parser; subscribers who confirm, receive signed incident webhooks and email,
//! and unsubscribe; and the page rendered by headless Chromium, with and without JavaScript.
//!
//! (Long because each of those is a whole scenario against one page; they share the page
//! built at the top and the helpers at the bottom.)

use std::time::Duration;

use hmac::{Hmac, Mac};
use rampart_api::{
    ApiClient, ComponentSpec, Impact, IncidentChange, IncidentStatus, MaintenanceSpec, NewIncident,
    RegisterRequest, Report,
};
use rampart_testkit::receiver::Receiver;
use rampart_testkit::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::common;
use common::{post_form, temp, urlencode, wait_until};

async fn spawn(smtp: Option<String>) -> rampart_control::Running {
    rampart_control::spawn_with(
        &temp("status"),
        &["testing".into(), "production".into()],
        common::tokens(),
        "127.0.0.1:0".parse().expect("addr"),
        move |c| {
            // The subscribers here are receivers on loopback.
            let c = c
                .with_page_name("Acme API status")
                .with_private_webhooks(true);
            match &smtp {
                Some(url) => c.with_smtp(url).expect("an SMTP URL"),
                None => c,
            }
        },
    )
    .await
    .expect("control plane")
}

fn at(offset_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    now.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// Components, traffic, an active incident, a resolved one, a maintenance in progress and an
/// upcoming one.
async fn populate(op: &ApiClient, url: &str) {
    for (name, route) in [("Users API", "users"), ("Billing API", "billing")] {
        op.put_component(
            name,
            &ComponentSpec {
                description: format!("{name} endpoints"),
                routes: vec![route.into()],
                environment: None,
                slo: 99.9,
            },
        )
        .await
        .expect("component");
    }
    let agent = ApiClient::new(url, Some("agent".into()));
    let registered = agent
        .register(&RegisterRequest {
            instance: "p0".into(),
            environment: "production".into(),
            zone: "z1".into(),
            build: "test".into(),
        })
        .await
        .expect("register");
    let agent = agent.for_instance(&registered.credential);
    let mut report = Report {
        applied: None,
        result: None,
        requests: [0, 2000, 0, 0, 3],
        inflight: 0,
        shed: 0,
        auth_failures: 0,
        problems: vec![],
        latency: vec![],
        routes: Default::default(),
        restarts: 0,
        probes: Default::default(),
    };
    report.routes.insert("users".into(), [0, 1000, 0, 0, 3]);
    report.routes.insert("billing".into(), [0, 1000, 0, 0, 0]);
    agent.report("p0", &report).await.expect("report");

    let past = open(
        op,
        "Slow invoices",
        "Investigating slow invoice generation",
        Impact::Minor,
        Some("Billing API"),
    )
    .await;
    set_status(op, past.id, IncidentStatus::Resolved, "Fixed").await;
    let active = open(
        op,
        "Logins failing for some users",
        "We are looking into failed logins.",
        Impact::Major,
        Some("Users API"),
    )
    .await;
    set_status(
        op,
        active.id,
        IncidentStatus::Identified,
        "A session store node is failing.",
    )
    .await;
    op.schedule_maintenance(&MaintenanceSpec {
        title: "Billing database upgrade".into(),
        body: "Invoices may be delayed.".into(),
        components: vec!["Billing API".into()],
        scheduled_for: at(-60),
        scheduled_until: at(3600),
    })
    .await
    .expect("maintenance in progress");
    op.schedule_maintenance(&MaintenanceSpec {
        title: "Network maintenance".into(),
        body: String::new(),
        components: vec!["Users API".into()],
        scheduled_for: at(86_400),
        scheduled_until: at(90_000),
    })
    .await
    .expect("upcoming maintenance");
}

async fn get(url: &str) -> (u16, String) {
    let a = rampart_testkit::client::get(&rampart_testkit::client::http1(), url)
        .await
        .expect("get");
    (
        a.status.as_u16(),
        String::from_utf8_lossy(&a.body).into_owned(),
    )
}

async fn get_json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Checks `v` against a shape: "string", "integer", "boolean", "string|null", "array",
/// "object", "any", a list of allowed strings, or a nested object shape. Every field of the
/// shape must be present with that type.
fn check(path: &str, v: &Value, shape: &Value) {
    match shape {
        Value::String(t) => {
            let ok = match t.as_str() {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "boolean" => v.is_boolean(),
                "string|null" => v.is_string() || v.is_null(),
                "array|null" => v.is_array() || v.is_null(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                "any" => true,
                other => panic!("bad shape type {other}"),
            };
            assert!(ok, "{path}: expected {t}, got {v}");
        }
        Value::Array(allowed) => assert!(allowed.contains(v), "{path}: {v} not one of {allowed:?}"),
        Value::Object(fields) => {
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("{path}: expected an object, got {v}"));
            for (k, s) in fields {
                let field = obj
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {v}"));
                check(&format!("{path}.{k}"), field, s);
            }
        }
        _ => panic!("bad shape"),
    }
}

fn check_each(path: &str, list: &Value, shape: &Value) {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("{path}: expected an array"));
    for (i, item) in items.iter().enumerate() {
        check(&format!("{path}[{i}]"), item, shape);
    }
}

fn shapes() -> (Value, Value, Value, Value, Value) {
    let page = json!({ "id": "string", "name": "string", "url": "string", "time_zone": "string", "updated_at": "string" });
    let component = json!({
        "id": "string", "name": "string",
        "status": ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"],
        "created_at": "string", "updated_at": "string", "position": "integer",
        "description": "string|null", "showcase": "boolean", "start_date": "string|null",
        "group_id": "string|null", "page_id": "string", "group": "boolean", "only_show_if_degraded": "boolean"
    });
    let update = |statuses: Value| {
        json!({
            "id": "string", "status": statuses, "body": "string", "incident_id": "string",
            "created_at": "string", "updated_at": "string", "display_at": "string",
            "affected_components": "array|null", "deliver_notifications": "boolean",
            "custom_tweet": "string|null", "tweet_id": "string|null"
        })
    };
    let incident = json!({
        "id": "string", "name": "string",
        "status": ["investigating", "identified", "monitoring", "resolved", "postmortem"],
        "created_at": "string", "updated_at": "string", "monitoring_at": "string|null",
        "resolved_at": "string|null", "impact": ["none", "minor", "major", "critical"],
        "shortlink": "string", "started_at": "string", "page_id": "string",
        "incident_updates": "array", "components": "array"
    });
    let maintenance = json!({
        "id": "string", "name": "string",
        "status": ["scheduled", "in_progress", "verifying", "completed"],
        "created_at": "string", "updated_at": "string", "monitoring_at": "string|null",
        "resolved_at": "string|null", "impact": ["maintenance"], "shortlink": "string",
        "started_at": "string", "page_id": "string", "incident_updates": "array",
        "components": "array", "scheduled_for": "string", "scheduled_until": "string"
    });
    let _ = update(json!("string"));
    (
        page,
        component,
        incident,
        maintenance,
        update(json!([
            "investigating",
            "identified",
            "monitoring",
            "resolved",
            "postmortem",
            "scheduled",
            "in_progress",
            "verifying",
            "completed"
        ])),
    )
}

/// Runs Debian's Python with feedparser (installed by `scripts/install-test-deps.sh`).
fn feedparse(text: &str) -> Value {
    use std::io::Write;
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = std::process::Command::new(python)
        .args(["-c", "import sys, json, feedparser\nd = feedparser.parse(sys.stdin.read())\nprint(json.dumps({'bozo': int(d.bozo), 'error': str(d.get('bozo_exception', '')), 'version': d.version, 'title': d.feed.get('title'), 'entries': [{'title': e.get('title'), 'link': e.get('link'), 'id': e.get('id'), 'updated': e.get('updated') or e.get('published')} for e in d.entries]}))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "feedparser failed (run scripts/install-test-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("feedparser output")
}

#[tokio::test]
async fn statuspage_v2_json_and_feeds() {
    let control = spawn(None).await;
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    populate(&op, &url).await;
    let (page, component, incident, maintenance, update) = shapes();

    let summary = get_json(&format!("{url}/api/v2/summary.json")).await;
    check("summary.page", &summary["page"], &page);
    check_each("summary.components", &summary["components"], &component);
    check_each("summary.incidents", &summary["incidents"], &incident);
    check_each(
        "summary.scheduled_maintenances",
        &summary["scheduled_maintenances"],
        &maintenance,
    );
    check(
        "summary.status",
        &summary["status"],
        &json!({ "indicator": ["none", "minor", "major", "critical"], "description": "string" }),
    );
    assert_eq!(summary["page"]["name"], "Acme API status");
    assert_eq!(
        summary["status"]["indicator"], "major",
        "{}",
        summary["status"]
    );
    assert_eq!(summary["incidents"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        summary["scheduled_maintenances"].as_array().map(Vec::len),
        Some(2)
    );
    let billing = summary["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "Billing API"))
        .expect("billing");
    assert_eq!(billing["status"], "under_maintenance");
    let users = summary["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "Users API"))
        .expect("users");
    assert_eq!(users["status"], "partial_outage");
    for inc in summary["incidents"].as_array().into_iter().flatten() {
        check_each("incident_updates", &inc["incident_updates"], &update);
        check_each("incident.components", &inc["components"], &component);
    }

    let status = get_json(&format!("{url}/api/v2/status.json")).await;
    check("status.page", &status["page"], &page);
    assert_eq!(status["status"], summary["status"]);
    let components = get_json(&format!("{url}/api/v2/components.json")).await;
    check_each("components", &components["components"], &component);
    let all = get_json(&format!("{url}/api/v2/incidents.json")).await;
    check_each("incidents", &all["incidents"], &incident);
    assert_eq!(all["incidents"].as_array().map(Vec::len), Some(2));
    let unresolved = get_json(&format!("{url}/api/v2/incidents/unresolved.json")).await;
    assert_eq!(unresolved["incidents"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        unresolved["incidents"][0]["name"],
        "Logins failing for some users"
    );
    assert_eq!(
        unresolved["incidents"][0]["incident_updates"][0]["status"], "identified",
        "newest update first"
    );
    for (name, n) in [
        ("scheduled-maintenances.json", 2),
        ("scheduled-maintenances/upcoming.json", 1),
        ("scheduled-maintenances/active.json", 1),
    ] {
        let m = get_json(&format!("{url}/api/v2/{name}")).await;
        check("page", &m["page"], &page);
        check_each(name, &m["scheduled_maintenances"], &maintenance);
        assert_eq!(
            m["scheduled_maintenances"].as_array().map(Vec::len),
            Some(n),
            "{name}"
        );
    }
    let active = get_json(&format!("{url}/api/v2/scheduled-maintenances/active.json")).await;
    assert_eq!(active["scheduled_maintenances"][0]["status"], "in_progress");
    assert_eq!(get(&format!("{url}/api/v2/nope.json")).await.0, 404);

    // Bad maintenance windows are refused and store nothing.
    let before = op.maintenances().await.expect("list").len();
    let err = op
        .schedule_maintenance(&MaintenanceSpec {
            title: "backwards".into(),
            body: String::new(),
            components: vec!["Users API".into()],
            scheduled_for: at(100),
            scheduled_until: at(50),
        })
        .await
        .expect_err("ends before it starts");
    assert!(err.to_string().contains("scheduled_until"), "{err}");
    let err = op
        .schedule_maintenance(&MaintenanceSpec {
            title: "ghost".into(),
            body: String::new(),
            components: vec!["Ghost API".into()],
            scheduled_for: at(100),
            scheduled_until: at(200),
        })
        .await
        .expect_err("unknown component");
    assert!(
        err.to_string().contains("no component \"Ghost API\""),
        "{err}"
    );
    assert_eq!(op.maintenances().await.expect("list").len(), before);

    // Feeds, read by a standard feed parser.
    let (status, atom) = get(&format!("{url}/history.atom")).await;
    assert_eq!(status, 200);
    let feed = feedparse(&atom);
    assert_eq!(feed["bozo"], 0, "{feed}");
    assert_eq!(feed["version"], "atom10");
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(2), "{feed}");
    assert!(
        feed["entries"][0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Logins failing")),
        "{feed}"
    );
    assert!(
        feed["entries"][0]["link"]
            .as_str()
            .is_some_and(|l| l.starts_with(&url)),
        "{feed}"
    );
    let (_, rss) = get(&format!("{url}/history.rss")).await;
    let feed = feedparse(&rss);
    assert_eq!(feed["bozo"], 0, "{feed}");
    assert_eq!(feed["version"], "rss20");
    assert_eq!(feed["entries"].as_array().map(Vec::len), Some(2));
    control.kill().await;
}

#[tokio::test]
async fn subscribers_confirm_receive_signed_updates_and_unsubscribe() {
    let smtp = SmtpSink::start().await.expect("smtp");
    let hook = Receiver::start().await.expect("receiver");
    let control = spawn(Some(smtp.url())).await;
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    op.put_component(
        "Users API",
        &ComponentSpec {
            description: String::new(),
            routes: vec![],
            environment: None,
            slo: 99.9,
        },
    )
    .await
    .expect("component");

    // Bad subscriptions are refused on the page, and nothing is stored.
    let (status, body) = post_form(&format!("{url}/subscribe"), "webhook=ftp%3A%2F%2Fnope").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("not an http"), "{body}");
    assert!(op.subscribers().await.expect("subscribers").is_empty());

    // A webhook subscribes through the public form and confirms.
    let (status, body) = post_form(
        &format!("{url}/subscribe"),
        &format!("webhook={}", urlencode(&hook.url())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        wait_until(Duration::from_secs(5), async || !hook.received().is_empty()).await,
        "no confirmation"
    );
    let confirmation = hook.received()[0].body.clone();
    assert_eq!(confirmation["type"], "subscription.confirm");
    let secret = confirmation["signing_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let confirm_url = confirmation["confirm_url"]
        .as_str()
        .expect("confirm_url")
        .to_owned();
    let unsubscribe_url = confirmation["unsubscribe_url"]
        .as_str()
        .expect("unsubscribe_url")
        .to_owned();
    // Not confirmed yet: an incident notifies nobody.
    let first = open(&op, "Early", "x", Impact::Minor, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "an unconfirmed subscriber was notified"
    );
    set_status(&op, first.id, IncidentStatus::Resolved, "done").await;
    // Following the link only shows a form (a mail scanner fetching it confirms nothing).
    let (status, body) = get(&confirm_url).await;
    assert!(status == 200 && body.contains("<form"), "{body}");
    let subscribed = op.subscribers().await.expect("subscribers");
    assert!(subscribed.iter().all(|s| !s.confirmed), "{subscribed:?}");
    let token = confirm_url.split("token=").nth(1).expect("token");
    let (status, body) = post_form(
        &format!("{url}/subscribe/confirm"),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Subscription confirmed"));

    // An email subscriber gets a confirmation mail with its link.
    let (status, _) = post_form(&format!("{url}/subscribe"), "email=ops%40example.test").await;
    assert_eq!(status, 200);
    assert!(
        wait_until(Duration::from_secs(5), async || !smtp.mails().is_empty()).await,
        "no confirmation mail"
    );
    let mail = smtp.mails()[0].clone();
    assert!(
        mail.to.iter().any(|t| t.contains("ops@example.test")),
        "{mail:?}"
    );
    assert!(
        mail.data.contains("/subscribe/confirm?token="),
        "{}",
        mail.data
    );

    // Incident opened, updated, resolved: three signed Statuspage-shaped payloads.
    let inc = open(
        &op,
        "Logins failing",
        "Investigating",
        Impact::Major,
        Some("Users API"),
    )
    .await;
    set_status(&op, inc.id, IncidentStatus::Identified, "Found it").await;
    set_status(&op, inc.id, IncidentStatus::Resolved, "Fixed").await;
    assert!(
        wait_until(Duration::from_secs(10), async || hook.received().len() >= 4).await,
        "{:?}",
        op.outbox().await
    );
    let got: Vec<_> = hook.received().into_iter().skip(1).collect();
    assert_eq!(
        got.len(),
        3,
        "{:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for r in &got {
        assert_eq!(r.body["incident"]["name"], "Logins failing");
        assert_eq!(r.body["incident"]["id"], inc.id.to_string());
        assert!(
            r.body["meta"]["unsubscribe"]
                .as_str()
                .is_some_and(|u| u.contains("/unsubscribe?token="))
        );
        assert!(
            ["none", "minor", "major", "critical"].contains(
                &r.body["page"]["status_indicator"]
                    .as_str()
                    .unwrap_or_default()
            )
        );
        let ts = r.header("x-rampart-timestamp").expect("timestamp");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&r.raw);
        assert_eq!(
            r.header("x-rampart-signature"),
            Some(format!(
                "sha256={}",
                hex::encode(mac.finalize().into_bytes())
            ))
            .as_deref()
        );
    }
    let statuses: Vec<String> = got
        .iter()
        .map(|r| {
            r.body["incident"]["incident_updates"][0]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        statuses.last().is_some_and(|s| s == "resolved"),
        "{statuses:?}"
    );

    // Unsubscribe through the page's form: no more notifications.
    let token = unsubscribe_url.split("token=").nth(1).expect("token");
    let (status, body) = get(&unsubscribe_url).await;
    assert!(status == 200 && body.contains("<form"), "{body}");
    let (status, body) = post_form(&format!("{url}/unsubscribe"), &format!("token={token}")).await;
    assert_eq!(status, 200, "{body}");
    open(&op, "After", "x", Impact::Minor, None).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        hook.received().len(),
        4,
        "an unsubscribed webhook was notified"
    );
    control.kill().await;
}

#[tokio::test]
async fn the_page_renders_in_headless_chromium_with_and_without_javascript() {
    let control = spawn(None).await;
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    populate(&op, &url).await;
    let page = format!("{url}/");
    let dir = common::artifacts_dir();
    for (name, width, height, javascript) in [
        ("status-page.png", 1280, 900, true),
        ("status-page-no-js.png", 1280, 900, false),
        ("status-page-phone.png", 390, 800, true),
    ] {
        let what = format!(
            "{name} (javascript {})",
            if javascript { "on" } else { "off" }
        );
        let r = rampart_testkit::browser::render(&page, width, height, javascript)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let dom = &r.html;
        assert!(
            dom.contains("data-component=\"users-api\"")
                && dom.contains("data-component=\"billing-api\""),
            "{what}: components missing"
        );
        assert_eq!(
            dom.matches("class=\"bar\"").count(),
            2 * 90,
            "{what}: 90 uptime bars per component"
        );
        assert!(
            dom.contains("Active incidents") && dom.contains("Logins failing for some users"),
            "{what}: active incident missing"
        );
        assert!(
            dom.contains("Under maintenance") && dom.contains("Billing database upgrade"),
            "{what}: maintenance missing"
        );
        assert!(
            dom.contains("<label for=\"email\">"),
            "{what}: subscribe form missing"
        );
        assert!(
            !dom.contains("<script"),
            "{what}: the page must not need JavaScript"
        );
        assert!(
            r.png.len() > 10_000 && r.png.starts_with(b"\x89PNG"),
            "{what}: {} bytes",
            r.png.len()
        );
        let path = dir.join(name);
        std::fs::write(&path, &r.png).expect("write screenshot");
        println!("screenshot: {} ({} bytes)", path.display(), r.png.len());
    }
    control.kill().await;
}

/// A maintenance window suppresses its components' SLO alerts and nothing else: the same burn
/// fires for a component outside the window at once, and for the maintained one as soon as
/// the window is cancelled.
#[tokio::test]
async fn maintenance_suppresses_its_components_slo_alerts_only() {
    let control = rampart_control::spawn(
        &temp("maintenance-alerts"),
        &["production".into()],
        common::tokens(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("control plane");
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let agent = ApiClient::new(&control.url(), Some("agent".into()));
    for (name, route) in [("Billing API", "billing"), ("Users API", "users")] {
        op.put_component(
            name,
            &ComponentSpec {
                description: String::new(),
                routes: vec![route.into()],
                environment: None,
                slo: 99.9,
            },
        )
        .await
        .expect("component");
    }
    let window = op
        .schedule_maintenance(&MaintenanceSpec {
            title: "Billing database upgrade".into(),
            body: String::new(),
            components: vec!["Billing API".into()],
            scheduled_for: at(-60),
            scheduled_until: at(3600),
        })
        .await
        .expect("maintenance in progress");
    let registered = agent
        .register(&rampart_api::RegisterRequest {
            instance: "m0".into(),
            environment: "production".into(),
            zone: "z".into(),
            build: "test".into(),
        })
        .await
        .expect("register");
    let agent = agent.for_instance(&registered.credential);
    // Both components fail every request: a burn far over every tier's factor.
    let report = || rampart_api::Report {
        applied: None,
        result: None,
        requests: [0, 0, 0, 0, 200],
        inflight: 0,
        shed: 0,
        auth_failures: 0,
        problems: vec![],
        latency: vec![],
        routes: [
            ("billing".to_owned(), [0, 0, 0, 0, 100]),
            ("users".to_owned(), [0, 0, 0, 0, 100]),
        ]
        .into_iter()
        .collect(),
        restarts: 0,
        probes: Default::default(),
    };
    let slo_alerts = async |component: &str| -> usize {
        op.alerts(true)
            .await
            .expect("alerts")
            .iter()
            .filter(|a| a.key.starts_with(&format!("slo:{component}:")))
            .count()
    };
    let users_fired = wait_until(Duration::from_secs(10), async || {
        agent.report("m0", &report()).await.expect("report");
        slo_alerts("Users API").await > 0
    })
    .await;
    assert!(users_fired, "the burn outside the window must fire");
    // A few more evaluations with the same burn: still nothing for the maintained component.
    for _ in 0..3 {
        agent.report("m0", &report()).await.expect("report");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        slo_alerts("Billing API").await,
        0,
        "suppressed in maintenance"
    );

    op.cancel_maintenance(window.id).await.expect("cancel");
    let billing_fired = wait_until(Duration::from_secs(10), async || {
        agent.report("m0", &report()).await.expect("report");
        slo_alerts("Billing API").await > 0
    })
    .await;
    assert!(billing_fired, "the window is over: the burn pages");
    control.kill().await;
}

/// Opens an incident (on `component`, if one) through the API.
async fn open(
    op: &ApiClient,
    title: &str,
    body: &str,
    impact: Impact,
    component: Option<&str>,
) -> rampart_api::Incident {
    let new = NewIncident {
        title: title.into(),
        body: body.into(),
        impact,
        components: component.into_iter().map(str::to_owned).collect(),
        environment: None,
    };
    op.open_incident(&new).await.expect("incident")
}

/// Moves an incident to `status` with an update saying `body`.
async fn set_status(op: &ApiClient, id: i64, status: IncidentStatus, body: &str) {
    let change = IncidentChange {
        status: Some(status),
        body: Some(body.into()),
        ..Default::default()
    };
    op.update_incident(id, &change).await.expect("update");
}
