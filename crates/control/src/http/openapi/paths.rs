//! Every operation of the API, as the document lists it. (Long because it is a list: one entry
//! per operation, grouped by resource.)

use rampart_api::*;
use serde_json::json;

use super::{Doc, Op, Param};

const ENV: Param = ("env", "path", "string", "environment name");
const RELEASE: Param = ("id", "path", "integer", "release id");
const INCIDENT: Param = ("id", "path", "integer", "incident id");
const INSTANCE: Param = ("id", "path", "string", "instance id");

fn created(what: &str) -> String {
    format!("{what} (201)")
}

/// Versions, environments, approvals, events, releases and the agent protocol.
pub(super) fn core(d: &mut Doc) {
    versions(d);
    environments(d);
    releases(d);
    agents(d);
    tokens(d);
}

/// API tokens: approvers list, create and revoke them.
fn tokens(d: &mut Doc) {
    let (list, spec, created_token) = (
        d.list::<TokenInfo>(),
        d.schema::<TokenSpec>(),
        d.json::<NewToken>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/tokens",
        summary: "API tokens, without their secrets",
        role: Some("approver"),
        params: &[],
        body: None,
        ok: ("200", "tokens", list),
        errors: &[],
    });
    d.op(Op {
        method: "post",
        path: "/v1/tokens",
        summary: "Create a token; its secret is in this answer only",
        role: Some("approver"),
        params: &[],
        body: Some(spec),
        ok: ("201", &created("created, with its secret"), created_token),
        errors: &[
            ("409", "a token has that name"),
            (
                "422",
                "a bad name, or environments on a token that is not an agent's",
            ),
        ],
    });
    d.op(Op {
        method: "delete",
        path: "/v1/tokens/{name}",
        summary: "Revoke a token (bootstrap ones too)",
        role: Some("approver"),
        params: &[("name", "path", "string", "the token's name")],
        body: None,
        ok: ("204", "revoked", None),
        errors: &[
            ("404", "no token has that name"),
            ("409", "revoked already, or the caller's own token"),
        ],
    });
}

/// Versions: push, list, read.
fn versions(d: &mut Doc) {
    let (push, versions, version_doc) = (
        d.schema::<PushRequest>(),
        d.list::<VersionInfo>(),
        d.json::<VersionDocument>(),
    );
    let pushed = d.json::<PushResponse>();
    d.op(Op {
        method: "post",
        path: "/v1/versions",
        summary: "Validate a document and store it as an immutable version",
        role: Some("operator"),
        params: &[],
        body: Some(push),
        ok: ("201", "stored", pushed.clone()),
        errors: &[("422", "invalid document, or failed semantic checks")],
    });
    d.also(
        "post",
        "/v1/versions",
        "200",
        "already stored (`created: false`): the existing version",
        pushed,
    );
    d.op(Op {
        method: "get",
        path: "/v1/versions",
        summary: "Versions, newest first",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "versions", versions),
        errors: &[],
    });
    d.op(Op {
        method: "get",
        path: "/v1/versions/{id}",
        summary: "A version and its canonical document",
        role: Some("viewer"),
        params: &[("id", "path", "string", "version id (64 hex characters)")],
        body: None,
        ok: ("200", "the version", version_doc),
        errors: &[("404", "no such version")],
    });
}

/// Environments, deploy, rollback, restarts, approvals and the event log.
fn environments(d: &mut Doc) {
    let envs = d.list::<EnvironmentStatus>();
    let env = d.json::<EnvironmentStatus>();
    d.op(Op {
        method: "get",
        path: "/v1/environments",
        summary: "Environments in pipeline order, with their instances",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "environments", envs),
        errors: &[],
    });
    let deploy = d.schema::<DeployRequest>();
    d.op(Op { method: "post", path: "/v1/environments/{env}/deploy", summary: "Make a version desired (pipeline order and approvals enforced)", role: Some("operator"), params: &[ENV], body: Some(deploy),
        ok: ("200", "desired version set", env.clone()),
        errors: &[("409", "pipeline: not yet succeeded in the previous environment; approval_required; or a release is running"), ("404", "no such environment or version"), ("422", "an empty break-glass reason")] });
    let rollback = d.schema::<RollbackRequest>();
    d.op(Op { method: "post", path: "/v1/environments/{env}/rollback", summary: "Make the last-known-good (or `to`) desired at once; never blocked by forward checks", role: Some("operator"), params: &[ENV], body: Some(rollback),
        ok: ("200", "rolled back", env.clone()), errors: &[("409", "no last-known-good yet and no `to`"), ("404", "no such environment or version")] });
    let (restart, restart_status) = (d.schema::<RestartRequest>(), d.json::<RestartStatus>());
    d.op(Op {
        method: "post",
        path: "/v1/environments/{env}/restart",
        summary: "Start a rolling restart of the environment's gateways, batch by batch",
        role: Some("operator"),
        params: &[ENV],
        body: Some(restart),
        ok: ("202", "started", restart_status.clone()),
        errors: &[
            (
                "409",
                "a release or another restart is running, or no live gateway",
            ),
            ("422", "bad batch"),
            ("404", "no such environment"),
        ],
    });
    d.op(Op {
        method: "get",
        path: "/v1/environments/{env}/restart",
        summary: "The running or last rolling restart",
        role: Some("viewer"),
        params: &[ENV],
        body: None,
        ok: ("200", "its progress", restart_status),
        errors: &[("404", "none since the control plane started")],
    });
    let approvals = d.list::<Approval>();
    d.op(Op {
        method: "get",
        path: "/v1/approvals",
        summary: "Deploys waiting for a second person",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "approvals", approvals),
        errors: &[],
    });
    d.op(Op {
        method: "post",
        path: "/v1/approvals/{id}/approve",
        summary: "Approve a pending deploy (not the requester's own); the deploy then happens",
        role: Some("approver"),
        params: &[("id", "path", "integer", "approval id")],
        body: None,
        ok: ("200", "approved and deployed", env),
        errors: &[
            ("404", "no such approval"),
            (
                "409",
                "already approved, or the pipeline refuses the deploy now",
            ),
        ],
    });
    let events = d.list::<Event>();
    d.op(Op {
        method: "get",
        path: "/v1/events",
        summary: "The event log, 1,000 at a time",
        role: Some("viewer"),
        params: &[(
            "after",
            "query",
            "integer",
            "return events with a larger sequence number",
        )],
        body: None,
        ok: ("200", "events", events),
        errors: &[],
    });
}

/// Releases in waves.
fn releases(d: &mut Doc) {
    let (releases, release) = (d.list::<ReleaseStatus>(), d.json::<ReleaseStatus>());
    d.op(Op {
        method: "get",
        path: "/v1/releases",
        summary: "Releases, newest first, with wave, cohort and latest gate verdict",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "releases", releases),
        errors: &[],
    });
    d.op(Op { method: "get", path: "/v1/releases/{id}/picture.svg", summary: "The release as a picture: waves, each instance's version over time, gate verdicts", role: Some("viewer"), params: &[RELEASE], body: None,
        ok: ("200", "the picture", Some(json!({ "image/svg+xml": { "schema": { "type": "string" } } }))), errors: &[("404", "no such release")] });
    d.op(Op {
        method: "post",
        path: "/v1/releases/{id}/{action}",
        summary: "Pause, resume or abort a release (abort rolls its cohort back); promote it past a pause or an inconclusive hold, or skip its current wave, with a reason",
        role: Some("operator"),
        params: &[
            RELEASE,
            (
                "action",
                "path",
                "enum:pause|resume|abort|promote|skip",
                "what to do",
            ),
            (
                "reason",
                "query",
                "string",
                "why (required to promote or skip; recorded)",
            ),
        ],
        body: None,
        ok: ("200", "the release", release),
        errors: &[
            ("404", "no such release"),
            (
                "409",
                "the release has ended, or promote with nothing to promote past",
            ),
            ("422", "promote or skip without a reason"),
        ],
    });
}

/// The agent protocol.
fn agents(d: &mut Doc) {
    let (register, registered) = (d.schema::<RegisterRequest>(), d.json::<RegisterResponse>());
    d.op(Op {
        method: "post",
        path: "/v1/agents/register",
        summary: "Agent protocol: register an instance; returns its credential",
        role: Some("agent"),
        params: &[],
        body: Some(register),
        ok: ("200", "registered", registered),
        errors: &[
            ("404", "no such environment"),
            (
                "409",
                "the instance is live in another environment and cannot join this one",
            ),
            ("422", "an empty or overlong instance id"),
            (
                "503",
                "busy: agent requests are at their bound (`Retry-After`)",
            ),
        ],
    });
    let desired = d.json::<Desired>();
    d.op(Op {
        method: "get",
        path: "/v1/agents/{id}/desired",
        summary: "Agent protocol: long-poll for the desired version",
        role: Some("agent"),
        params: &[
            INSTANCE,
            CREDENTIAL,
            ("current", "query", "string", "the version the agent runs"),
            ("wait_ms", "query", "count", "how long to hold the poll"),
            (
                "restart",
                "query",
                "count",
                "the restart generation the agent knows",
            ),
            (
                "probing",
                "query",
                "count",
                "how many synthetic probes the agent sends now",
            ),
        ],
        body: None,
        ok: (
            "200",
            "the desired version, with its document when it differs from `current`",
            desired,
        ),
        errors: &[
            ("404", "instance not registered"),
            ("503", "busy: long-polls are at their bound (`Retry-After`)"),
        ],
    });
    let report = d.schema::<Report>();
    d.op(Op {
        method: "post",
        path: "/v1/agents/{id}/report",
        summary: "Agent protocol: report once a second",
        role: Some("agent"),
        params: &[INSTANCE, CREDENTIAL],
        body: Some(report),
        ok: ("204", "recorded", None),
        errors: &[
            ("404", "instance not registered"),
            (
                "503",
                "busy: agent requests are at their bound (`Retry-After`)",
            ),
        ],
    });
}

/// The credential an instance's registration returned.
const CREDENTIAL: Param = (
    "x-rampart-instance-credential",
    "header",
    "string",
    "the credential this instance's registration returned",
);

/// Components, channels, alerts, incidents, postmortems, maintenance and subscribers.
pub(super) fn operations(d: &mut Doc) {
    components(d);
    channels(d);
    incidents(d);
    status_page(d);
}

const NAME: Param = ("name", "path", "string", "its name");

/// Status-page components.
fn components(d: &mut Doc) {
    let (components, component, component_spec) = (
        d.list::<Component>(),
        d.json::<Component>(),
        d.schema::<ComponentSpec>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/components",
        summary: "Components with their status",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "components", components),
        errors: &[],
    });
    d.op(Op {
        method: "put",
        path: "/v1/components/{name}",
        summary: "Add or replace a component: its routes, environment and SLO",
        role: Some("operator"),
        params: &[NAME],
        body: Some(component_spec),
        ok: ("200", "the component", component),
        errors: &[("422", "bad SLO, name or environment")],
    });
    d.op(Op {
        method: "delete",
        path: "/v1/components/{name}",
        summary: "Remove a component",
        role: Some("operator"),
        params: &[NAME],
        body: None,
        ok: ("204", "removed", None),
        errors: &[("404", "no such component")],
    });
}

/// Notification channels, the outbox, alerts and the Alertmanager receiver.
fn channels(d: &mut Doc) {
    let (channels, channel, channel_spec) = (
        d.list::<Channel>(),
        d.json::<Channel>(),
        d.schema::<ChannelSpec>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/channels",
        summary: "Notification channels (secrets left out) with pending and failed counts",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "channels", channels),
        errors: &[],
    });
    d.op(Op { method: "put", path: "/v1/channels/{name}", summary: "Add or replace a channel: PagerDuty Events v2, signed webhook, Slack-compatible webhook or SMTP", role: Some("operator"), params: &[NAME], body: Some(channel_spec),
        ok: ("200", "the channel", channel), errors: &[("422", "a URL or field the kind cannot use")] });
    let outbox = d.list::<OutboxEntry>();
    d.op(Op {
        method: "get",
        path: "/v1/outbox",
        summary: "The latest 500 notifications and their delivery state",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "notifications", outbox),
        errors: &[],
    });
    let alerts = d.list::<Alert>();
    d.op(Op {
        method: "get",
        path: "/v1/alerts",
        summary: "Alerts, newest first",
        role: Some("viewer"),
        params: &[("active", "query", "boolean", "true: only firing alerts")],
        body: None,
        ok: ("200", "alerts", alerts),
        errors: &[],
    });
    d.op(Op { method: "post", path: "/v1/alertmanager", summary: "Alertmanager webhook receiver (version 4): firing alerts fire, resolved ones resolve", role: Some("operator"), params: &[],
        body: Some(alertmanager_payload()), ok: ("200", "how many alerts changed", Some(json!({ "application/json": { "schema": { "type": "object", "properties": { "changed": { "type": "integer" } } } } }))),
        errors: &[("422", "not an Alertmanager payload; nothing applied")] });
}

/// Incidents, action items and postmortems.
fn incidents(d: &mut Doc) {
    let (incidents, incident, new_incident, change, item) = (
        d.list::<Incident>(),
        d.json::<Incident>(),
        d.schema::<NewIncident>(),
        d.schema::<IncidentChange>(),
        d.schema::<ActionItemSpec>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/incidents",
        summary: "Incidents, newest first",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "incidents", incidents),
        errors: &[],
    });
    d.op(Op {
        method: "post",
        path: "/v1/incidents",
        summary: "Open an incident by hand",
        role: Some("operator"),
        params: &[],
        body: Some(new_incident),
        ok: ("201", &created("opened"), incident.clone()),
        errors: &[("422", "no title, or an unknown component")],
    });
    d.op(Op {
        method: "get",
        path: "/v1/incidents/{id}",
        summary: "One incident",
        role: Some("viewer"),
        params: &[INCIDENT],
        body: None,
        ok: ("200", "the incident", incident.clone()),
        errors: &[("404", "no such incident")],
    });
    d.op(Op {
        method: "post",
        path: "/v1/incidents/{id}/updates",
        summary: "A status update and/or note; narrative edits",
        role: Some("operator"),
        params: &[INCIDENT],
        body: Some(change),
        ok: ("200", "the incident", incident.clone()),
        errors: &[
            ("404", "no such incident"),
            ("409", "already resolved"),
            ("422", "nothing to change, or a bad component status"),
        ],
    });
    d.op(Op {
        method: "post",
        path: "/v1/incidents/{id}/action-items",
        summary: "Add a corrective or preventive action item",
        role: Some("operator"),
        params: &[INCIDENT],
        body: Some(item.clone()),
        ok: ("201", &created("added"), incident.clone()),
        errors: &[
            ("404", "no such incident"),
            ("422", "no title or owner, or a bad state"),
        ],
    });
    d.op(Op {
        method: "patch",
        path: "/v1/incidents/{id}/action-items/{item}",
        summary: "Change an action item",
        role: Some("operator"),
        params: &[INCIDENT, ("item", "path", "integer", "action item id")],
        body: Some(item),
        ok: ("200", "the incident", incident),
        errors: &[
            ("404", "no such incident or item"),
            ("422", "no title or owner, or a bad state"),
        ],
    });
    let postmortem = d.json::<PostmortemText>();
    d.op(Op {
        method: "get",
        path: "/v1/incidents/{id}/postmortem",
        summary: "The postmortem in five sections, generated from the incident's events",
        role: Some("viewer"),
        params: &[
            INCIDENT,
            ("format", "query", "enum:md|html", "md (default) or html"),
        ],
        body: None,
        ok: ("200", "the postmortem", postmortem),
        errors: &[("404", "no such incident"), ("422", "unknown format")],
    });
}

/// Maintenance windows and subscribers.
fn status_page(d: &mut Doc) {
    let (maintenances, maintenance, spec) = (
        d.list::<Maintenance>(),
        d.json::<Maintenance>(),
        d.schema::<MaintenanceSpec>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/maintenances",
        summary: "Maintenance windows with their status",
        role: Some("viewer"),
        params: &[],
        body: None,
        ok: ("200", "windows", maintenances),
        errors: &[],
    });
    d.op(Op { method: "post", path: "/v1/maintenances", summary: "Schedule a maintenance window (its components' SLO alerts are suppressed while it runs)", role: Some("operator"), params: &[], body: Some(spec),
        ok: ("201", &created("scheduled"), maintenance), errors: &[("422", "bad times or unknown components")] });
    d.op(Op {
        method: "delete",
        path: "/v1/maintenances/{id}",
        summary: "Cancel a maintenance window",
        role: Some("operator"),
        params: &[("id", "path", "integer", "maintenance id")],
        body: None,
        ok: ("204", "cancelled", None),
        errors: &[("404", "unknown or already cancelled")],
    });
    let (subscribers, subscriber, sub_spec) = (
        d.list::<Subscriber>(),
        d.json::<Subscriber>(),
        d.schema::<SubscriberSpec>(),
    );
    d.op(Op {
        method: "get",
        path: "/v1/subscribers",
        summary: "Status-page subscribers",
        role: Some("operator"),
        params: &[],
        body: None,
        ok: ("200", "subscribers", subscribers),
        errors: &[],
    });
    d.op(Op { method: "post", path: "/v1/subscribers", summary: "Add a subscriber, confirmed at once (the public form asks for confirmation instead)", role: Some("operator"), params: &[], body: Some(sub_spec),
        ok: ("201", "added, with the webhook signing secret", subscriber), errors: &[("422", "not an email address or http(s) URL")] });
}

/// Alertmanager's webhook payload, as far as the receiver reads it: every alert has a status
/// and an `alertname` label.
fn alertmanager_payload() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["alerts"],
        "properties": { "alerts": { "type": "array", "items": {
            "type": "object",
            "required": ["status", "labels"],
            "properties": {
                "status": { "enum": ["firing", "resolved"] },
                "labels": {
                    "type": "object",
                    "required": ["alertname"],
                    "properties": { "alertname": { "type": "string", "minLength": 1 } },
                    "additionalProperties": true
                },
                "annotations": { "type": "object" },
                "fingerprint": { "type": "string" }
            }
        } } }
    })
}
