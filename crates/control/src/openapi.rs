//! The OpenAPI 3.1 document of the API, served at `/openapi.json`. Schemas come from the wire
//! types themselves (`rampart-api`), so the document cannot drift from what the server speaks.

use rampart_api::*;
use schemars::JsonSchema;
use serde_json::{Value, json};

fn schema<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null)
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } } })
}

fn ok(name: &str, description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } } } })
}

fn list(name: &str, description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": format!("#/components/schemas/{name}") } } } } })
}

fn op(
    summary: &str,
    role: &str,
    request: Option<Value>,
    response: Value,
    errors: &[(&str, &str)],
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert("200".into(), response);
    for (code, why) in errors {
        responses.insert((*code).into(), json!({ "description": why, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } }));
    }
    responses.insert(
        "401".into(),
        json!({ "description": "missing or unknown token" }),
    );
    let mut o = json!({ "summary": summary, "description": format!("Role: {role} or above."), "responses": responses });
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    o
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({ "name": name, "in": location, "required": location == "path", "description": description, "schema": { "type": "string" } })
}

pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "rampart control plane", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "ErrorBody": schema::<ErrorBody>(), "PushRequest": schema::<PushRequest>(),
                "PushResponse": schema::<PushResponse>(), "VersionInfo": schema::<VersionInfo>(),
                "VersionDocument": schema::<VersionDocument>(), "DeployRequest": schema::<DeployRequest>(),
                "RollbackRequest": schema::<RollbackRequest>(), "EnvironmentStatus": schema::<EnvironmentStatus>(),
                "Event": schema::<Event>(), "Approval": schema::<Approval>(),
                "RegisterRequest": schema::<RegisterRequest>(), "RegisterResponse": schema::<RegisterResponse>(),
                "Desired": schema::<Desired>(), "Report": schema::<Report>(),
                "ReleaseStatus": schema::<ReleaseStatus>(),
                "Component": schema::<Component>(), "ComponentSpec": schema::<ComponentSpec>(),
                "Channel": schema::<Channel>(), "ChannelSpec": schema::<ChannelSpec>(),
                "OutboxEntry": schema::<OutboxEntry>(), "Alert": schema::<Alert>(),
                "Incident": schema::<Incident>(), "NewIncident": schema::<NewIncident>(),
                "IncidentChange": schema::<IncidentChange>(), "ActionItemSpec": schema::<ActionItemSpec>(),
                "PostmortemText": schema::<PostmortemText>(),
                "RestartRequest": schema::<RestartRequest>(), "RestartStatus": schema::<RestartStatus>(),
                "MaintenanceSpec": schema::<MaintenanceSpec>(), "Maintenance": schema::<Maintenance>(),
                "SubscriberSpec": schema::<SubscriberSpec>(), "Subscriber": schema::<Subscriber>(),
            }
        },
        "security": [{ "token": [] }],
        "paths": operations_paths(),
    })
}

/// Releases, components, channels, alerts, incidents, postmortems.
fn operations_paths() -> Value {
    let incident = param("id", "path", "incident id");
    let mut paths = json!({
        "/v1/releases": { "get": op("Releases, newest first, with wave, cohort and latest gate verdict", "viewer", None, list("ReleaseStatus", "releases"), &[]) },
        "/v1/releases/{id}/picture.svg": { "parameters": [param("id", "path", "release id")],
            "get": op("The release as a picture: waves, each instance's version over time, gate verdicts", "viewer", None, json!({ "description": "the picture", "content": { "image/svg+xml": { "schema": { "type": "string" } } } }), &[("404", "no such release")]) },
        "/v1/releases/{id}/{action}": { "parameters": [param("id", "path", "release id"), param("action", "path", "pause, resume or abort")],
            "post": op("Pause, resume or abort a release (abort rolls its cohort back)", "operator", None, ok("ReleaseStatus", "the release"), &[("404", "no such release"), ("409", "the release has ended")]) },
        "/v1/components": { "get": op("Components with their status", "viewer", None, list("Component", "components"), &[]) },
        "/v1/components/{name}": { "parameters": [param("name", "path", "component name")],
            "put": op("Add or replace a component: its routes, environment and SLO", "operator", Some(body("ComponentSpec")), ok("Component", "the component"), &[("422", "bad SLO, name or environment")]),
            "delete": op("Remove a component", "operator", None, json!({ "description": "removed (204)" }), &[("404", "no such component")]) },
        "/v1/channels": { "get": op("Notification channels (secrets left out) with pending and failed counts", "viewer", None, list("Channel", "channels"), &[]) },
        "/v1/channels/{name}": { "parameters": [param("name", "path", "channel name")],
            "put": op("Add or replace a channel: PagerDuty Events v2, signed webhook, Slack-compatible webhook or SMTP", "operator", Some(body("ChannelSpec")), ok("Channel", "the channel"), &[("422", "a URL or field the kind cannot use")]) },
        "/v1/outbox": { "get": op("The latest 500 notifications and their delivery state", "viewer", None, list("OutboxEntry", "notifications"), &[]) },
        "/v1/alerts": { "parameters": [param("active", "query", "true: only firing alerts")],
            "get": op("Alerts, newest first", "viewer", None, list("Alert", "alerts"), &[]) },
        "/v1/alertmanager": { "post": op("Alertmanager webhook receiver (version 4): firing alerts fire, resolved ones resolve", "operator", Some(json!({ "required": true, "content": { "application/json": { "schema": { "type": "object" } } } })), json!({ "description": "how many alerts changed" }), &[("422", "not an Alertmanager payload; nothing applied")]) },
        "/v1/incidents": { "get": op("Incidents, newest first", "viewer", None, list("Incident", "incidents"), &[]),
            "post": op("Open an incident by hand", "operator", Some(body("NewIncident")), ok("Incident", "opened (201)"), &[("422", "no title, or an unknown component")]) },
        "/v1/incidents/{id}": { "parameters": [incident.clone()], "get": op("One incident", "viewer", None, ok("Incident", "the incident"), &[("404", "no such incident")]) },
        "/v1/incidents/{id}/updates": { "parameters": [incident.clone()],
            "post": op("A status update and/or note; narrative edits", "operator", Some(body("IncidentChange")), ok("Incident", "the incident"), &[("404", "no such incident"), ("409", "already resolved")]) },
        "/v1/incidents/{id}/action-items": { "parameters": [incident.clone()],
            "post": op("Add a corrective or preventive action item", "operator", Some(body("ActionItemSpec")), ok("Incident", "added (201)"), &[("422", "no title or owner, or a bad state")]) },
        "/v1/incidents/{id}/action-items/{item}": { "parameters": [incident.clone(), param("item", "path", "action item id")],
            "patch": op("Change an action item", "operator", Some(body("ActionItemSpec")), ok("Incident", "the incident"), &[("404", "no such item")]) },
        "/v1/environments/{env}/restart": { "parameters": [param("env", "path", "environment name")],
            "post": op("Start a rolling restart of the environment's gateways, batch by batch (202)", "operator", Some(body("RestartRequest")), ok("RestartStatus", "started"), &[("409", "a release or another restart is running, or no live gateway"), ("422", "bad batch"), ("404", "no such environment")]),
            "get": op("The running or last rolling restart", "viewer", None, ok("RestartStatus", "its progress"), &[("404", "none since the control plane started")]) },
        "/v1/maintenances": { "get": op("Maintenance windows with their status", "viewer", None, list("Maintenance", "windows"), &[]),
            "post": op("Schedule a maintenance window (its components' SLO alerts are suppressed while it runs)", "operator", Some(body("MaintenanceSpec")), ok("Maintenance", "scheduled (201)"), &[("422", "bad times or unknown components")]) },
        "/v1/maintenances/{id}": { "parameters": [param("id", "path", "maintenance id")],
            "delete": op("Cancel a maintenance window", "operator", None, json!({ "description": "cancelled (204)" }), &[("404", "unknown or already cancelled")]) },
        "/v1/subscribers": { "get": op("Status-page subscribers", "operator", None, list("Subscriber", "subscribers"), &[]),
            "post": op("Add a subscriber, confirmed at once (the public form asks for confirmation instead)", "operator", Some(body("SubscriberSpec")), ok("Subscriber", "added (201), with the webhook signing secret"), &[("422", "not an email address or http(s) URL")]) },
        "/v1/incidents/{id}/postmortem": { "parameters": [incident, param("format", "query", "md (default) or html")],
            "get": op("The postmortem in five sections, generated from the incident's events", "viewer", None, ok("PostmortemText", "the postmortem"), &[("422", "unknown format")]) },
    });
    if let (Some(all), Value::Object(core)) = (paths.as_object_mut(), core_paths()) {
        all.extend(core);
    }
    paths
}

/// Versions, environments, approvals, events and the agent protocol.
fn core_paths() -> Value {
    let env = param("env", "path", "environment name");
    let id = param("id", "path", "version id, approval id or instance id");
    json!({
            "/v1/versions": {
                "post": op("Validate a document and store it as an immutable version", "operator", Some(body("PushRequest")), ok("PushResponse", "stored (201) or already stored (200)"),
                    &[("422", "invalid document, or failed semantic checks"), ("403", "break-glass without the approver role")]),
                "get": op("Versions, newest first", "viewer", None, list("VersionInfo", "versions"), &[]),
            },
            "/v1/versions/{id}": { "parameters": [id], "get": op("A version and its canonical document", "viewer", None, ok("VersionDocument", "the version"), &[("404", "no such version")]) },
            "/v1/environments": { "get": op("Environments in pipeline order, with their instances", "viewer", None, list("EnvironmentStatus", "environments"), &[]) },
            "/v1/environments/{env}/deploy": { "parameters": [env.clone()],
                "post": op("Make a version desired (pipeline order and approvals enforced)", "operator", Some(body("DeployRequest")), ok("EnvironmentStatus", "desired version set"),
                    &[("409", "pipeline: not yet succeeded in the previous environment; or approval_required"), ("403", "break-glass without the approver role"), ("404", "no such environment or version")]) },
            "/v1/environments/{env}/rollback": { "parameters": [env],
                "post": op("Make the last-known-good (or `to`) desired at once; never blocked by forward checks", "operator", Some(body("RollbackRequest")), ok("EnvironmentStatus", "rolled back"),
                    &[("409", "no last-known-good yet and no `to`"), ("404", "no such environment or version")]) },
            "/v1/approvals": { "get": op("Deploys waiting for a second person", "viewer", None, list("Approval", "approvals"), &[]) },
            "/v1/approvals/{id}/approve": { "parameters": [param("id", "path", "approval id")],
                "post": op("Approve a pending deploy (not the requester's own); the deploy then happens", "approver", None, ok("EnvironmentStatus", "approved and deployed"), &[("403", "not an approver, or the requester"), ("409", "already approved")]) },
            "/v1/events": { "parameters": [param("after", "query", "return events with a larger sequence number")],
                "get": op("The event log, 1,000 at a time", "viewer", None, list("Event", "events"), &[]) },
            "/v1/agents/register": { "post": op("Agent protocol: register an instance", "viewer", Some(body("RegisterRequest")), ok("RegisterResponse", "registered"), &[("404", "no such environment")]) },
            "/v1/agents/{id}/desired": { "parameters": [param("id", "path", "instance id"), param("current", "query", "the version the agent runs"), param("wait_ms", "query", "how long to hold the poll")],
                "get": op("Agent protocol: long-poll for the desired version", "viewer", None, ok("Desired", "the desired version, with its document when it differs from `current`"), &[("404", "instance not registered")]) },
            "/v1/agents/{id}/report": { "parameters": [param("id", "path", "instance id")],
                "post": op("Agent protocol: report once a second", "viewer", Some(body("Report")), json!({ "description": "recorded (204)" }), &[("404", "instance not registered")]) },
    })
}
