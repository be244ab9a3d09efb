//! Delivery: the `Sender` that speaks each channel kind (HTTPS through the deadline-bound
//! resolver, SMTP with STARTTLS or TLS), and the outbox worker that drains the outbox in order
//! per channel.

use super::*;

/// An `http(s)` URL whose host, if it is an address literal, is public.
fn public_literal(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match rampart_net::public::address_literal(uri.host().unwrap_or_default()) {
        Some(ip) if !rampart_net::is_public(ip) => Err(format!(
            "{ip} is not a public address; subscriber webhooks go only to public ones"
        )),
        _ => Ok(()),
    }
}

/// Delivers notifications to channels; every attempt has a deadline, and so does every DNS
/// lookup inside it (the gateway's non-blocking resolver).
#[derive(Clone)]
pub struct Sender {
    /// For operators' channels: any address they configured.
    client: HttpsClient,
    /// For what strangers asked for (subscriber webhooks): public addresses only, checked on
    /// the very addresses it connects to.
    public_client: HttpsClient,
    resolver: Resolver,
    timeout: Duration,
    /// A PEM certificate SMTP relays may chain to, besides the web's roots.
    smtp_ca: Option<Arc<Vec<u8>>>,
    /// Subscriber webhooks may be on private addresses (`--allow-private-webhooks`).
    private_webhooks: bool,
}

impl Sender {
    pub fn new(settings: &super::NotifySettings, resolver: Resolver) -> Sender {
        let timeout = settings.timeout;
        let public = if settings.private_webhooks {
            resolver.clone()
        } else {
            resolver.public_only()
        };
        Sender {
            client: https_client(&resolver, timeout),
            public_client: https_client(&public, timeout),
            resolver,
            timeout,
            smtp_ca: settings.smtp_ca.clone(),
            private_webhooks: settings.private_webhooks,
        }
    }

    /// Sends what a status-page subscriber gets. A webhook goes only to a public address
    /// (unless private ones are allowed): an address literal is checked here, a name on each
    /// address it resolves to.
    pub async fn send_to_subscriber(
        &self,
        spec: &ChannelSpec,
        n: &Notification,
        custom: Option<&Message>,
    ) -> Outcome {
        if spec.kind == ChannelKind::Email {
            return self.send(spec, n, custom).await;
        }
        if !self.private_webhooks
            && let Err(why) = public_literal(&spec.url)
        {
            return Outcome::Refused(why);
        }
        self.within_deadline(self.http(&self.public_client, spec, n, custom))
            .await
    }

    /// Sends `n` to a channel; `custom` replaces the channel kind's own rendering (status-page
    /// subscribers get Statuspage-shaped payloads).
    pub async fn send(
        &self,
        spec: &ChannelSpec,
        n: &Notification,
        custom: Option<&Message>,
    ) -> Outcome {
        let attempt = async {
            match spec.kind {
                ChannelKind::Email => self.email(spec, n, custom).await,
                _ => self.http(&self.client, spec, n, custom).await,
            }
        };
        self.within_deadline(attempt).await
    }

    async fn within_deadline(
        &self,
        attempt: impl std::future::Future<Output = Outcome>,
    ) -> Outcome {
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                error: format!("no answer within {:?}", self.timeout),
                after: None,
            },
        }
    }

    async fn http(
        &self,
        client: &HttpsClient,
        spec: &ChannelSpec,
        n: &Notification,
        custom: Option<&Message>,
    ) -> Outcome {
        let body = match (custom, spec.kind) {
            (Some(m), _) => m.json.clone(),
            (None, ChannelKind::Pagerduty) => pagerduty_body(spec, n),
            (None, ChannelKind::Slack) => slack_body(n),
            (None, _) => serde_json::to_value(n).unwrap_or_default(),
        }
        .to_string()
        .into_bytes();
        let mut req = Request::post(&spec.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "rampart-control")
            .header("Idempotency-Key", &n.key);
        if let (ChannelKind::Webhook, Some(secret)) = (spec.kind, &spec.secret) {
            let ts = now_ms() / 1000;
            req = req.header("X-Rampart-Timestamp", ts.to_string()).header(
                "X-Rampart-Signature",
                format!("sha256={}", signature(secret, ts, &body)),
            );
        }
        let req = match req.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(format!("building the request: {e}")),
        };
        let resp = match client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    error: error_chain(&e),
                    after: None,
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // The answer's body is read (bounded) so the connection can be reused, and dropped:
        // the outbox keeps the status, never what a receiver wrote.
        let _ = Limited::new(resp.into_body(), 4096).collect().await;
        if status.is_success() {
            Outcome::Delivered
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Outcome::Retry {
                error: status.to_string(),
                after: retry_after,
            }
        } else {
            Outcome::Refused(status.to_string())
        }
    }

    async fn email(
        &self,
        spec: &ChannelSpec,
        n: &Notification,
        custom: Option<&Message>,
    ) -> Outcome {
        use lettre::AsyncTransport;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        let target = match SmtpTarget::parse(&spec.url) {
            Ok(t) => t,
            Err(e) => return Outcome::Refused(e),
        };
        // Certificates name the relay's host, whatever address it resolves to.
        let mut params = TlsParameters::builder(target.host.clone());
        if let Some(pem) = &self.smtp_ca {
            match Certificate::from_pem(pem) {
                Ok(ca) => params = params.add_root_certificate(ca),
                Err(e) => return Outcome::Refused(format!("--smtp-ca: {e}")),
            }
        }
        let params = match params.build() {
            Ok(p) => p,
            Err(e) => return Outcome::Refused(format!("TLS for {}: {e}", target.host)),
        };
        let tls = match target.tls {
            SmtpTls::Opportunistic => Tls::Opportunistic(params),
            SmtpTls::Required => Tls::Required(params),
            SmtpTls::Wrapper => Tls::Wrapper(params),
        };
        let (host, port) = (target.host, target.port);
        let from = spec
            .from
            .clone()
            .unwrap_or_else(|| "rampart <rampart@localhost>".into());
        let mut message = lettre::Message::builder()
            .message_id(Some(format!("<{}@rampart>", n.key)))
            .subject(custom.map_or_else(|| email_subject(n), |m| m.subject.clone()));
        match from.parse() {
            Ok(f) => message = message.from(f),
            Err(e) => return Outcome::Refused(format!("from {from:?}: {e}")),
        }
        for to in &spec.to {
            match to.parse() {
                Ok(t) => message = message.to(t),
                Err(e) => return Outcome::Refused(format!("to {to:?}: {e}")),
            }
        }
        let message = match message.body(custom.map_or_else(|| email_text(n), |m| m.text.clone())) {
            Ok(m) => m,
            Err(e) => return Outcome::Refused(format!("building the email: {e}")),
        };
        // lettre would resolve with the system's blocking resolver: hand it the addresses, one
        // after the other until one takes the message (a name may have v6 and v4 addresses).
        let ips = match self.resolver.lookup(&host).await {
            Ok(ips) => ips,
            Err(e) => {
                return Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                };
            }
        };
        let mut last = format!("DNS lookup of {host} returned no address");
        for ip in ips {
            let transport =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                    ip.to_string(),
                )
                .port(port)
                .tls(tls.clone())
                .timeout(Some(self.timeout))
                .build();
            match transport.send(message.clone()).await {
                Ok(_) => return Outcome::Delivered,
                Err(e) if e.is_permanent() => return Outcome::Refused(e.to_string()),
                Err(e) => last = format!("{ip}: {e}"),
            }
        }
        Outcome::Retry {
            error: last,
            after: None,
        }
    }
}

/// The outbox's sender: alert notifications to their channels, the page's to its subscribers.
pub struct Notifier {
    pub store: crate::store::Store,
    pub settings: Arc<super::NotifySettings>,
    pub subscribers: Arc<crate::status::Subscribers>,
}

/// The outbox's two lanes, each delivered by its own loop: whatever strangers queue through the
/// public page (subscriber notifications) can never hold up a page to an operator's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Alert notifications to the channels operators configured.
    Operators,
    /// Status-page subscribers: at most `SUBSCRIBER_BATCH` at once, `SUBSCRIBER_ATTEMPTS`
    /// attempts each.
    Subscribers,
}

/// Subscriber notifications in flight at once.
const SUBSCRIBER_BATCH: usize = 32;
/// Attempts at one subscriber notification before it is given up.
pub const SUBSCRIBER_ATTEMPTS: u32 = 5;

impl Lane {
    fn of(channel: &str) -> Lane {
        if channel.starts_with("subscriber:") {
            Lane::Subscribers
        } else {
            Lane::Operators
        }
    }
}

impl Notifier {
    /// Delivers the outbox until the task is dropped: in each lane, the oldest pending
    /// notification of every channel whose next attempt is due, channels in parallel.
    pub async fn run(self, resolver: Resolver) {
        let sender = Sender::new(&self.settings, resolver);
        tokio::join!(
            self.lane(Lane::Operators, &sender),
            self.lane(Lane::Subscribers, &sender)
        );
    }

    async fn lane(&self, lane: Lane, sender: &Sender) {
        let mut woken = self.settings.outbox_wake.subscribe();
        loop {
            woken.borrow_and_update();
            let idle = match self.deliver_due(lane, sender).await {
                Ok(0) => Duration::from_millis(200),
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::error!(error = %e, ?lane, "outbox");
                    Duration::from_secs(1)
                }
            };
            if !idle.is_zero() {
                tokio::select! {
                    _ = woken.changed() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        }
    }

    /// One pass of a lane; returns how many notifications left the queue.
    async fn deliver_due(&self, lane: Lane, sender: &Sender) -> Result<usize, crate::ControlError> {
        let store = &self.store;
        let heads = store.outbox_heads().await?;
        let now = now_ms();
        let mut due: Vec<Pending> = heads
            .into_iter()
            .filter(|p| p.next_at_ms <= now && Lane::of(&p.channel) == lane)
            .collect();
        if lane == Lane::Subscribers {
            due.truncate(SUBSCRIBER_BATCH);
        }
        if due.is_empty() {
            return Ok(0);
        }
        let channels = store.channels().await?;
        let mut work = vec![];
        for p in due {
            let target = match p.channel.strip_prefix("subscriber:") {
                Some(id) => self.subscribers.delivery(id, &p.notification).await?,
                None => channels
                    .iter()
                    .find(|c| c.0 == p.channel)
                    .map(|c| (c.1.clone(), None))
                    .ok_or_else(|| format!("channel {:?} no longer exists", p.channel)),
            };
            work.push((p, target));
        }
        let attempts = work.into_iter().map(|(p, target)| async move {
            let outcome = match (&target, lane) {
                (Ok((spec, custom)), Lane::Operators) => {
                    sender.send(spec, &p.notification, custom.as_ref()).await
                }
                (Ok((spec, custom)), Lane::Subscribers) => {
                    sender
                        .send_to_subscriber(spec, &p.notification, custom.as_ref())
                        .await
                }
                (Err(why), _) => Outcome::Refused(why.clone()),
            };
            (p, outcome)
        });
        let mut left = 0;
        for (p, outcome) in futures_util::future::join_all(attempts).await {
            let attempts = p.attempts + 1;
            let outcome = match outcome {
                Outcome::Retry { error, .. }
                    if lane == Lane::Subscribers && attempts >= SUBSCRIBER_ATTEMPTS =>
                {
                    Outcome::Refused(format!("{error} (gave up after {attempts} attempts)"))
                }
                other => other,
            };
            match outcome {
                Outcome::Delivered => {
                    store.outbox_done(&p, None, attempts).await?;
                    tracing::info!(channel = %p.channel, key = %p.notification.key, attempts, "notification delivered");
                    left += 1;
                }
                Outcome::Refused(error) => {
                    store.outbox_done(&p, Some(&error), attempts).await?;
                    tracing::error!(channel = %p.channel, key = %p.notification.key, %error, "notification refused; giving up");
                    left += 1;
                }
                Outcome::Retry { error, after } => {
                    let delay = self.settings.backoff.delay(attempts, after);
                    store
                        .outbox_retry(&p, attempts, now_ms() + delay.as_millis() as u64, &error)
                        .await?;
                    tracing::warn!(channel = %p.channel, key = %p.notification.key, attempts, ?delay, %error, "notification not delivered; will retry");
                }
            }
        }
        Ok(left)
    }
}
