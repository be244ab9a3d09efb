//! The leader's lease and the fence on its epoch, on both backends, with two handles on one
//! database as two replicas would hold: one holder at a time, a new epoch on every takeover, a
//! released lease taken at once, and a deposed leader's writes refused — also when its database
//! sessions were killed while it lived on (PostgreSQL's `pg_terminate_backend`).

use std::time::Duration;

use super::suite::{Scratch, event};
use super::{Store, StoreError};

/// Two handles on one fresh database per backend, and what keeps it alive.
async fn pairs() -> Vec<(&'static str, Store, Store, Scratch, String)> {
    let dir = Scratch::dir("lease").await;
    let a = Store::open(&dir).await.expect("sqlite a");
    let b = Store::open(&dir).await.expect("sqlite b");
    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server");
    let url = server.url();
    let pa = Store::connect(&url).await.expect("postgres a");
    let pb = Store::connect(&url).await.expect("postgres b");
    vec![
        ("sqlite", a, b, Scratch::Dir(dir), String::new()),
        ("postgres", pa, pb, Scratch::Server(Box::new(server)), url),
    ]
}

#[tokio::test]
async fn a_lease_has_one_holder_and_every_takeover_a_new_epoch() {
    for (backend, a, b, _keep, _) in pairs().await {
        let first = a
            .acquire_lease("a", "http://a", 300)
            .await
            .expect("acquire");
        assert_eq!(first, Some(1), "{backend}");
        assert_eq!(
            b.acquire_lease("b", "http://b", 300).await.expect("try"),
            None,
            "{backend}"
        );
        let lease = b.lease().await.expect("lease");
        assert_eq!(
            (
                lease.holder.as_str(),
                lease.address.as_str(),
                lease.epoch,
                lease.current
            ),
            ("a", "http://a", 1, true),
            "{backend}"
        );
        assert!(
            a.renew_lease("a", 1, 300).await.expect("renew"),
            "{backend}"
        );

        // a stops renewing: once the lease lapses b takes it, under a new epoch.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(
            !b.lease().await.expect("lease").current,
            "{backend}: lapsed"
        );
        assert_eq!(
            b.acquire_lease("b", "http://b", 5_000).await.expect("take"),
            Some(2),
            "{backend}"
        );
        assert!(
            !a.renew_lease("a", 1, 300).await.expect("renew"),
            "{backend}: a's lease is gone"
        );

        // A graceful stop hands over at once.
        b.release_lease("b", 2).await.expect("release");
        assert_eq!(
            a.acquire_lease("a", "http://a", 5_000).await.expect("take"),
            Some(3),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_deposed_leader_writes_nothing() {
    for (backend, a, b, _keep, _) in pairs().await {
        let epoch = a
            .acquire_lease("a", "http://a", 200)
            .await
            .expect("acquire")
            .expect("free");
        a.fence(Some(epoch));
        a.append_event(&event("as.leader", "x"))
            .await
            .expect("a writes as leader");
        tokio::time::sleep(Duration::from_millis(350)).await;
        let next = b
            .acquire_lease("b", "http://b", 5_000)
            .await
            .expect("take")
            .expect("lapsed");
        b.fence(Some(next));
        let late = a.append_event(&event("late", "x")).await;
        assert!(
            matches!(late, Err(StoreError::Fenced { mine, now }) if mine == epoch && now == next),
            "{backend}: {late:?}"
        );
        b.append_event(&event("new.leader", "x"))
            .await
            .expect("b writes");
        let kinds: Vec<String> = b
            .events(0)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["as.leader", "new.leader"], "{backend}");
    }
}

/// The split-brain case: the leader's database sessions are killed while its process lives on
/// and believes it leads. Its pool reconnects; its writes still fail once another replica took
/// the lease.
#[tokio::test]
async fn a_leader_whose_sessions_were_killed_writes_nothing_after_its_epoch() {
    let (_, a, b, _keep, url) = pairs().await.pop().expect("postgres");
    let epoch = a
        .acquire_lease("a", "http://a", 200)
        .await
        .expect("acquire")
        .expect("free");
    a.fence(Some(epoch));
    a.append_event(&event("as.leader", "x"))
        .await
        .expect("a writes");
    let admin = sqlx::PgPool::connect(&url).await.expect("admin");
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&admin)
    .await
    .expect("terminate");
    assert!(killed >= 1, "no session was killed");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let next = b
        .acquire_lease("b", "http://b", 5_000)
        .await
        .expect("take")
        .expect("lapsed");
    // a's next writes reconnect (sessions were killed) and are refused.
    let mut refused = 0;
    for _ in 0..3 {
        match a.append_event(&event("late", "x")).await {
            Err(StoreError::Fenced { now, .. }) if now == next => refused += 1,
            Err(StoreError::Db(_)) => {} // a killed connection, before the pool replaced it
            other => panic!("a deposed leader wrote: {other:?}"),
        }
    }
    assert!(refused >= 1, "never refused by the fence");
    let kinds: Vec<String> = b
        .events(0)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["as.leader"]);
}

#[tokio::test]
async fn replicas_announce_themselves_and_postgresql_tells_of_every_lease_change() {
    for (backend, a, b, _keep, _) in pairs().await {
        a.heartbeat("a", "http://127.0.0.1:1").await.expect("a");
        b.heartbeat("b", "http://127.0.0.1:2").await.expect("b");
        a.heartbeat("a", "http://127.0.0.1:3").await.expect("again");
        let all = b.replicas().await.expect("replicas");
        let seen: Vec<(&str, &str)> = all
            .iter()
            .map(|r| (r.name.as_str(), r.address.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("a", "http://127.0.0.1:3"), ("b", "http://127.0.0.1:2")],
            "{backend}"
        );
        assert!(
            all.iter().all(|r| (0..5_000).contains(&r.seen_ago_ms)),
            "{backend}: {all:?}"
        );

        let watch = b.lease_watch().await.expect("watch");
        let Some(mut watch) = watch else {
            assert_eq!(backend, "sqlite", "only SQLite has no notifications");
            continue;
        };
        // A takeover and a release are each announced; a failed acquire is not.
        let epoch = a
            .acquire_lease("a", "http://a", 5_000)
            .await
            .expect("acquire")
            .expect("free");
        let heard = tokio::time::timeout(Duration::from_secs(2), watch.changed()).await;
        assert!(matches!(heard, Ok(Ok(()))), "{backend}: takeover unheard");
        assert_eq!(
            b.acquire_lease("b", "http://b", 5_000).await.expect("try"),
            None
        );
        let quiet = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
        assert!(quiet.is_err(), "{backend}: a failed acquire was announced");
        a.release_lease("a", epoch).await.expect("release");
        let heard = tokio::time::timeout(Duration::from_secs(2), watch.changed()).await;
        assert!(matches!(heard, Ok(Ok(()))), "{backend}: release unheard");
    }
}
