//! The Alertmanager receiver (webhook version 4): firing alerts fire, resolved ones resolve,
//! keyed by fingerprint; a payload is checked whole before any of it applies.

use super::*;

impl Alerting {
    /// Alerts from Alertmanager's webhook (version 4): firing ones fire, resolved ones resolve,
    /// keyed by fingerprint. `severity` label critical or page pages; anything else is a ticket.
    pub async fn alertmanager(&self, payload: serde_json::Value) -> Result<usize, ControlError> {
        let alerts = payload
            .get("alerts")
            .and_then(|a| a.as_array())
            .ok_or_else(|| {
                ControlError::Invalid(
                    "alerts: expected Alertmanager's webhook payload with an \"alerts\" list"
                        .into(),
                )
            })?;
        // Every alert is checked before any is applied: a bad payload changes nothing.
        let mut actions: Vec<(NewAlert, Option<IncidentSeed>)> = vec![];
        let mut resolutions: Vec<String> = vec![];
        for (i, a) in alerts.iter().enumerate() {
            match am_alert(i, a, self.book.last_environment()).map_err(ControlError::Invalid)? {
                AmAlert::Fire(fire) => actions.push((fire.0, Some(fire.1))),
                AmAlert::Resolve(key) => resolutions.push(key),
            }
        }
        let maintained = self.maintenances.under_maintenance().await?;
        actions.retain(|(a, _)| {
            let component = a.data.get("component").and_then(|c| c.as_str());
            !component.is_some_and(|c| maintained.iter().any(|m| m == c))
        });
        let mut changed = 0;
        for (alert, seed) in actions {
            changed += usize::from(self.fire(alert, seed).await?);
        }
        for key in resolutions {
            changed += usize::from(self.resolve(&key).await?);
        }
        Ok(changed)
    }
}

/// One alert of an Alertmanager payload, read.
enum AmAlert {
    Fire(Box<(NewAlert, IncidentSeed)>),
    Resolve(String),
}

/// Reads the `i`th alert of a payload: what is wrong with it says where.
fn am_alert(i: usize, a: &serde_json::Value, environment: &str) -> Result<AmAlert, String> {
    let shape = if !a.is_object() {
        Some(("", "an object"))
    } else if !a.get("labels").is_some_and(|l| l.is_object()) {
        Some((".labels", "an object of labels"))
    } else if a.get("annotations").is_some_and(|n| !n.is_object()) {
        Some((".annotations", "an object"))
    } else if a.get("fingerprint").is_some_and(|f| !f.is_string()) {
        Some((".fingerprint", "a string"))
    } else {
        None
    };
    if let Some((field, want)) = shape {
        return Err(format!("alerts[{i}]{field}: expected {want}"));
    }
    let labels = a.get("labels").cloned().unwrap_or_default();
    let label = |k: &str| labels.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let name = label("alertname");
    if name.is_empty() {
        return Err(format!(
            "alerts[{i}].labels.alertname: every alert needs a name"
        ));
    }
    let fingerprint = a
        .get("fingerprint")
        .and_then(|f| f.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| labels.to_string());
    let key = format!("alertmanager:{fingerprint}");
    match a.get("status").and_then(|s| s.as_str()) {
        Some("firing") => {
            let severity = match label("severity") {
                "critical" | "page" => Severity::Page,
                _ => Severity::Ticket,
            };
            let summary = a
                .pointer("/annotations/summary")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{name} firing"));
            let component = label("component").to_owned();
            let seed = IncidentSeed {
                title: summary.clone(),
                status: IncidentStatus::Investigating,
                impact: Impact::Major,
                environment: Some(environment.to_owned()),
                components: if component.is_empty() {
                    vec![]
                } else {
                    vec![component.clone()]
                },
                cause: serde_json::json!({ "alertmanager": name }),
                started_ms: a
                    .get("startsAt")
                    .and_then(|s| s.as_str())
                    .and_then(parse_ms)
                    .unwrap_or_else(now_ms),
                first_event: None,
                body: summary.clone(),
            };
            let mut data =
                serde_json::json!({ "labels": labels, "annotations": a.get("annotations") });
            if !component.is_empty() {
                data["component"] = serde_json::Value::String(component);
            }
            let alert = NewAlert {
                key,
                name: name.to_owned(),
                severity,
                source: "alertmanager",
                summary,
                data,
            };
            Ok(AmAlert::Fire(Box::new((alert, seed))))
        }
        Some("resolved") => Ok(AmAlert::Resolve(key)),
        other => Err(format!(
            "alerts[{i}].status: expected \"firing\" or \"resolved\", got {other:?}"
        )),
    }
}
