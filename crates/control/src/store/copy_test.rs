//! An embedded store copied into PostgreSQL reads the same through the seam, table by table,
//! takes new writes after the copied ids, and is never copied over a database in use.

use rampart_api::{
    ActionItemSpec, ChannelKind, ChannelSpec, ComponentSpec, IncidentStatus, MaintenanceSpec,
    SubscriberKind,
};
use serde_json::json;

use super::suite::{Scratch, V1, V2, event, page, seed};
use super::{NewEvent, Store};

/// A store with a row in every table.
async fn populate(store: &Store) {
    let envs = ["testing".to_owned(), "production".to_owned()];
    store
        .ensure_environments(&envs)
        .await
        .expect("environments");
    for v in [V1, V2] {
        store
            .insert_version(v, "{}", "alice", v, json!({}))
            .await
            .expect("version");
    }
    store
        .set_desired("testing", V1, &event("deploy", "testing"))
        .await
        .expect("desired");
    store
        .record_success("testing", V1, 2)
        .await
        .expect("success");
    let approval = store
        .request_approval("production", V2, &["auth"], "alice")
        .await
        .expect("approval");
    store.grant(approval.id, "bob").await.expect("grant");
    let intent = rampart_rollout::Intent {
        version: V2.into(),
        previous: Some(V1.into()),
        plan: rampart_rollout::Plan::standard(1_000),
        state: rampart_rollout::ReleaseState::Rolling,
        wave: 1,
        wave_started_ms: 5,
    };
    let release = store
        .insert_release("production", &intent, V1, "alice")
        .await
        .expect("release");
    let mut row = store.release(release).await.expect("read").expect("there");
    row.cohort = vec!["gw-1".into()];
    let wave = NewEvent {
        kind: "release.wave",
        subject: "production",
        actor: "control",
        data: json!({ "release": release, "wave": 1 }),
    };
    store
        .update_release(&row, None, &[wave])
        .await
        .expect("update");
    let spec = ComponentSpec {
        description: "users".into(),
        routes: vec!["users".into()],
        environment: None,
        slo: 99.9,
    };
    store
        .put_component("Users API", &spec)
        .await
        .expect("component");
    let counts = crate::slo::Counts {
        total: 100,
        failed: 2,
    };
    store
        .save_minutes(&[("component:Users API".into(), 29_000_000, counts)])
        .await
        .expect("minutes");
    let pager = ChannelSpec {
        kind: ChannelKind::Webhook,
        url: "http://127.0.0.1:9/hook".into(),
        routing_key: None,
        secret: None,
        to: vec![],
        from: None,
        severities: vec![],
    };
    store
        .put_channel("pager", &pager, "alice")
        .await
        .expect("channel");
    let channels = [("pager".to_owned(), pager)];
    let incident_seed = seed(
        json!({ "release": release }),
        "rollback",
        IncidentStatus::Identified,
    );
    store
        .fire_alert(
            &page("rollback:production"),
            &channels,
            Some(&incident_seed),
        )
        .await
        .expect("alert");
    let incident = store.incident_ids(false, 10).await.expect("ids")[0];
    let item = ActionItemSpec {
        title: "resolve hosts in CI".into(),
        owner: "olivia".into(),
        state: "open".into(),
    };
    store
        .add_action_item(incident, &item, "alice")
        .await
        .expect("item");
    let window = MaintenanceSpec {
        title: "upgrade".into(),
        body: String::new(),
        components: vec!["Users API".into()],
        scheduled_for: "2026-11-24T22:00:00Z".into(),
        scheduled_until: "2026-11-24T23:00:00Z".into(),
    };
    store
        .insert_maintenance(&window, "alice")
        .await
        .expect("maintenance");
    store
        .add_subscriber(
            SubscriberKind::Webhook,
            "https://example.com/hook",
            true,
            "public",
        )
        .await
        .expect("subscriber");
    let token = super::StoredToken {
        info: rampart_api::TokenInfo {
            name: "ci".into(),
            role: rampart_api::Role::Agent,
            environments: vec!["testing".into()],
            bootstrap: false,
            created_at: Some("2026-11-29T00:00:00.000Z".into()),
            created_by: Some("amir".into()),
            revoked_at: None,
        },
        digest: [7; 32],
    };
    store.create_token(&token, "amir").await.expect("token");
    store
        .insert_policy(
            "production",
            "waves: [{ percent: 100 }]",
            "olivia",
            json!({}),
        )
        .await
        .expect("policy");
    let status = rampart_api::RestartStatus {
        environment: "production".into(),
        state: "running".into(),
        batch_size: 1,
        batches: vec![vec!["gw-1".into()]],
        current: 0,
        restarted: vec![],
        reason: None,
    };
    store
        .save_restart(
            &status,
            true,
            &["gw-1".into()],
            &event("restart.batch", "production"),
        )
        .await
        .expect("restart");
}

/// Everything a store holds, read through the seam, as text.
async fn everything(store: &Store) -> Vec<String> {
    let mut incidents = vec![];
    for id in store.incident_ids(false, 100).await.expect("ids") {
        incidents.push(format!("{:?}", store.incident(id).await.expect("incident")));
    }
    let mut minutes: Vec<_> = store
        .load_minutes()
        .await
        .expect("minutes")
        .into_iter()
        .collect();
    minutes.sort_by(|a, b| a.0.cmp(&b.0));
    vec![
        format!("{:?}", store.versions().await.expect("versions")),
        format!("{:?}", store.environments().await.expect("environments")),
        format!("{:?}", store.events(0).await.expect("events")),
        format!("{:?}", store.approvals().await.expect("approvals")),
        format!("{:?}", store.releases().await.expect("releases")),
        format!("{:?}", store.components().await.expect("components")),
        format!("{minutes:?}"),
        format!("{:?}", store.channels().await.expect("channels")),
        format!("{:?}", store.outbox().await.expect("outbox")),
        format!("{:?}", store.alerts(false).await.expect("alerts")),
        format!("{incidents:?}"),
        format!("{:?}", store.maintenances().await.expect("maintenances")),
        format!("{:?}", store.subscribers().await.expect("subscribers")),
        format!("{:?}", store.tokens().await.expect("tokens")),
        format!(
            "{:?}",
            store.policies("production").await.expect("policies")
        ),
        format!("{:?}", store.restarts().await.expect("restarts")),
        format!(
            "{:?}",
            store.restart_generations().await.expect("generations")
        ),
        format!(
            "{:?}",
            store.has_succeeded("testing", V1).await.expect("success")
        ),
    ]
}

#[tokio::test]
async fn an_embedded_store_copied_into_postgresql_reads_the_same() {
    let dir = Scratch::dir("copy").await;
    let _keep = Scratch::Dir(dir.clone());
    let sqlite = Store::open(&dir).await.expect("sqlite");
    populate(&sqlite).await;
    let before = everything(&sqlite).await;
    drop(sqlite);

    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server");
    let counts = super::copy::sqlite_to_postgres(&dir, &server.url(), |_, _| {})
        .await
        .expect("copy");
    assert_eq!(counts.len(), super::copy::TABLES.len());
    for (table, n) in &counts {
        assert!(*n > 0, "{table}: nothing copied, so nothing was checked");
    }
    let postgres = Store::connect(&server.url()).await.expect("postgres");
    let after = everything(&postgres).await;
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b);
    }

    // New rows continue after the copied ids.
    let last = postgres
        .events(0)
        .await
        .expect("events")
        .last()
        .map(|e| e.seq);
    let seq = postgres
        .append_event(&event("after.copy", "production"))
        .await
        .expect("a new event");
    assert_eq!(Some(seq - 1), last);
    let id = postgres
        .open_incident(
            &seed(json!({}), "later", IncidentStatus::Investigating),
            "alice",
        )
        .await
        .expect("a new incident");
    assert!(id > 1, "{id}");

    // A database in use is never copied over.
    let again = super::copy::sqlite_to_postgres(&dir, &server.url(), |_, _| {}).await;
    assert!(
        matches!(&again, Err(super::StoreError::Refused(m)) if m.contains("already holds")),
        "{again:?}"
    );
}
