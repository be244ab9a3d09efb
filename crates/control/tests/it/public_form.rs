//! The public subscribe form is the one door strangers have. What they ask for is never sent to
//! an address inside the network, whatever a name resolves to, and what they queue can never
//! hold up a page to an operator.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_api::{ApiClient, ClientError, Impact, NewIncident, SubscriberKind, SubscriberSpec};
use rampart_testkit::dns::StaticDns;

use crate::common;
use common::{post_form, temp, urlencode, wait_until};

/// A control plane opened by the test itself, served on a loopback port until the guard drops.
async fn serve(control: rampart_control::ControlPlane) -> (String, Serving) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rampart_control::serve(
        listener,
        Arc::new(control),
        common::tokens(),
        async move {
            let _ = stopped.await;
        },
    ));
    (url, Serving(Some(stop), task))
}

/// Stops the control plane `serve` started when dropped (the test ending, or failing).
struct Serving(
    Option<tokio::sync::oneshot::Sender<()>>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
        self.1.abort();
    }
}

/// Opens an incident: every confirmed subscriber gets a notification queued.
async fn open_incident(op: &ApiClient) {
    let new = NewIncident {
        title: "Logins failing".into(),
        body: "Investigating".into(),
        impact: Impact::Major,
        components: vec![],
        environment: None,
    };
    op.open_incident(&new).await.expect("incident");
}

/// A loopback listener that counts the connections it accepts (and answers none).
async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            drop(conn);
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_webhook_on_a_private_address_is_refused_and_nothing_connects_there() {
    let (inside, accepted) = counting_listener().await;
    let port = inside.port();
    let dns = StaticDns::start(&[
        ("inside.example", Ipv4Addr::LOCALHOST),
        ("metadata.example", Ipv4Addr::new(169, 254, 169, 254)),
    ])
    .await
    .expect("dns");
    let resolver = rampart_model::ResolverConfig {
        nameservers: Some(vec![dns.addr]),
        timeout: Duration::from_millis(200),
        attempts: 1,
        ..Default::default()
    };
    let settings = rampart_control::Settings::default()
        .with_notify_resolver(resolver)
        .with_backoff(rampart_control::notify::Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(100),
        });
    let control =
        rampart_control::ControlPlane::open_with(&temp("ssrf"), &["production".into()], settings)
            .await
            .expect("control plane");
    // A subscriber stored before these rules (or whose name pointed elsewhere when it
    // subscribed): delivery checks again, so it must never be reached either.
    control
        .store()
        .add_subscriber(
            SubscriberKind::Webhook,
            &format!("http://inside.example:{port}/hook"),
            true,
            "before",
        )
        .await
        .expect("a stored subscriber");
    let (url, _serving) = serve(control).await;
    let op = ApiClient::new(&url, Some("op".into()));

    for target in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://inside.example:{port}/hook"),
        "http://metadata.example/latest/meta-data".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.7/hook".to_owned(),
    ] {
        let form = format!("webhook={}", urlencode(&target));
        let (status, body) = post_form(&format!("{url}/subscribe"), &form).await;
        assert_eq!(status, 422, "{target}: {body}");
        assert!(body.contains("not a public address"), "{target}: {body}");
        let added = op
            .add_subscriber(&SubscriberSpec {
                kind: SubscriberKind::Webhook,
                target: target.clone(),
            })
            .await;
        assert!(
            matches!(added, Err(ClientError::Api { status: 422, .. })),
            "{target}: {added:?}"
        );
    }
    assert_eq!(op.subscribers().await.expect("subscribers").len(), 1);

    // An incident queues a notification for the stored subscriber; delivery refuses it.
    open_incident(&op).await;
    let refused = wait_until(Duration::from_secs(10), async || {
        op.outbox().await.is_ok_and(|entries| {
            entries.iter().any(|e| {
                e.channel.starts_with("subscriber:")
                    && e.failed_at.is_some()
                    && e.last_error
                        .as_deref()
                        .is_some_and(|m| m.contains("not public"))
            })
        })
    })
    .await;
    assert!(refused, "{:?}", op.outbox().await);
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        0,
        "something connected to the inside address"
    );
}

/// A loopback listener that accepts and never answers; returns the most connections it held
/// open at once.
async fn black_hole() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let peak = most.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let now = open.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let open = open.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(conn);
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    (addr, most)
}

/// A thousand subscribers whose webhooks never answer, each with an incident update queued:
/// a page raised meanwhile still reaches the operators' channel within a second, and the
/// subscribers' lane holds at most its batch of connections open.
#[tokio::test]
async fn a_thousand_junk_subscribers_do_not_delay_a_page() {
    let (hole, most_open) = black_hole().await;
    let pager = rampart_testkit::receiver::Receiver::start()
        .await
        .expect("pager");
    let control = rampart_control::ControlPlane::open_with(
        &temp("junk"),
        &["production".into()],
        rampart_control::Settings::default().with_private_webhooks(true),
    )
    .await
    .expect("control plane");
    for i in 0..1000 {
        control
            .store()
            .add_subscriber(
                SubscriberKind::Webhook,
                &format!("http://{hole}/junk/{i}"),
                true,
                "flood",
            )
            .await
            .expect("subscriber");
    }
    let (url, _serving) = serve(control).await;
    let op = ApiClient::new(&url, Some("op".into()));
    op.put_channel("pager", &common::pager_channel(pager.url()))
        .await
        .expect("channel");
    // One incident update for each of the thousand; give their lane time to fill.
    open_incident(&op).await;
    let filled = wait_until(Duration::from_secs(5), async || {
        most_open.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(filled, "the subscribers' lane never started");

    let raised = std::time::Instant::now();
    let alert = serde_json::json!({
        "version": "4",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "fingerprint": "db-down",
            "labels": { "alertname": "DatabaseDown", "severity": "critical" },
            "annotations": { "summary": "the database is down" },
        }]
    });
    let req = http::Request::post(format!("{url}/v1/alertmanager"))
        .header("authorization", "Bearer op")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            alert.to_string(),
        )))
        .expect("request");
    let answer = rampart_testkit::client::call(
        &rampart_testkit::client::http1(),
        req,
        Duration::from_secs(5),
    )
    .await
    .expect("alertmanager");
    assert!(answer.status.is_success(), "{:?}", answer.status);
    let paged = wait_until(Duration::from_secs(5), async || {
        !pager.received().is_empty()
    })
    .await;
    let took = raised.elapsed();
    assert!(paged, "the page never arrived");
    assert!(
        took < Duration::from_secs(1),
        "the page took {took:?} behind the junk"
    );
    let most = most_open.load(Ordering::Relaxed);
    assert!(
        most <= 32,
        "the subscribers' lane held {most} connections open at once"
    );
}
