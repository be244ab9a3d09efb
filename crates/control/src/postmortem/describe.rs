//! Each recorded event in words, for the postmortem's timeline.

use rampart_api::Event;
use rampart_model::version::short;

fn s<'a>(e: &'a Event, key: &str) -> &'a str {
    e.data.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// One line of the timeline for an event, in words.
pub fn describe(e: &Event) -> String {
    describe_pipeline(e)
        .or_else(|| describe_release(e))
        .or_else(|| describe_fleet(e))
        .or_else(|| describe_ops(e))
        .unwrap_or_else(|| format!("{} {} by {}", e.kind, e.subject, e.actor))
}

/// Versions, deploys, approvals and rollbacks.
fn describe_pipeline(e: &Event) -> Option<String> {
    let d = &e.data;
    let line = match e.kind.as_str() {
        "version.created" => {
            let mut line = format!(
                "{} pushed version {}: \"{}\"",
                e.actor,
                short(&e.subject),
                s(e, "message")
            );
            if let Some(bg) = d.get("break_glass") {
                let findings = bg
                    .get("overridden")
                    .and_then(|f| f.as_array())
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                line.push_str(&format!(
                    " (validation findings overridden with break-glass, reason \"{}\": {findings})",
                    bg.get("reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or_default()
                ));
            }
            line
        }
        "deploy" | "deploy.break_glass" => {
            let mut line = format!(
                "{} deployed {} to {}",
                e.actor,
                short(s(e, "version")),
                e.subject
            );
            if let Some(bg) = d.get("break_glass") {
                line.push_str(&format!(
                    " with break-glass (\"{}\")",
                    bg.get("reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or_default()
                ));
            }
            line
        }
        "approval.requested" => format!(
            "{} asked for a second person's approval to deploy {} to {}",
            e.actor,
            short(s(e, "version")),
            e.subject
        ),
        "approval.granted" => format!("{} approved the deploy to {}", e.actor, e.subject),
        "rollback" => format!(
            "{} rolled {} back to {}",
            e.actor,
            e.subject,
            short(s(e, "to"))
        ),
        _ => return None,
    };
    Some(line)
}

/// Releases in waves and their gates.
fn describe_release(e: &Event) -> Option<String> {
    let d = &e.data;
    let line = match e.kind.as_str() {
        "release.started" => format!(
            "release {} of {} started in {} ({} waves{})",
            d["release"],
            short(s(e, "version")),
            e.subject,
            d["waves"],
            d["policy"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        ),
        "release.overdue" => format!(
            "release {} wave {} stayed inconclusive past its policy's deadline; the policy said {}: {}",
            d["release"],
            d["wave"].as_u64().map(|w| w + 1).unwrap_or_default(),
            s(e, "then"),
            s(e, "detail")
        ),
        "policy.set" => {
            let changes: Vec<&str> = d["changes"]
                .as_array()
                .map(|c| c.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            format!(
                "{} set {}'s rollout policy r{}: {}",
                e.actor,
                e.subject,
                d["revision"],
                changes.join("; ")
            )
        }
        "release.wave" => format!("release {} entered wave {}", d["release"], d["wave"]),
        "release.promoted" | "release.skipped" => format!(
            "{} {} release {} past wave {}: {}",
            e.actor,
            if e.kind == "release.skipped" {
                "skipped"
            } else {
                "promoted"
            },
            d["release"],
            d["from_wave"],
            s(e, "reason")
        ),
        "gate.verdict" => {
            let v = &d["verdict"];
            format!(
                "release {} wave {} gate: {} {}{}",
                d["release"],
                d["wave"],
                v.get("verdict").and_then(|x| x.as_str()).unwrap_or("?"),
                v.get("gate")
                    .and_then(|x| x.as_str())
                    .map(|g| format!("({g}) "))
                    .unwrap_or_default(),
                v.get("detail").and_then(|x| x.as_str()).unwrap_or_default()
            )
        }
        "release.rolled_back" => format!(
            "{} rolled release {} back in {}: {}",
            if e.actor == "control" {
                "rampart".to_owned()
            } else {
                e.actor.clone()
            },
            d["release"],
            e.subject,
            s(e, "reason")
        ),
        "release.succeeded_all_waves" => {
            format!(
                "release {} passed every wave in {}",
                d["release"], e.subject
            )
        }
        "release.succeeded" => format!(
            "{} completed in {}: new last-known-good",
            short(s(e, "version")),
            e.subject
        ),
        _ => return None,
    };
    Some(line)
}

/// Instances and environments.
fn describe_fleet(e: &Event) -> Option<String> {
    let d = &e.data;
    let line = match e.kind.as_str() {
        "instance.applied" => match s(e, "previous") {
            "" => format!("{} applied {}", e.subject, short(s(e, "version"))),
            previous => format!(
                "{} applied {} (was {})",
                e.subject,
                short(s(e, "version")),
                short(previous)
            ),
        },
        "instance.registered" => format!("{} joined {}", e.subject, s(e, "environment")),
        "environment.converged" => format!(
            "every instance of {} runs {} ({} instances)",
            e.subject,
            short(s(e, "version")),
            d["instances"]
        ),
        _ => return None,
    };
    Some(line)
}

/// Alerts, notifications and incidents.
fn describe_ops(e: &Event) -> Option<String> {
    let line = match e.kind.as_str() {
        "alert.fired" => format!("alert fired ({}): {}", s(e, "severity"), s(e, "summary")),
        "alert.resolved" => format!("alert resolved: {}", s(e, "summary")),
        "notification.delivered" => {
            let verb = if s(e, "action") == "resolve" {
                "told"
            } else {
                "paged"
            };
            format!(
                "{verb} {} ({}): {}",
                e.subject,
                s(e, "action"),
                s(e, "summary")
            )
        }
        "notification.failed" => {
            format!("notifying {} failed for good: {}", e.subject, s(e, "error"))
        }
        "incident.opened" => format!("incident opened ({}): {}", s(e, "status"), s(e, "title")),
        "incident.updated" | "incident.resolved" => {
            format!("incident {}: {}", s(e, "status"), s(e, "body"))
        }
        "incident.action_item" => format!(
            "action item \"{}\" ({}, {})",
            s(e, "title"),
            s(e, "owner"),
            s(e, "state")
        ),

        _ => return None,
    };
    Some(line)
}
