//! Subscribers: an address or URL checked, unconfirmed until the link is followed, and what
//! each delivery carries (built from the incident as it is then).

use super::*;
use std::sync::Arc;

use crate::error::ControlError;

/// The page's subscribers: added (a confirmation queued), and what each delivery carries.
pub struct Subscribers {
    pub(crate) store: crate::store::Store,
    pub(crate) notify: Arc<crate::notify::NotifySettings>,
    pub(crate) status_page: Arc<StatusPage>,
    pub(crate) incidents: Arc<crate::alerting::Incidents>,
    /// Looks up webhook hosts when they subscribe (deadline-bound).
    pub(crate) resolver: rampart_net::Resolver,
}

impl Subscribers {
    /// Adds a subscriber: confirmed at once when an operator adds it, otherwise a
    /// confirmation is sent first. The answer that creates a webhook subscriber carries its
    /// signing secret.
    pub async fn subscribe(
        &self,
        kind: SubscriberKind,
        target: &str,
        confirmed: bool,
        actor: &str,
    ) -> Result<Subscriber, ControlError> {
        let target = target.trim();
        match kind {
            SubscriberKind::Email => {
                target.parse::<lettre::message::Mailbox>().map_err(|e| {
                    ControlError::Invalid(format!("email: {target:?} is not an email address: {e}"))
                })?;
            }
            SubscriberKind::Webhook => {
                let uri = target.parse::<http::Uri>().ok().filter(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
                let Some(uri) = uri else {
                    return Err(ControlError::Invalid(format!(
                        "webhook: {target:?} is not an http:// or https:// URL"
                    )));
                };
                if !self.notify.private_webhooks {
                    self.public_host(uri.host().unwrap_or_default())
                        .await
                        .map_err(|why| ControlError::Invalid(format!("webhook: {why}")))?;
                }
            }
        }
        let (row, created) = self
            .store
            .add_subscriber(kind, target, confirmed, actor)
            .await?;
        self.notify.wake();
        let mut s = row.subscriber;
        if created && kind == SubscriberKind::Webhook {
            s.secret = Some(row.secret);
        }
        Ok(s)
    }

    /// Whether a webhook host is public: an address literal by its value, a name by every
    /// address it resolves to now (delivery checks again, on the addresses it connects to).
    async fn public_host(&self, host: &str) -> Result<(), String> {
        let refused = |what: &str| {
            Err(format!(
                "{what} is not a public address; subscriber webhooks go only to public ones (an operator may allow private ones with --allow-private-webhooks)"
            ))
        };
        if let Some(ip) = rampart_net::public::address_literal(host) {
            return if rampart_net::is_public(ip) {
                Ok(())
            } else {
                refused(&ip.to_string())
            };
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return refused(&name);
        }
        let all = self
            .resolver
            .lookup(&name)
            .await
            .map_err(|e| e.to_string())?;
        match all.iter().find(|ip| !rampart_net::is_public(**ip)) {
            Some(ip) => refused(&format!("{name} ({ip})")),
            None => Ok(()),
        }
    }

    /// Confirms the subscription a link's token names; false if no subscription has it.
    pub async fn confirm(&self, token: &str) -> Result<bool, ControlError> {
        Ok(self.store.confirm_subscriber(token.trim()).await?.is_some())
    }

    /// Ends the subscription a link's token names; false if no subscription has it.
    pub async fn unsubscribe(&self, token: &str) -> Result<bool, ControlError> {
        Ok(self.store.unsubscribe(token.trim()).await?.is_some())
    }

    pub async fn list(&self) -> Result<Vec<Subscriber>, ControlError> {
        Ok(self.store.subscribers().await?)
    }

    /// Where and what to send a subscriber's notification; `Err` with the reason when it can no
    /// longer be sent (unknown or unsubscribed subscriber, incident gone).
    pub(crate) async fn delivery(
        &self,
        id: &str,
        n: &crate::notify::Notification,
    ) -> Result<
        Result<(rampart_api::ChannelSpec, Option<crate::notify::Message>), String>,
        ControlError,
    > {
        let Some(row) = (match id.parse::<i64>() {
            Ok(id) => self.store.subscriber(id).await?,
            Err(_) => None,
        }) else {
            return Ok(Err(format!("no subscriber {id}")));
        };
        if row.subscriber.unsubscribed {
            return Ok(Err("unsubscribed".into()));
        }
        let url = self.status_page.public_url();
        let unsubscribe = format!("{url}/unsubscribe?token={}", row.token);
        let message = match n.action {
            crate::notify::NotifyAction::Confirm => {
                let confirm = format!("{url}/subscribe/confirm?token={}", row.token);
                crate::notify::Message {
                    json: json!({
                        "type": "subscription.confirm",
                        "confirm_url": confirm,
                        "unsubscribe_url": unsubscribe,
                        "signing_secret": row.secret,
                        "page": { "id": PAGE_ID, "name": self.status_page.page.name, "url": url },
                    }),
                    subject: format!(
                        "Confirm your subscription to {}",
                        self.status_page.page.name
                    ),
                    text: format!(
                        "Someone (hopefully you) subscribed this address to {} at {url}.\n\nConfirm: {confirm}\n\nIf it was not you, ignore this message or unsubscribe: {unsubscribe}\n",
                        self.status_page.page.name
                    ),
                }
            }
            _ => {
                let Some(incident_id) = n.details.get("incident").and_then(|i| i.as_i64()) else {
                    return Ok(Err("not an incident notification".into()));
                };
                let snapshot = self.status_page.snapshot().await?;
                let incident = match self.incidents.get(incident_id).await {
                    Ok(i) => i,
                    Err(ControlError::NotFound(m)) => return Ok(Err(m)),
                    Err(e) => return Err(e),
                };
                let latest = incident.updates.last();
                crate::notify::Message {
                    json: subscriber_payload(&snapshot, &incident, &unsubscribe),
                    subject: format!(
                        "[{}] {} — {}",
                        snapshot.name,
                        incident.title,
                        incident.status.as_str()
                    ),
                    text: format!(
                        "{}\n\nStatus: {}\n{}\n\n{}/incidents/{}\n\nUnsubscribe: {unsubscribe}\n",
                        incident.title,
                        incident.status.as_str(),
                        latest.map(|u| u.body.as_str()).unwrap_or_default(),
                        url,
                        incident.id
                    ),
                }
            }
        };
        let spec = rampart_api::ChannelSpec {
            kind: match row.subscriber.kind {
                SubscriberKind::Webhook => rampart_api::ChannelKind::Webhook,
                SubscriberKind::Email => rampart_api::ChannelKind::Email,
            },
            url: match row.subscriber.kind {
                SubscriberKind::Webhook => row.subscriber.target.clone(),
                SubscriberKind::Email => self.notify.smtp.clone(),
            },
            routing_key: None,
            secret: Some(row.secret.clone()),
            to: match row.subscriber.kind {
                SubscriberKind::Email => vec![row.subscriber.target.clone()],
                SubscriberKind::Webhook => vec![],
            },
            from: None,
            severities: vec![],
        };
        Ok(Ok((spec, Some(message))))
    }
}
