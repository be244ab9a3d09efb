//! What every backend must do, stated once through the seam (`Store`) and run against each
//! backend `backends()` opens. Each test opens fresh, empty stores of its own.

use rampart_api::{
    ChannelKind, ChannelSpec, Impact, IncidentStatus, MaintenanceSpec, RestartStatus, Severity,
    SubscriberKind,
};
use serde_json::json;

use super::{IncidentSeed, NewAlert, NewEvent, Store};

/// A fresh store per backend, with the environments `testing` and `production`: SQLite in a
/// scratch folder, and PostgreSQL on a server of the test's own (a real one, Debian's package).
/// Every test below runs against each.
pub(super) async fn backends(test: &str) -> Vec<(&'static str, Store, Scratch)> {
    let envs = ["testing".to_owned(), "production".to_owned()];
    let dir = Scratch::dir(test).await;
    let sqlite = Store::open(&dir).await.expect("a SQLite store");
    sqlite
        .ensure_environments(&envs)
        .await
        .expect("environments");
    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server (scripts/install-test-deps.sh installs it)");
    let postgres = Store::connect(&server.url())
        .await
        .expect("a PostgreSQL store");
    postgres
        .ensure_environments(&envs)
        .await
        .expect("environments");
    vec![
        ("sqlite", sqlite, Scratch::Dir(dir)),
        ("postgres", postgres, Scratch::Server(Box::new(server))),
    ]
}

/// What a backend's store lives in, removed when the test ends (passing or not).
pub(super) enum Scratch {
    Dir(std::path::PathBuf),
    #[allow(dead_code)] // held for its drop: the server stops and its folder goes
    Server(Box<rampart_testkit::postgres::PostgresServer>),
}

impl Scratch {
    pub(super) async fn dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rampart-store-{test}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        tokio::fs::create_dir_all(&dir).await.expect("scratch dir");
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Scratch::Dir(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(super) const V1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub(super) const V2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

pub(super) fn event<'a>(kind: &'a str, subject: &'a str) -> NewEvent<'a> {
    NewEvent {
        kind,
        subject,
        actor: "alice",
        data: json!({}),
    }
}

pub(super) fn seed(cause: serde_json::Value, title: &str, status: IncidentStatus) -> IncidentSeed {
    IncidentSeed {
        title: title.into(),
        status,
        impact: Impact::Major,
        environment: Some("production".into()),
        components: vec![],
        cause,
        started_ms: 1,
        first_event: None,
        body: format!("{title}: update"),
    }
}

pub(super) fn page(key: &str) -> NewAlert {
    NewAlert {
        key: key.into(),
        name: key.into(),
        severity: Severity::Page,
        source: "event",
        summary: key.into(),
        data: json!({}),
    }
}

#[tokio::test]
async fn a_version_is_stored_once_and_never_changes() {
    for (backend, store, _scratch) in backends("versions").await {
        let (first, created) = store
            .insert_version(V1, "{\"a\":1}", "alice", "first", json!({}))
            .await
            .expect("insert");
        assert!(created, "{backend}");
        let (again, created) = store
            .insert_version(V1, "{\"a\":2}", "bob", "again", json!({}))
            .await
            .expect("insert again");
        assert!(!created, "{backend}: the same id is not stored twice");
        assert_eq!(again.author, first.author, "{backend}");
        let (_, document) = store.version(V1).await.expect("read").expect("there");
        assert_eq!(document, "{\"a\":1}", "{backend}: the first document stays");
        assert_eq!(store.versions().await.expect("list").len(), 1, "{backend}");
        assert!(
            store.version(V2).await.expect("read").is_none(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_desired_version_and_its_event_commit_together() {
    for (backend, store, _scratch) in backends("desired").await {
        store
            .insert_version(V1, "{}", "alice", "", json!({}))
            .await
            .expect("version");
        store
            .set_desired("testing", V1, &event("deploy", "testing"))
            .await
            .expect("desired");
        let envs = store.environments().await.expect("environments");
        let names: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["testing", "production"],
            "{backend}: pipeline order"
        );
        assert_eq!(envs[0].desired.as_deref(), Some(V1), "{backend}");
        let events = store.events(0).await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e.kind == "deploy" && e.subject == "testing"),
            "{backend}: {events:?}"
        );
        assert!(!store.has_succeeded("testing", V1).await.expect("ask"));
        assert!(
            store
                .record_success("testing", V1, 2)
                .await
                .expect("success")
        );
        assert!(store.has_succeeded("testing", V1).await.expect("ask"));
        let envs = store.environments().await.expect("environments");
        assert_eq!(envs[0].last_known_good.as_deref(), Some(V1), "{backend}");
    }
}

#[tokio::test]
async fn an_approval_is_granted_once_by_name() {
    for (backend, store, _scratch) in backends("approvals").await {
        store
            .insert_version(V1, "{}", "alice", "", json!({}))
            .await
            .expect("version");
        let approval = store
            .request_approval("production", V1, &["auth"], "alice")
            .await
            .expect("request");
        // Two approvers at once: exactly one grant.
        let (a, b) = tokio::join!(
            store.grant(approval.id, "bob"),
            store.grant(approval.id, "carol")
        );
        let granted = [a.expect("grant"), b.expect("grant")];
        assert_eq!(
            granted.iter().filter(|g| **g).count(),
            1,
            "{backend}: {granted:?}"
        );
        assert!(
            !store.grant(approval.id, "dave").await.expect("grant"),
            "{backend}: granted again"
        );
        assert!(!store.grant(999, "bob").await.expect("grant"), "{backend}");
        let stored = store
            .approval(approval.id)
            .await
            .expect("read")
            .expect("there");
        let by = stored.approved_by.expect("granted");
        assert!(by == "bob" || by == "carol", "{backend}: {by}");
        assert_eq!(stored.requested_by, "alice", "{backend}");
        let granted_events = store.events(0).await.expect("events");
        let n = granted_events
            .iter()
            .filter(|e| e.kind == "approval.granted")
            .count();
        assert_eq!(n, 1, "{backend}: one grant, one event");
    }
}

#[tokio::test]
async fn a_release_ends_with_the_desired_version_in_the_same_change() {
    for (backend, store, _scratch) in backends("releases").await {
        for v in [V1, V2] {
            store
                .insert_version(v, "{}", "alice", "", json!({}))
                .await
                .expect("version");
        }
        let intent = rampart_rollout::Intent {
            version: V2.into(),
            previous: Some(V1.into()),
            plan: rampart_rollout::Plan::standard(1_000),
            state: rampart_rollout::ReleaseState::Pending,
            wave: 0,
            wave_started_ms: 0,
        };
        let id = store
            .insert_release("production", &intent, V1, "alice")
            .await
            .expect("insert");
        let mut row = store.release(id).await.expect("read").expect("there");
        assert_eq!(row.version.as_str(), V2, "{backend}");
        row.cohort = vec!["gw-1".into()];
        row.intent.state = rampart_rollout::ReleaseState::Succeeded;
        let ended = NewEvent {
            kind: "release.succeeded_all_waves",
            subject: "production",
            actor: "control",
            data: json!({ "release": id }),
        };
        store
            .update_release(&row, Some(V2), &[ended])
            .await
            .expect("update");
        let row = store.release(id).await.expect("read").expect("there");
        assert_eq!(row.cohort, ["gw-1"], "{backend}");
        let production = store.environments().await.expect("envs")[1].clone();
        assert_eq!(production.desired.as_deref(), Some(V2), "{backend}");
        let story = store.release_events(id, "production").await.expect("story");
        assert!(
            story
                .iter()
                .any(|e| e.kind == "release.succeeded_all_waves"),
            "{backend}: {story:?}"
        );
    }
}

#[tokio::test]
async fn restart_generations_only_grow_with_their_step() {
    for (backend, store, _scratch) in backends("restarts").await {
        let status = RestartStatus {
            environment: "production".into(),
            state: "running".into(),
            batch_size: 1,
            batches: vec![vec!["gw-1".into()], vec!["gw-2".into()]],
            current: 0,
            restarted: vec![],
            reason: None,
        };
        let bump = ["gw-1".to_owned()];
        let first = store
            .save_restart(&status, true, &bump, &event("restart.batch", "production"))
            .await
            .expect("step");
        let second = store
            .save_restart(&status, true, &bump, &event("restart.batch", "production"))
            .await
            .expect("step");
        assert_eq!(first, [("gw-1".to_owned(), 1)], "{backend}");
        assert_eq!(second, [("gw-1".to_owned(), 2)], "{backend}");
        let generations = store.restart_generations().await.expect("generations");
        assert_eq!(generations.get("gw-1"), Some(&2), "{backend}");
        let restarts = store.restarts().await.expect("restarts");
        assert_eq!(restarts.len(), 1, "{backend}");
        assert!(restarts[0].1, "{backend}: the batch was issued");
    }
}

#[tokio::test]
async fn one_alert_is_active_per_key_and_its_notification_is_queued_with_it() {
    for (backend, store, _scratch) in backends("alerts").await {
        let pager = (
            "pager".to_owned(),
            ChannelSpec {
                kind: ChannelKind::Webhook,
                url: "http://127.0.0.1:9/hook".into(),
                routing_key: None,
                secret: None,
                to: vec![],
                from: None,
                severities: vec![],
            },
        );
        store
            .put_channel(&pager.0, &pager.1, "alice")
            .await
            .expect("channel");
        let channels = [pager];
        let fired = store
            .fire_alert(&page("instance:gw-1"), &channels, None)
            .await
            .expect("fire");
        assert!(fired.is_some(), "{backend}");
        let twice = store
            .fire_alert(&page("instance:gw-1"), &channels, None)
            .await
            .expect("fire again");
        assert!(twice.is_none(), "{backend}: one active alert per key");
        let heads = store.outbox_heads().await.expect("outbox");
        assert_eq!(heads.len(), 1, "{backend}: one notification queued");
        store.outbox_done(&heads[0], None, 1).await.expect("done");
        assert!(store.outbox_heads().await.expect("outbox").is_empty());
        let resolved = store
            .resolve_alert("instance:gw-1", &channels)
            .await
            .expect("resolve");
        assert!(resolved.is_some(), "{backend}");
        assert!(store.alerts(true).await.expect("alerts").is_empty());
        assert_eq!(store.outbox_heads().await.expect("outbox").len(), 1);
    }
}

/// An SLO page can open an incident before the gate fails; when the rollback's page joins
/// it, the release becomes the incident's cause, so its postmortem names the release.
#[tokio::test]
async fn a_rollback_page_joining_an_open_incident_becomes_its_cause() {
    for (backend, store, _scratch) in backends("cause").await {
        let slo = seed(
            json!({ "slo": "Users API" }),
            "Users API burns its error budget",
            IncidentStatus::Investigating,
        );
        store
            .fire_alert(&page("slo:users:fast"), &[], Some(&slo))
            .await
            .expect("slo page");
        let rollback = seed(
            json!({ "release": 7 }),
            "Automatic rollback in production: release 7 failed its gate",
            IncidentStatus::Identified,
        );
        store
            .fire_alert(&page("release:7:rolled_back"), &[], Some(&rollback))
            .await
            .expect("rollback page");
        let ids = store.incident_ids(false, 10).await.expect("incidents");
        assert_eq!(ids.len(), 1, "{backend}: the rollback's page joined");
        let incident = store
            .incident(ids[0])
            .await
            .expect("incident")
            .expect("there");
        assert_eq!(
            incident.cause["release"], 7,
            "{backend}: {:?}",
            incident.cause
        );
        assert_eq!(incident.status, IncidentStatus::Identified, "{backend}");
        assert_eq!(incident.title, rollback.title, "{backend}");
        assert!(
            incident.updates.iter().any(|u| u.body == rollback.body),
            "{backend}: {:?}",
            incident.updates
        );
    }
}

#[tokio::test]
async fn a_maintenance_is_cancelled_once_and_a_subscriber_added_once() {
    for (backend, store, _scratch) in backends("status").await {
        let spec = MaintenanceSpec {
            title: "Database upgrade".into(),
            body: String::new(),
            components: vec!["Users API".into()],
            scheduled_for: "2026-11-24T22:00:00Z".into(),
            scheduled_until: "2026-11-24T23:00:00Z".into(),
        };
        let id = store
            .insert_maintenance(&spec, "alice")
            .await
            .expect("insert");
        assert!(store.cancel_maintenance(id, "alice").await.expect("cancel"));
        assert!(
            !store.cancel_maintenance(id, "alice").await.expect("cancel"),
            "{backend}: a cancelled window is not cancelled again"
        );
        let rows = store.maintenances().await.expect("list");
        assert!(rows[0].cancelled_at.is_some(), "{backend}");

        let target = "https://hooks.example.com/status";
        let (row, created) = store
            .add_subscriber(SubscriberKind::Webhook, target, false, "public")
            .await
            .expect("subscribe");
        assert!(created && !row.subscriber.confirmed, "{backend}");
        let (again, created) = store
            .add_subscriber(SubscriberKind::Webhook, target, false, "public")
            .await
            .expect("subscribe again");
        assert!(!created, "{backend}: one subscriber per target");
        assert_eq!(again.subscriber.id, row.subscriber.id, "{backend}");
        let confirmed = store
            .confirm_subscriber(&row.token)
            .await
            .expect("confirm")
            .expect("known token");
        assert!(confirmed.subscriber.confirmed, "{backend}");
        assert!(
            store
                .confirm_subscriber("not-a-token")
                .await
                .expect("ask")
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_token_is_stored_once_as_a_digest_and_revoked_with_its_event() {
    for (backend, store, _scratch) in backends("tokens").await {
        let info = rampart_api::TokenInfo {
            name: "ci".into(),
            role: rampart_api::Role::Agent,
            environments: vec!["testing".into()],
            bootstrap: false,
            created_at: Some("2026-11-29T00:00:00.000Z".into()),
            created_by: Some("amir".into()),
            revoked_at: None,
        };
        let token = super::StoredToken {
            info: info.clone(),
            digest: [7; 32],
        };
        assert!(
            store.create_token(&token, "amir").await.expect("create"),
            "{backend}"
        );
        assert!(
            !store.create_token(&token, "amir").await.expect("create"),
            "{backend}: a name is taken once"
        );
        let at = store.revoke_token(&info, "amir").await.expect("revoke");
        let stored = store.tokens().await.expect("tokens");
        assert_eq!(stored.len(), 1, "{backend}");
        assert_eq!(stored[0].digest, [7; 32], "{backend}");
        assert_eq!(stored[0].info.environments, ["testing"], "{backend}");
        assert_eq!(
            stored[0].info.revoked_at.as_deref(),
            Some(at.as_str()),
            "{backend}"
        );
        let kinds: Vec<String> = store
            .events(0)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["token.created", "token.revoked"], "{backend}");
    }
}

#[tokio::test]
async fn policy_revisions_count_up_per_environment_each_with_its_event() {
    for (backend, store, _scratch) in backends("policies").await {
        let first = store
            .insert_policy(
                "production",
                "waves: []",
                "olivia",
                json!({ "changes": [] }),
            )
            .await
            .expect("insert");
        let second = store
            .insert_policy("production", "waves: [x]", "amir", json!({}))
            .await
            .expect("insert");
        let other = store
            .insert_policy("testing", "waves: [y]", "amir", json!({}))
            .await
            .expect("insert");
        assert_eq!((first, second, other), (1, 2, 1), "{backend}");
        let revisions = store.policies("production").await.expect("policies");
        let seen: Vec<(i64, &str, &str)> = revisions
            .iter()
            .map(|p| (p.revision, p.text.as_str(), p.actor.as_str()))
            .collect();
        assert_eq!(
            seen,
            [(2, "waves: [x]", "amir"), (1, "waves: []", "olivia")],
            "{backend}: newest first"
        );
        let events = store.events(0).await.expect("events");
        let sets: Vec<(String, i64)> = events
            .iter()
            .filter(|e| e.kind == "policy.set")
            .map(|e| (e.subject.clone(), e.data["revision"].as_i64().unwrap_or(0)))
            .collect();
        assert_eq!(
            sets,
            [
                ("production".to_owned(), 1),
                ("production".to_owned(), 2),
                ("testing".to_owned(), 1)
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_registration_is_stored_and_a_new_one_replaces_it() {
    for (backend, store, _scratch) in backends("instances").await {
        let row = |env: &str, credential: &str, at: i64| super::InstanceRow {
            instance: "p0".into(),
            environment: env.into(),
            zone: "z1".into(),
            build: "1.0".into(),
            credential: credential.into(),
            registered_ms: at,
        };
        store
            .save_instance(&row("testing", "aa", 1))
            .await
            .expect("save");
        store
            .save_instance(&row("production", "bb", 2))
            .await
            .expect("save again");
        assert_eq!(
            store.instances().await.expect("instances"),
            [row("production", "bb", 2)],
            "{backend}"
        );
    }
}
