//! What no token or command may do: roll back to a version the environment never ran, use an
//! approval twice, or approve its own request. Each refusal is checked to have changed nothing.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_api::{ApiClient, ClientError, VersionId};
use rampart_control::tokens::Role;
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use crate::common;
use common::{free_addr, temp, wait_until};

/// A config whose `limits` (a high-risk section) carry `inflight`: each value is a change that
/// needs a second person in production.
fn document(backend: SocketAddr, inflight: u32) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
upstreams: [{{ name: b, endpoints: ["{backend}"] }}]
routes: [{{ name: r, upstream: b, timeout: 2s }}]
limits: {{ max_inflight: {inflight} }}
"#
    )
}

/// The approval requested for `v`.
async fn pending_for(op: &ApiClient, v: &VersionId) -> rampart_api::Approval {
    let all = op.approvals().await.expect("approvals");
    all.into_iter()
        .find(|a| &a.version == v)
        .expect("an approval of it")
}

fn status_of(r: &Result<rampart_api::EnvironmentStatus, ClientError>) -> Option<u16> {
    match r {
        Ok(_) => None,
        Err(ClientError::Api { status, .. }) => Some(*status),
        Err(e) => panic!("not an API answer: {e}"),
    }
}

#[tokio::test]
async fn rollback_only_goes_back_and_an_approval_is_one_deploy() {
    let backend = EchoServer::start("b").await.expect("backend");
    let control = common::pipeline("trust", common::tokens()).await;
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    let approver = ApiClient::new(&url, Some("ap".into()));
    let quiet = rampart_gateway::watchdog::WatchdogSettings::quiet;
    let _testing = common::start_agent(&url, "testing", "t1", temp("t1"), free_addr(), quiet());
    let _production =
        common::start_agent(&url, "production", "p1", temp("p1"), free_addr(), quiet());
    let env = async |name: &str| {
        op.environments()
            .await
            .expect("environments")
            .into_iter()
            .find(|e| e.name == name)
            .expect("environment")
    };
    let lkg_is = async |name: &str, v: &VersionId| {
        wait_until(Duration::from_secs(10), async || {
            env(name).await.last_known_good.as_ref() == Some(v)
        })
        .await
    };
    // Through testing, then production with a second person's approval.
    let through_the_pipeline = async |v: &VersionId| {
        op.deploy("testing", v, None)
            .await
            .expect("deploy to testing");
        assert!(
            lkg_is("testing", v).await,
            "testing never ran {}",
            v.short()
        );
        let Err(ClientError::Api { status: 409, .. }) = op.deploy("production", v, None).await
        else {
            panic!("a high-risk change reached production without an approval");
        };
        let pending = op.approvals().await.expect("approvals");
        let id = pending
            .iter()
            .rfind(|a| &a.version == v)
            .expect("requested")
            .id;
        approver.approve(id).await.expect("approved");
        assert!(
            lkg_is("production", v).await,
            "production never ran {}",
            v.short()
        );
        id
    };

    let v1 = common::pushed(&op, &document(backend.addr, 100), "v1").await;
    let first = through_the_pipeline(&v1).await;
    let v2 = common::pushed(&op, &document(backend.addr, 200), "v2").await;
    through_the_pipeline(&v2).await;

    // A used approval is refused, and nothing moves.
    let reused = approver.approve(first).await;
    assert_eq!(status_of(&reused), Some(409), "{reused:?}");
    assert_eq!(env("production").await.desired.as_ref(), Some(&v2));

    // Two approvals of one request at once: one deploys, the other is refused.
    let v3 = common::pushed(&op, &document(backend.addr, 300), "v3").await;
    op.deploy("testing", &v3, None)
        .await
        .expect("deploy to testing");
    assert!(lkg_is("testing", &v3).await);
    assert!(op.deploy("production", &v3, None).await.is_err());
    let id = pending_for(&op, &v3).await.id;
    let (a, b) = tokio::join!(approver.approve(id), approver.approve(id));
    let mut answers = [status_of(&a), status_of(&b)];
    answers.sort();
    assert_eq!(answers, [None, Some(409)], "{a:?} {b:?}");
    let events = op.events(0).await.expect("events");
    let deploys_of_v3 = events
        .iter()
        .filter(|e| e.kind == "deploy" && e.subject == "production")
        .filter(|e| e.data["version"] == v3.as_str())
        .count();
    assert_eq!(deploys_of_v3, 1, "one approval, one deploy");
    assert!(lkg_is("production", &v3).await);

    // The requester cannot approve their own request, approver or not.
    let v4 = common::pushed(&op, &document(backend.addr, 400), "v4").await;
    op.deploy("testing", &v4, None)
        .await
        .expect("deploy to testing");
    assert!(lkg_is("testing", &v4).await);
    assert!(approver.deploy("production", &v4, None).await.is_err());
    let own = pending_for(&op, &v4).await;
    assert_eq!(own.requested_by, "amir");
    let refused = approver.approve(own.id).await;
    assert_eq!(status_of(&refused), Some(403), "{refused:?}");
    assert_eq!(env("production").await.desired.as_ref(), Some(&v3));
    assert!(pending_for(&op, &v4).await.approved_by.is_none());

    // Rollback to a version production never ran (v4 only passed testing) is refused: it would
    // skip the approval it still waits for. Nothing moves.
    let skipped = op.rollback("production", Some(v4.clone())).await;
    assert_eq!(status_of(&skipped), Some(409), "{skipped:?}");
    assert_eq!(env("production").await.desired.as_ref(), Some(&v3));
    // Back to any earlier last-known-good works at once, with no approval.
    let back = op
        .rollback("production", Some(v1.clone()))
        .await
        .expect("rollback");
    assert_eq!(back.desired.as_ref(), Some(&v1));
    assert!(lkg_is("production", &v1).await);
    // And the plain rollback (to the last-known-good) still works.
    op.rollback("production", None).await.expect("rollback");
    assert_eq!(env("production").await.desired.as_ref(), Some(&v1));
}

/// A gateway's agent token, or a viewer's, in the wrong hands: it cannot move a live instance
/// to another environment, speak for an instance it did not register, join an environment its
/// token is not for, or deploy. After every attempt the fleet and the pipeline are as before.
#[tokio::test]
async fn a_stolen_agent_or_viewer_token_moves_nothing() {
    let backend = EchoServer::start("b").await.expect("backend");
    let mut entries = vec![
        rampart_control::tokens::TokenEntry::new("olivia", Role::Operator, "op"),
        rampart_control::tokens::TokenEntry::new("amir", Role::Approver, "ap"),
        rampart_control::tokens::TokenEntry::new("vic", Role::Viewer, "view"),
        rampart_control::tokens::TokenEntry::new("gateways", Role::Agent, "agent"),
    ];
    let mut testing_only = rampart_control::tokens::TokenEntry::new("ci", Role::Agent, "agent-t");
    testing_only.environments = vec!["testing".into()];
    entries.push(testing_only);
    let control = common::pipeline(
        "stolen",
        rampart_control::tokens::Tokens::from_entries(&entries),
    )
    .await;
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    let quiet = rampart_gateway::watchdog::WatchdogSettings::quiet;
    let listen = free_addr();
    let _p1 = common::start_agent(&url, "production", "p1", temp("sp1"), listen, quiet());
    let v1 = common::pushed(&op, &document(backend.addr, 100), "v1").await;
    ApiClient::new(&url, Some("ap".into()))
        .deploy("production", &v1, Some("first production config".into()))
        .await
        .expect("deploy");
    let p1 = async || {
        op.environments()
            .await
            .expect("environments")
            .into_iter()
            .flat_map(|e| e.instances)
            .find(|i| i.id == "p1")
            .expect("p1 registered")
    };
    // Settled: p1 runs v1 and production recorded it as its last-known-good (the last event
    // the deploy causes), so any event after this point is the attacks'.
    let settled = wait_until(Duration::from_secs(10), async || {
        let production = op.environments().await.expect("environments");
        p1().await.applied.as_ref() == Some(&v1)
            && production
                .iter()
                .any(|e| e.name == "production" && e.last_known_good.as_ref() == Some(&v1))
    })
    .await;
    assert!(settled, "production never settled on v1");
    let events_before = op.events(0).await.expect("events").len();

    let stolen = ApiClient::new(&url, Some("agent".into()));
    let viewer = ApiClient::new(&url, Some("view".into()));
    let move_p1 = rampart_api::RegisterRequest {
        instance: "p1".into(),
        environment: "testing".into(),
        zone: "z".into(),
        build: "evil".into(),
    };
    // Moving the live production instance into testing: refused, naming where it is.
    match stolen.register(&move_p1).await {
        Err(ClientError::Api {
            status: 409,
            message,
            ..
        }) => {
            assert!(message.contains("live in production"), "{message}")
        }
        other => panic!("a live instance moved: {other:?}"),
    }
    // A viewer's token is not an agent's.
    let refused = viewer.register(&move_p1).await;
    assert!(
        matches!(refused, Err(ClientError::Api { status: 403, .. })),
        "{refused:?}"
    );
    // Speaking for p1 without its credential, or with a made-up one: refused.
    let fake = rampart_api::Report {
        requests: [0, 0, 0, 0, 1_000_000],
        ..Default::default()
    };
    let bare = stolen.report("p1", &fake).await;
    assert!(
        matches!(bare, Err(ClientError::Api { status: 401, .. })),
        "{bare:?}"
    );
    let forged = stolen.for_instance("ri_0000").report("p1", &fake).await;
    assert!(
        matches!(forged, Err(ClientError::Api { status: 403, .. })),
        "{forged:?}"
    );
    let poll = stolen
        .for_instance("ri_0000")
        .desired("p1", None, None, None, Duration::from_millis(10))
        .await;
    assert!(
        matches!(poll, Err(ClientError::Api { status: 403, .. })),
        "{poll:?}"
    );
    // A token bound to testing cannot join production.
    let join = rampart_api::RegisterRequest {
        instance: "x1".into(),
        environment: "production".into(),
        zone: "z".into(),
        build: "evil".into(),
    };
    let bound = ApiClient::new(&url, Some("agent-t".into()))
        .register(&join)
        .await;
    assert!(
        matches!(bound, Err(ClientError::Api { status: 403, .. })),
        "{bound:?}"
    );
    // Neither token deploys, rolls back or reads the pipeline.
    for client in [&stolen, &viewer] {
        let deploy = client.deploy("testing", &v1, None).await;
        assert!(
            matches!(deploy, Err(ClientError::Api { status: 403, .. })),
            "{deploy:?}"
        );
        let rollback = client.rollback("production", None).await;
        assert!(
            matches!(rollback, Err(ClientError::Api { status: 403, .. })),
            "{rollback:?}"
        );
    }
    let read = stolen.versions().await;
    assert!(
        matches!(read, Err(ClientError::Api { status: 403, .. })),
        "{read:?}"
    );

    // Nothing changed: p1 is production's, serving v1, its counts its own; no event recorded.
    let now = p1().await;
    assert_eq!(now.environment, "production");
    assert_eq!(now.applied.as_ref(), Some(&v1));
    assert!(
        now.requests[4] < 1_000_000,
        "a forged report was counted: {:?}",
        now.requests
    );
    let envs = op.environments().await.expect("environments");
    assert!(
        envs.iter()
            .all(|e| e.name != "testing" || e.instances.is_empty())
    );
    let events = op.events(0).await.expect("events");
    let new: Vec<_> = events[events_before..]
        .iter()
        .filter(|e| e.kind != "instance.applied" && e.kind != "environment.converged")
        .collect();
    assert!(new.is_empty(), "{new:?}");
    let served = client::get(&client::http1(), &format!("http://{listen}/x")).await;
    assert!(
        served.is_ok_and(|a| a.status == http::StatusCode::OK),
        "p1 stopped serving"
    );
}

/// Tokens: only approvers create and revoke them; rampart keeps digests, never secrets (the
/// store's files do not contain one); a revoked token, bootstrap or created, is refused at
/// once and after a restart; a created one still works after a restart.
#[tokio::test]
async fn tokens_are_digests_created_and_revoked_by_approvers() {
    let data = temp("tokens");
    let addr = free_addr();
    let envs = ["testing".to_owned(), "production".to_owned()];
    let spawn =
        || rampart_control::spawn_with(&data, &envs, common::tokens(), addr, |c| c.with_plan(None));
    let control = spawn().await.expect("control plane");
    let url = control.url();
    let op = ApiClient::new(&url, Some("op".into()));
    let approver = ApiClient::new(&url, Some("ap".into()));
    let spec = |name: &str, role, envs: &[&str]| rampart_api::TokenSpec {
        name: name.into(),
        role,
        environments: envs.iter().map(|e| (*e).to_owned()).collect(),
    };

    // Operators neither list nor create tokens.
    let listed = op.tokens().await;
    assert!(
        matches!(listed, Err(ClientError::Api { status: 403, .. })),
        "{listed:?}"
    );
    let made = op.create_token(&spec("mine", Role::Approver, &[])).await;
    assert!(
        matches!(made, Err(ClientError::Api { status: 403, .. })),
        "{made:?}"
    );

    // An approver creates an agent token bound to testing; it registers there only.
    let ci = approver
        .create_token(&spec("ci-gateways", Role::Agent, &["testing"]))
        .await
        .expect("created");
    let register = |env: &str| rampart_api::RegisterRequest {
        instance: format!("ci-{env}"),
        environment: env.into(),
        zone: "z".into(),
        build: "test".into(),
    };
    let gateways = ApiClient::new(&url, Some(ci.token.clone()));
    gateways
        .register(&register("testing"))
        .await
        .expect("registers in testing");
    let elsewhere = gateways.register(&register("production")).await;
    assert!(
        matches!(elsewhere, Err(ClientError::Api { status: 403, .. })),
        "{elsewhere:?}"
    );
    let second = approver
        .create_token(&spec("dashboards", Role::Viewer, &[]))
        .await
        .expect("created");
    let taken = approver
        .create_token(&spec("dashboards", Role::Viewer, &[]))
        .await;
    assert!(
        matches!(taken, Err(ClientError::Api { status: 409, .. })),
        "{taken:?}"
    );

    // Listed without secrets; the store's files hold none.
    let list = approver.tokens().await.expect("tokens");
    let ci_info = list
        .iter()
        .find(|t| t.name == "ci-gateways")
        .expect("listed");
    assert_eq!(ci_info.created_by.as_deref(), Some("amir"));
    assert!(
        !serde_json::to_string(&list)
            .expect("json")
            .contains(&ci.token)
    );
    let mut read = 0;
    for file in ["rampart.db", "rampart.db-wal"] {
        let bytes = tokio::fs::read(data.join(file)).await.unwrap_or_default();
        read += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&ci.token) && !text.contains(&second.token),
            "{file} holds a token's secret"
        );
    }
    assert!(read > 0, "the store's files were not read");

    // Revoked: refused at once. A bootstrap token too; nobody revokes their own.
    approver.revoke_token("ci-gateways").await.expect("revoked");
    let refused = gateways.register(&register("testing")).await;
    assert!(
        matches!(refused, Err(ClientError::Api { status: 401, .. })),
        "{refused:?}"
    );
    approver.revoke_token("olivia").await.expect("revoked");
    let gone = op.versions().await;
    assert!(
        matches!(gone, Err(ClientError::Api { status: 401, .. })),
        "{gone:?}"
    );
    let own = approver.revoke_token("amir").await;
    assert!(
        matches!(own, Err(ClientError::Api { status: 409, .. })),
        "{own:?}"
    );
    let events = approver.events(0).await.expect("events");
    let audited = events
        .iter()
        .filter(|e| e.kind.starts_with("token.") && e.actor == "amir")
        .count();
    assert_eq!(audited, 4, "two created, two revoked: {events:?}");

    // After a restart on the same data: revocations hold, the created token still works.
    control.kill().await;
    let control = spawn().await.expect("control plane again");
    let url = control.url();
    assert!(matches!(
        ApiClient::new(&url, Some("op".into())).versions().await,
        Err(ClientError::Api { status: 401, .. })
    ));
    assert!(matches!(
        ApiClient::new(&url, Some(ci.token.clone()))
            .register(&register("testing"))
            .await,
        Err(ClientError::Api { status: 401, .. })
    ));
    ApiClient::new(&url, Some(second.token.clone()))
        .versions()
        .await
        .expect("a created token still works");
}
