//! Notifications through the persistent outbox, to real receivers on loopback: PagerDuty
//! Events v2 (trigger then resolve, one dedup_key), a signed webhook, a Slack-compatible
//! webhook and SMTP. A receiver that is down gets its notifications when it is back; a control
//! plane killed with notifications undelivered delivers them after it restarts, once each.
//!
//! (Long because each channel kind and each failure is a whole scenario against real
//! receivers; they share the helpers at the top.)

use std::time::Duration;

use hmac::{Hmac, Mac};
use rampart_api::{ApiClient, ChannelKind, ChannelSpec, Severity};
use rampart_control::notify::Backoff;
use rampart_testkit::receiver::Receiver;
use rampart_testkit::smtp::SmtpSink;

use crate::common;
use common::{temp, wait_until};

async fn spawn(data: &std::path::Path, addr: &str) -> rampart_control::Running {
    spawn_tuned(data, addr, Duration::from_millis(500), |c| c).await
}

/// A control plane whose notifications retry after 100 ms, backing off up to `cap`, with
/// `more` settings on top.
async fn spawn_tuned(
    data: &std::path::Path,
    addr: &str,
    cap: Duration,
    more: impl FnOnce(rampart_control::Settings) -> rampart_control::Settings,
) -> rampart_control::Running {
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap,
    };
    rampart_control::spawn_with(
        data,
        &["production".into()],
        common::tokens(),
        addr.parse().expect("addr"),
        |c| more(c.with_backoff(backoff)),
    )
    .await
    .expect("control plane")
}

fn am(fingerprint: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "4",
        "status": status,
        "receiver": "rampart",
        "alerts": [{
            "status": status,
            "fingerprint": fingerprint,
            "labels": { "alertname": "HighErrorRate", "severity": "critical", "component": "Users API" },
            "annotations": { "summary": format!("Users API 5xx above 5% ({fingerprint})") },
            "startsAt": "2026-11-24T10:00:00Z"
        }]
    })
}

async fn post_am(base: &str, body: &serde_json::Value) -> u16 {
    let client = rampart_testkit::client::http1();
    let req = http::Request::post(format!("{base}/v1/alertmanager"))
        .header("authorization", "Bearer op")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    rampart_testkit::client::call(&client, req, Duration::from_secs(5))
        .await
        .expect("alertmanager post")
        .status
        .as_u16()
}

fn pd(spec_url: String) -> ChannelSpec {
    ChannelSpec {
        kind: ChannelKind::Pagerduty,
        url: spec_url,
        routing_key: Some("R0UT1NGKEY".into()),
        secret: None,
        to: vec![],
        from: None,
        severities: vec![],
    }
}

#[tokio::test]
async fn every_channel_kind_gets_trigger_and_resolve_through_an_outage_and_a_crash() {
    let data = temp("notify");
    let mut pager = Receiver::start().await.expect("pager");
    let hooks = Receiver::start().await.expect("webhook");
    let slack = Receiver::start().await.expect("slack");
    let smtp = SmtpSink::start().await.expect("smtp");
    let control = spawn(&data, "127.0.0.1:0").await;
    let addr = control.addr;
    let op = ApiClient::new(&control.url(), Some("op".into()));

    op.put_channel("pager", &pd(pager.url()))
        .await
        .expect("pager channel");
    op.put_channel(
        "hooks",
        &ChannelSpec {
            kind: ChannelKind::Webhook,
            url: hooks.url(),
            routing_key: None,
            secret: Some("s3cret".into()),
            to: vec![],
            from: None,
            severities: vec![Severity::Page, Severity::Ticket],
        },
    )
    .await
    .expect("webhook channel");
    op.put_channel(
        "chat",
        &ChannelSpec {
            kind: ChannelKind::Slack,
            url: slack.url(),
            routing_key: None,
            secret: None,
            to: vec![],
            from: None,
            severities: vec![],
        },
    )
    .await
    .expect("slack channel");
    op.put_channel(
        "mail",
        &ChannelSpec {
            kind: ChannelKind::Email,
            url: smtp.url(),
            routing_key: None,
            secret: None,
            to: vec!["oncall@example.test".into()],
            from: Some("rampart@example.test".into()),
            severities: vec![],
        },
    )
    .await
    .expect("email channel");
    // Bad channels are refused with what is wrong, and change nothing.
    let mut no_key = pd(pager.url());
    no_key.routing_key = None;
    let err = op
        .put_channel("bad", &no_key)
        .await
        .expect_err("no routing key");
    assert!(err.to_string().contains("routing_key"), "{err}");
    assert_eq!(op.channels().await.expect("channels").len(), 4);

    // Alertmanager fires: one page, four channels.
    assert_eq!(post_am(&control.url(), &am("fp1", "firing")).await, 200);
    let got = wait_until(Duration::from_secs(10), async || {
        !pager.received().is_empty()
            && !hooks.received().is_empty()
            && !slack.received().is_empty()
            && !smtp.mails().is_empty()
    })
    .await;
    assert!(
        got,
        "not every channel was notified: {:?}",
        op.outbox().await
    );
    let trigger = pager.received()[0].clone();
    assert_eq!(trigger.body["event_action"], "trigger");
    assert_eq!(trigger.body["routing_key"], "R0UT1NGKEY");
    assert_eq!(trigger.body["payload"]["severity"], "critical");
    let dedup = trigger.body["dedup_key"]
        .as_str()
        .expect("dedup_key")
        .to_owned();

    // The webhook is signed: HMAC-SHA256 over "{timestamp}.{body}" with the channel's secret.
    let hook = hooks.received()[0].clone();
    let ts = hook.header("x-rampart-timestamp").expect("timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&hook.raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.header("x-rampart-signature"), Some(expected.as_str()));
    assert!(hook.header("idempotency-key").is_some());
    assert!(
        slack.received()[0].body["text"]
            .as_str()
            .is_some_and(|t| t.contains("Users API 5xx")),
        "{:?}",
        slack.received()[0].body
    );
    assert!(
        smtp.mails()[0].data.contains("Subject: [rampart page]"),
        "{:?}",
        smtp.mails()
    );

    // The pager goes down; the resolve waits in the outbox and arrives once it is back.
    pager.down();
    assert_eq!(post_am(&control.url(), &am("fp1", "resolved")).await, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pending = op.channels().await.expect("channels");
    let pager_pending = pending
        .iter()
        .find(|c| c.name == "pager")
        .map(|c| c.pending);
    assert_eq!(pager_pending, Some(1), "{pending:?}");
    pager.up().await.expect("pager back");
    assert!(
        wait_until(Duration::from_secs(10), async || pager.received().len()
            >= 2)
        .await,
        "the resolve never arrived: {:?}",
        op.outbox().await
    );
    let resolve = pager.received()[1].clone();
    assert_eq!(resolve.body["event_action"], "resolve");
    assert_eq!(resolve.body["dedup_key"].as_str(), Some(dedup.as_str()));

    // A crash with a page undelivered: the pager is down, a new alert fires, the control plane
    // is killed; after the restart the page is delivered, once.
    pager.down();
    assert_eq!(post_am(&control.url(), &am("fp2", "firing")).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    control.kill().await;
    pager.up().await.expect("pager back");
    let control = spawn(&data, &addr.to_string()).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    assert!(
        wait_until(Duration::from_secs(10), async || pager.received().len()
            >= 3)
        .await,
        "the page queued before the crash was lost: {:?}",
        op.outbox().await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys: Vec<String> = pager
        .distinct()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(pager.distinct().len(), 3);
    assert_eq!(pager.received()[2].body["event_action"], "trigger");
    let outbox = op.outbox().await.expect("outbox");
    assert!(
        outbox.iter().all(|o| o.delivered_at.is_some()),
        "{outbox:?}"
    );
    control.kill().await;
}

#[tokio::test]
async fn a_receiver_asking_to_wait_is_retried_after_retry_after() {
    let data = temp("retry-after");
    let pager = Receiver::start().await.expect("pager");
    pager.answer_with(Some((429, Some(1))));
    let control = spawn(&data, "127.0.0.1:0").await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    op.put_channel("pager", &pd(pager.url()))
        .await
        .expect("channel");
    assert_eq!(post_am(&control.url(), &am("fp9", "firing")).await, 200);
    assert!(
        wait_until(Duration::from_secs(5), async || !pager
            .received()
            .is_empty())
        .await
    );
    pager.answer_with(None);
    assert!(wait_until(Duration::from_secs(5), async || pager.received().len() >= 2).await);
    let r = pager.received();
    let gap = r[1].at.duration_since(r[0].at);
    // The backoff alone would retry within 0.5 s; the receiver asked for 1 s.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    // The receiver has the request before the control plane records the answer: wait for that.
    assert!(
        wait_until(Duration::from_secs(5), async || op
            .outbox()
            .await
            .is_ok_and(|o| o.first().is_some_and(|e| e.delivered_at.is_some())))
        .await
    );
    let entry = op.outbox().await.expect("outbox").remove(0);
    assert_eq!(entry.attempts, 2);

    // A malformed Alertmanager payload is refused and fires nothing.
    let bad = serde_json::json!({ "alerts": [
        { "status": "firing", "labels": { "alertname": "A", "severity": "critical" }, "fingerprint": "ok" },
        { "status": "weird", "labels": { "alertname": "B" } }
    ]});
    assert_eq!(post_am(&control.url(), &bad).await, 422);
    let active = op.alerts(true).await.expect("alerts");
    assert_eq!(active.len(), 1, "{active:?}");
    control.kill().await;
}

/// The seed's failure, on the notification path: channels whose hosts never resolve (their
/// nameserver never answers) fail each attempt at the DNS deadline with the reason, are
/// retried, and block no one: the other channel is delivered at once and the API answers.
#[tokio::test]
async fn channels_whose_hosts_never_resolve_fail_at_the_dns_deadline_and_block_no_one() {
    let data = temp("blackhole-channel");
    let dns = rampart_testkit::dns::BlackHoleDns::start()
        .await
        .expect("dns");
    let good = Receiver::start().await.expect("receiver");
    let resolver = rampart_model::ResolverConfig {
        nameservers: Some(vec![dns.addr]),
        timeout: Duration::from_millis(100),
        attempts: 1,
        ..Default::default()
    };
    let control = spawn_tuned(&data, "127.0.0.1:0", Duration::from_millis(300), |c| {
        c.with_notify_resolver(resolver)
    })
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let channel = |kind, url: &str, to: Vec<String>| ChannelSpec {
        kind,
        url: url.into(),
        routing_key: None,
        secret: (kind == ChannelKind::Webhook).then(|| "s3cret".to_owned()),
        to,
        from: None,
        severities: vec![],
    };
    op.put_channel(
        "lost-hook",
        &channel(
            ChannelKind::Webhook,
            "http://hooks.blackhole.test:9/x",
            vec![],
        ),
    )
    .await
    .expect("channel");
    op.put_channel(
        "lost-mail",
        &channel(
            ChannelKind::Email,
            "smtp://mail.blackhole.test:25",
            vec!["oncall@example.test".into()],
        ),
    )
    .await
    .expect("channel");
    op.put_channel("good", &channel(ChannelKind::Slack, &good.url(), vec![]))
        .await
        .expect("channel");

    let fired = std::time::Instant::now();
    assert_eq!(post_am(&control.url(), &am("dns1", "firing")).await, 200);
    assert!(
        wait_until(Duration::from_secs(3), async || !good.received().is_empty()).await,
        "the reachable channel was not delivered"
    );
    let took = fired.elapsed();
    assert!(took < Duration::from_secs(2), "delivered after {took:?}");

    // Each lost channel has failed at least twice within 1.5 s (the 5 s attempt deadline never
    // came into it), and says why: its host's lookup.
    let retried = wait_until(Duration::from_millis(1500), async || {
        let outbox = op.outbox().await.expect("outbox");
        ["lost-hook", "lost-mail"].iter().all(|name| {
            outbox.iter().any(|o| {
                o.channel == *name
                    && o.attempts >= 2
                    && o.delivered_at.is_none()
                    && o.last_error.as_deref().is_some_and(|e| {
                        e.contains("DNS lookup of") && e.contains("blackhole.test")
                    })
            })
        })
    })
    .await;
    assert!(retried, "{:?}", op.outbox().await);
    assert!(dns.queries() >= 2, "the black hole was never asked");

    // The API answers at once all the while.
    let asked = std::time::Instant::now();
    op.alerts(true).await.expect("alerts");
    assert!(asked.elapsed() < Duration::from_millis(500));
    control.kill().await;
}

/// Email over TLS: `smtp+starttls://` requires STARTTLS and checks the relay's certificate
/// (trusted through `--smtp-ca`), `smtp://` upgrades when the relay offers STARTTLS, and a relay
/// without STARTTLS never gets the message in clear when TLS is required.
#[tokio::test]
async fn email_goes_over_starttls_and_never_in_clear_when_tls_is_required() {
    let secure = SmtpSink::start_tls().await.expect("tls relay");
    let plain = SmtpSink::start().await.expect("plain relay");
    let ca = secure.cert_pem.clone().expect("certificate").into_bytes();
    assert!(
        rampart_control::Settings::default()
            .with_smtp_ca(b"not a certificate".to_vec())
            .is_err(),
        "a bad --smtp-ca is refused at start"
    );
    let control = spawn_tuned(
        &temp("starttls"),
        "127.0.0.1:0",
        Duration::from_millis(300),
        |c| c.with_smtp_ca(ca).expect("a PEM certificate"),
    )
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let mail = mail_channel;
    let port = |sink: &SmtpSink| sink.addr.port();
    op.put_channel(
        "required",
        &mail(format!("smtp+starttls://127.0.0.1:{}", port(&secure))),
    )
    .await
    .expect("channel");
    op.put_channel(
        "opportunistic",
        &mail(format!("smtp://localhost:{}", port(&secure))),
    )
    .await
    .expect("channel");
    op.put_channel(
        "no-tls-offered",
        &mail(format!("smtp+starttls://127.0.0.1:{}", port(&plain))),
    )
    .await
    .expect("channel");
    let refused = op
        .put_channel("bad", &mail("imap://127.0.0.1:25".into()))
        .await
        .expect_err("not an SMTP URL");
    assert!(
        refused.to_string().contains("smtp+starttls://"),
        "{refused}"
    );

    assert_eq!(post_am(&control.url(), &am("tls1", "firing")).await, 200);
    assert!(
        wait_until(Duration::from_secs(5), async || secure.mails().len() >= 2).await,
        "{:?}",
        op.outbox().await
    );
    assert!(
        secure.mails().iter().all(|m| m.tls),
        "both arrived after STARTTLS"
    );
    let refusing = wait_until(Duration::from_secs(5), async || {
        op.outbox().await.expect("outbox").iter().any(|o| {
            o.channel == "no-tls-offered"
                && o.attempts >= 1
                && o.last_error
                    .as_deref()
                    .is_some_and(|e| e.to_ascii_lowercase().contains("tls"))
        })
    })
    .await;
    assert!(refusing, "{:?}", op.outbox().await);
    assert!(plain.mails().is_empty(), "nothing in clear");
    control.kill().await;
}

/// The relay's certificate is checked: without `--smtp-ca`, a relay whose certificate chains
/// to no trusted root never gets the message, over STARTTLS or in clear, and the outbox says
/// why.
#[tokio::test]
async fn an_smtp_relay_whose_certificate_does_not_chain_gets_nothing() {
    let secure = SmtpSink::start_tls().await.expect("tls relay");
    let control = spawn_tuned(
        &temp("untrusted-relay"),
        "127.0.0.1:0",
        Duration::from_millis(300),
        |c| c,
    )
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    op.put_channel(
        "required",
        &mail_channel(format!("smtp+starttls://127.0.0.1:{}", secure.addr.port())),
    )
    .await
    .expect("channel");
    assert_eq!(
        post_am(&control.url(), &am("untrusted", "firing")).await,
        200
    );
    let refused = wait_until(Duration::from_secs(5), async || {
        op.outbox().await.expect("outbox").iter().any(|o| {
            o.channel == "required"
                && o.attempts >= 1
                && o.last_error
                    .as_deref()
                    .is_some_and(|e| e.to_ascii_lowercase().contains("certificate"))
        })
    })
    .await;
    assert!(refused, "{:?}", op.outbox().await);
    assert!(
        secure.mails().is_empty(),
        "an untrusted relay got the message"
    );
    control.kill().await;
}

/// An email channel to the on-call address through the relay at `url`.
fn mail_channel(url: String) -> ChannelSpec {
    ChannelSpec {
        kind: ChannelKind::Email,
        url,
        routing_key: None,
        secret: None,
        to: vec!["oncall@example.test".into()],
        from: Some("rampart@example.test".into()),
        severities: vec![],
    }
}
