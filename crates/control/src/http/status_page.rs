//! Routes of the public status page (no login: HTML, Statuspage v2 JSON, feeds, subscribe and
//! unsubscribe forms) and of its management (maintenance, subscribers; operator role).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use rampart_api::{MaintenanceSpec, SubscriberKind, SubscriberSpec};
use serde::Deserialize;

use super::extract::{Body, Ctl, Form, Operator, Path, Query, Viewer};
use super::public_rate::PublicWrite;
use super::{ApiResult, AppState};
use crate::error::ControlError;
use crate::status_page as html;

/// What anyone may reach: the page, its JSON and feeds, and the subscription forms (the only
/// routes a `--public-listen` listener serves).
pub fn public_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page))
        .route("/incidents/{id}", get(incident_page))
        .route("/api/v2/{*name}", get(v2))
        .route("/history.atom", get(atom))
        .route("/history.rss", get(rss))
        .route("/subscribe", axum::routing::post(subscribe))
        .route("/subscribe/confirm", get(confirm_form).post(confirm))
        .route("/unsubscribe", get(unsubscribe_form).post(unsubscribe))
}

/// The public routes and the page's management (operator role).
pub fn routes() -> Router<Arc<AppState>> {
    public_routes()
        .route("/v1/maintenances", get(maintenances).post(schedule))
        .route("/v1/maintenances/{id}", delete(cancel))
        .route("/v1/subscribers", get(subscribers).post(add_subscriber))
}

/// Public pages are cacheable for a few seconds: fresh enough, and cheap under a stampede.
fn public(content_type: &'static str, body: bytes::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=5"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(s): Ctl) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    Ok(public(
        "text/html; charset=utf-8",
        snap.rendered("page", |snap| html::page(snap, None)),
    ))
}

async fn incident_page(State(s): Ctl, Path(id): Path<i64>) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    let incident = s.control.incidents.get(id).await?;
    Ok(public(
        "text/html; charset=utf-8",
        html::incident_page(&snap, &incident).into(),
    ))
}

async fn v2(State(s): Ctl, Path(name): Path<String>) -> ApiResult<Response> {
    if !crate::status::V2_NAMES.contains(&name.as_str()) {
        return Err(ControlError::NotFound(format!(
            "no /api/v2/{name}; try one of {}",
            crate::status::V2_NAMES.join(", ")
        ))
        .into());
    }
    let snap = s.control.status_page.snapshot().await?;
    let body = snap.rendered(&name, |snap| {
        crate::status::v2(snap, &name)
            .map(|v| v.to_string())
            .unwrap_or_default()
    });
    Ok(public("application/json", body))
}

async fn atom(State(s): Ctl) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    Ok(public(
        "application/atom+xml; charset=utf-8",
        snap.rendered("atom", html::atom),
    ))
}

async fn rss(State(s): Ctl) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    Ok(public(
        "application/rss+xml; charset=utf-8",
        snap.rendered("rss", html::rss),
    ))
}

#[derive(Deserialize)]
struct SubscribeForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    webhook: String,
}

async fn subscribe(
    _: PublicWrite,
    State(s): Ctl,
    Form(form): Form<SubscribeForm>,
) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    let (kind, target) = match (form.email.trim(), form.webhook.trim()) {
        ("", "") => {
            let page = html::message_page(
                &snap,
                "Nothing to subscribe",
                "Give an email address or a webhook URL.",
                None,
            );
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response());
        }
        (email, "") => (SubscriberKind::Email, email.to_owned()),
        ("", hook) => (SubscriberKind::Webhook, hook.to_owned()),
        _ => {
            let page = html::message_page(
                &snap,
                "One at a time",
                "Give either an email address or a webhook URL, not both.",
                None,
            );
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response());
        }
    };
    match s
        .control
        .subscribers
        .subscribe(kind, &target, false, "public")
        .await
    {
        Ok(sub) => {
            let text = match (kind, sub.confirmed) {
                (_, true) => "This address is already subscribed.".to_owned(),
                (SubscriberKind::Email, false) => format!(
                    "We sent a confirmation link to {target}. Notifications start once you follow it."
                ),
                (SubscriberKind::Webhook, false) => format!(
                    "We sent a confirmation to {target}: its `confirm_url` confirms the subscription, and its `signing_secret` verifies our signatures."
                ),
            };
            Ok(Html(html::message_page(&snap, "Check your inbox", &text, None)).into_response())
        }
        Err(ControlError::Invalid(m)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(html::message_page(&snap, "Could not subscribe", &m, None)),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// A link only shows a form: what a mail scanner or a link preview fetches changes nothing; a
/// person's click on the button (a POST) does.
async fn confirm_form(State(s): Ctl, Query(q): Query<TokenQuery>) -> ApiResult<Response> {
    link_form(
        &s,
        &q.token,
        ("/subscribe/confirm", "Confirm"),
        "Confirm your subscription",
        "Receive a notification when an incident opens, changes or resolves?",
    )
    .await
}

async fn confirm(_: PublicWrite, State(s): Ctl, Form(q): Form<TokenQuery>) -> ApiResult<Response> {
    let known = s.control.subscribers.confirm(&q.token).await?;
    link_answer(
        &s,
        known,
        (
            "Subscription confirmed",
            "You will be notified when an incident opens, changes or resolves.",
        ),
        "This confirmation link is not valid (or the subscription was cancelled).",
    )
    .await
}

/// What a confirmation or unsubscribe link answers: `done` when the link was known, else 404
/// with `unknown`.
async fn link_answer(
    s: &AppState,
    known: bool,
    done: (&str, &str),
    unknown: &str,
) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    Ok(if known {
        Html(html::message_page(&snap, done.0, done.1, None)).into_response()
    } else {
        let page = html::message_page(&snap, "Unknown link", unknown, None);
        (StatusCode::NOT_FOUND, Html(page)).into_response()
    })
}

async fn unsubscribe_form(State(s): Ctl, Query(q): Query<TokenQuery>) -> ApiResult<Response> {
    link_form(
        &s,
        &q.token,
        ("/unsubscribe", "Unsubscribe"),
        "Unsubscribe",
        "Stop receiving notifications from this page?",
    )
    .await
}

/// A page asking `question`, with a button that posts the link's token to `action`.
async fn link_form(
    s: &AppState,
    token: &str,
    (action, button): (&str, &str),
    title: &str,
    question: &str,
) -> ApiResult<Response> {
    let snap = s.control.status_page.snapshot().await?;
    let form = format!(
        r#"<form method="post" action="{action}"><input type="hidden" name="token" value="{}"><button type="submit">{button}</button></form>"#,
        html::esc(token)
    );
    Ok(Html(html::message_page(&snap, title, question, Some(&form))).into_response())
}

async fn unsubscribe(
    _: PublicWrite,
    State(s): Ctl,
    Form(q): Form<TokenQuery>,
) -> ApiResult<Response> {
    let known = s.control.subscribers.unsubscribe(&q.token).await?;
    link_answer(
        &s,
        known,
        (
            "Unsubscribed",
            "You will not receive further notifications.",
        ),
        "This unsubscribe link is not valid.",
    )
    .await
}

async fn maintenances(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.maintenances.list().await?))
}

async fn schedule(
    State(s): Ctl,
    Operator(actor): Operator,
    Body(spec): Body<MaintenanceSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.control.maintenances.schedule(spec, &actor.name).await?),
    ))
}

async fn cancel(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    s.control.maintenances.cancel(id, &actor.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn subscribers(State(s): Ctl, _: Operator) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.subscribers.list().await?))
}

async fn add_subscriber(
    State(s): Ctl,
    Operator(actor): Operator,
    Body(spec): Body<SubscriberSpec>,
) -> ApiResult<impl IntoResponse> {
    let sub = s
        .control
        .subscribers
        .subscribe(spec.kind, &spec.target, true, &actor.name)
        .await?;
    Ok((StatusCode::CREATED, Json(sub)))
}
