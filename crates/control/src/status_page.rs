//! The status page as server-rendered HTML (no JavaScript), and its Atom and RSS feeds.
//!
//! Accessible by construction: one `h1`, sections labelled by their headings, every status
//! spelled out in words beside its colour, labelled form fields, text contrast of at least
//! 4.5:1, and a layout that reflows to a phone's width.

use rampart_api::{Incident, IncidentStatus, Maintenance};

use crate::status::{ComponentView, Snapshot, UPTIME_DAYS, indicator, slug};

pub fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn status_words(status: &str) -> &'static str {
    match status {
        "operational" => "Operational",
        "degraded_performance" => "Degraded performance",
        "partial_outage" => "Partial outage",
        "major_outage" => "Major outage",
        "under_maintenance" => "Under maintenance",
        _ => "Unknown",
    }
}

fn incident_words(s: IncidentStatus) -> &'static str {
    match s {
        IncidentStatus::Investigating => "Investigating",
        IncidentStatus::Identified => "Identified",
        IncidentStatus::Monitoring => "Monitoring",
        IncidentStatus::Resolved => "Resolved",
    }
}

/// "2026-11-24T10:00:00.123Z" → "Nov 24, 10:00 UTC".
fn when(at: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = at
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
    match (month, at.get(8..10), at.get(11..16)) {
        (Some(m), Some(d), Some(hm)) => format!("{m} {}, {hm} UTC", d.trim_start_matches('0')),
        _ => at.to_owned(),
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#101828;background:#f9fafb}
a{color:#1849a9}
header,main,footer{max-width:860px;margin:0 auto;padding:0 16px}
header h1{font-size:1.6rem;margin:24px 0 16px}
section{background:#fff;border:1px solid #eaecf0;border-radius:8px;padding:16px 20px;margin:0 0 20px}
section>h2{font-size:1.15rem;margin:0 0 12px}
.banner{color:#fff;border:0}
.banner h2{margin:0;font-size:1.3rem}
.banner p{margin:4px 0 0}
.ind-none{background:#067647}.ind-minor{background:#93370d}.ind-major{background:#b93815}.ind-critical{background:#b42318}.ind-maintenance{background:#1849a9}
.components{list-style:none;margin:0;padding:0}
.component{padding:12px 0;border-top:1px solid #eaecf0}
.component:first-child{border-top:0;padding-top:0}
.row{display:flex;justify-content:space-between;gap:12px;flex-wrap:wrap}
.name{font-weight:600}
.st{font-weight:600}
.s-operational{color:#067647}.s-degraded_performance{color:#93370d}.s-partial_outage{color:#b93815}.s-major_outage{color:#b42318}.s-under_maintenance{color:#1849a9}
.bars{display:block;width:100%;height:34px;margin:8px 0 2px}
.legend{display:flex;justify-content:space-between;font-size:.8rem;color:#475467}
.incident{border-left:4px solid #b42318;padding:4px 0 4px 12px;margin:0 0 16px}
.incident.impact-minor{border-color:#dc6803}.incident.impact-none{border-color:#475467}
.incident.maintenance{border-color:#1849a9}
.incident h3{margin:0;font-size:1.05rem}
.meta{color:#475467;font-size:.9rem;margin:2px 0 6px}
.updates{list-style:none;padding:0;margin:0}
.updates li{margin:6px 0}
time{color:#475467;font-size:.85rem;white-space:nowrap}
form{display:grid;gap:8px;max-width:480px}
label{font-weight:600}
input{font:inherit;padding:8px 10px;border:1px solid #667085;border-radius:6px}
button{font:inherit;font-weight:600;padding:10px 14px;border:0;border-radius:6px;background:#1849a9;color:#fff;cursor:pointer;justify-self:start}
.hint{color:#475467;font-size:.9rem;margin:0}
footer{color:#475467;font-size:.9rem;padding-bottom:32px}
@media (max-width:520px){body{font-size:15px}section{padding:12px}}
"#;

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><link rel="alternate" type="application/atom+xml" title="Incident history (Atom)" href="/history.atom"><link rel="alternate" type="application/rss+xml" title="Incident history (RSS)" href="/history.rss"><style>{STYLE}</style></head><body>{body}</body></html>"#,
        title = esc(title)
    )
}

/// Colour of a day's bar: green at 99.9 % and above, then amber, orange and red.
fn bar_colour(day: &crate::slo::Counts) -> (&'static str, String) {
    if day.total == 0 {
        return ("#d0d5dd", "no data".into());
    }
    let up = 100.0 * (day.total - day.failed) as f64 / day.total as f64;
    let colour = if up >= 99.9 {
        "#17b26a"
    } else if up >= 99.0 {
        "#fdb022"
    } else if up >= 95.0 {
        "#ef6820"
    } else {
        "#d92d20"
    };
    (
        colour,
        format!("{up:.3}% ({} failed of {} requests)", day.failed, day.total),
    )
}

fn uptime_bars(c: &ComponentView) -> String {
    let today = crate::store::now_ms() / 86_400_000;
    let mut svg = format!(
        r#"<svg class="bars" viewBox="0 0 {} 34" preserveAspectRatio="none" role="img" aria-label="{}: daily availability over the last {UPTIME_DAYS} days">"#,
        UPTIME_DAYS * 4,
        esc(&c.name)
    );
    for (i, day) in c.days.iter().enumerate() {
        let (colour, text) = bar_colour(day);
        let date = rampart_api::time::format_ms(
            (today + i as u64 + 1).saturating_sub(UPTIME_DAYS) * 86_400_000,
        );
        svg.push_str(&format!(
            r#"<rect class="bar" x="{}" y="0" width="3" height="34" rx="1" fill="{colour}"><title>{}: {}</title></rect>"#,
            i * 4,
            date.get(..10).unwrap_or_default(),
            esc(&text)
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn incident_block(i: &Incident, link: bool) -> String {
    let title = if link {
        format!(r#"<a href="/incidents/{}">{}</a>"#, i.id, esc(&i.title))
    } else {
        esc(&i.title)
    };
    let affects = if i.components.is_empty() {
        String::new()
    } else {
        format!(" · affects {}", esc(&i.components.join(", ")))
    };
    let mut out = format!(
        r#"<article class="incident impact-{}" data-incident="{}"><h3>{title}</h3><p class="meta">{} · impact {}{affects}</p><ol class="updates">"#,
        i.impact.as_str(),
        i.id,
        incident_words(i.status),
        i.impact.as_str(),
    );
    for u in i.updates.iter().rev() {
        out.push_str(&format!(
            r#"<li><strong>{}</strong> — {} <time datetime="{}">{}</time></li>"#,
            incident_words(u.status),
            esc(&u.body),
            esc(&u.at),
            when(&u.at)
        ));
    }
    out.push_str("</ol></article>");
    out
}

fn maintenance_block(m: &Maintenance) -> String {
    let words = match m.status.as_str() {
        "in_progress" => "In progress",
        "completed" => "Completed",
        _ => "Scheduled",
    };
    format!(
        r#"<article class="incident maintenance" id="maintenance-{}"><h3>{}</h3><p class="meta">{words} · {} to {} · affects {}</p><p>{}</p></article>"#,
        m.id,
        esc(&m.spec.title),
        when(&m.spec.scheduled_for),
        when(&m.spec.scheduled_until),
        esc(&m.spec.components.join(", ")),
        esc(&m.spec.body)
    )
}

/// The page.
pub fn page(s: &Snapshot, notice: Option<&str>) -> String {
    let (ind, description) = indicator(s);
    let ind_class = if ind == "none" && description.contains("Maintenance") {
        "maintenance"
    } else {
        ind
    };
    let mut body = format!(r#"<header><h1>{}</h1></header><main>"#, esc(&s.name));
    if let Some(n) = notice {
        body.push_str(&format!(
            r#"<section role="status"><p>{}</p></section>"#,
            esc(n)
        ));
    }
    body.push_str(&format!(
        r#"<section class="banner ind-{ind_class}" role="status" aria-live="polite" data-indicator="{ind}"><h2>{description}</h2><p>Updated {}</p></section>"#,
        when(&s.updated_at)
    ));
    let active: Vec<&Incident> = s
        .incidents
        .iter()
        .filter(|i| i.status != IncidentStatus::Resolved)
        .collect();
    if !active.is_empty() {
        body.push_str(r#"<section aria-labelledby="active" id="active-incidents"><h2 id="active">Active incidents</h2>"#);
        for i in &active {
            body.push_str(&incident_block(i, true));
        }
        body.push_str("</section>");
    }
    let mut upcoming: Vec<&Maintenance> = s
        .maintenances
        .iter()
        .filter(|m| m.status == "scheduled" || m.status == "in_progress")
        .collect();
    // In progress first, then by start.
    upcoming.sort_by_key(|m| (m.status != "in_progress", m.spec.scheduled_for.clone()));
    if !upcoming.is_empty() {
        body.push_str(
            r#"<section aria-labelledby="maint"><h2 id="maint">Scheduled maintenance</h2>"#,
        );
        for m in upcoming {
            body.push_str(&maintenance_block(m));
        }
        body.push_str("</section>");
    }
    body.push_str(r#"<section aria-labelledby="components"><h2 id="components">Components</h2><ul class="components">"#);
    if s.components.is_empty() {
        body.push_str(r#"<li class="component">No components yet.</li>"#);
    }
    for c in &s.components {
        let uptime = c
            .uptime()
            .map(|u| format!("{u:.2}% uptime"))
            .unwrap_or_else(|| "no traffic yet".into());
        body.push_str(&format!(
            r#"<li class="component" data-component="{}" data-status="{}"><div class="row"><span class="name">{}</span><span class="st s-{}">{}</span></div>{}<div class="legend"><span>{UPTIME_DAYS} days ago</span><span>{uptime}</span><span>Today</span></div></li>"#,
            esc(&slug(&c.name)),
            esc(&c.status),
            esc(&c.name),
            esc(&c.status),
            status_words(&c.status),
            uptime_bars(c)
        ));
    }
    body.push_str("</ul></section>");
    body.push_str(r#"<section aria-labelledby="history"><h2 id="history">Past incidents</h2>"#);
    let past: Vec<&Incident> = s
        .incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Resolved)
        .take(20)
        .collect();
    if past.is_empty() {
        body.push_str(r#"<p class="hint">No incidents reported.</p>"#);
    }
    for i in past {
        body.push_str(&incident_block(i, true));
    }
    body.push_str("</section>");
    body.push_str(r#"<section aria-labelledby="subscribe"><h2 id="subscribe">Get notified</h2><form method="post" action="/subscribe"><label for="email">Email address</label><input id="email" name="email" type="email" autocomplete="email" placeholder="you@example.com"><label for="webhook">or a webhook URL</label><input id="webhook" name="webhook" type="url" placeholder="https://example.com/status-hook"><p class="hint">We send a confirmation first. Webhooks receive Statuspage-compatible JSON signed with HMAC-SHA256.</p><button type="submit">Subscribe</button></form></section>"#);
    body.push_str(r#"</main><footer><p>Feeds: <a href="/history.atom">Atom</a> · <a href="/history.rss">RSS</a> · JSON: <a href="/api/v2/summary.json">/api/v2/summary.json</a></p></footer>"#);
    layout(&s.name, &body)
}

/// One incident's page (Statuspage's shortlink target).
pub fn incident_page(s: &Snapshot, i: &Incident) -> String {
    let body = format!(
        r#"<header><h1>{}</h1></header><main><p><a href="/">← {}</a></p><section aria-labelledby="inc"><h2 id="inc">Incident report</h2>{}</section></main>"#,
        esc(&s.name),
        esc(&s.name),
        incident_block(i, false)
    );
    layout(&format!("{} — {}", i.title, s.name), &body)
}

/// A small page for the outcome of a form (subscribed, confirmed, unsubscribed, or why not).
pub fn message_page(s: &Snapshot, heading: &str, text: &str, form: Option<&str>) -> String {
    let body = format!(
        r#"<header><h1>{}</h1></header><main><section aria-labelledby="msg"><h2 id="msg">{}</h2><p>{}</p>{}<p><a href="/">Back to the status page</a></p></section></main>"#,
        esc(&s.name),
        esc(heading),
        esc(text),
        form.unwrap_or_default()
    );
    layout(heading, &body)
}

fn updates_html(i: &Incident) -> String {
    let mut out = String::new();
    for u in i.updates.iter().rev() {
        out.push_str(&format!(
            "<p><strong>{}</strong> ({}) — {}</p>",
            incident_words(u.status),
            esc(&u.at),
            esc(&u.body)
        ));
    }
    out
}

/// The incident history as Atom (RFC 4287).
pub fn atom(s: &Snapshot) -> String {
    let updated = s
        .incidents
        .iter()
        .filter_map(|i| i.updates.last().map(|u| u.at.clone()))
        .max()
        .unwrap_or_else(|| s.updated_at.clone());
    let mut out = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>{url}/history</id><title>{name} — incident history</title><updated>{updated}</updated><link rel="self" type="application/atom+xml" href="{url}/history.atom"/><link rel="alternate" type="text/html" href="{url}/"/><author><name>{name}</name></author>"#,
        url = esc(&s.url),
        name = esc(&s.name)
    );
    for i in &s.incidents {
        let updated = i
            .updates
            .last()
            .map(|u| u.at.as_str())
            .unwrap_or(&i.opened_at);
        out.push_str(&format!(
            r#"<entry><id>{url}/incidents/{id}</id><title>{title}</title><published>{published}</published><updated>{updated}</updated><link rel="alternate" type="text/html" href="{url}/incidents/{id}"/><content type="html">{content}</content></entry>"#,
            url = esc(&s.url),
            id = i.id,
            title = esc(&format!("{} ({})", i.title, i.status.as_str())),
            published = esc(&i.opened_at),
            updated = esc(updated),
            content = esc(&updates_html(i))
        ));
    }
    out.push_str("</feed>\n");
    out
}

fn rfc2822(at: &str) -> String {
    rampart_api::time::parse_ms(at)
        .and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
        })
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// The incident history as RSS 2.0.
pub fn rss(s: &Snapshot) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{name} — incident history</title><link>{url}/</link><description>Incidents and their updates</description><lastBuildDate>{built}</lastBuildDate>"#,
        url = esc(&s.url),
        name = esc(&s.name),
        built = rfc2822(&s.updated_at)
    );
    for i in &s.incidents {
        out.push_str(&format!(
            r#"<item><title>{title}</title><link>{url}/incidents/{id}</link><guid isPermaLink="true">{url}/incidents/{id}</guid><pubDate>{date}</pubDate><description>{content}</description></item>"#,
            url = esc(&s.url),
            id = i.id,
            title = esc(&format!("{} ({})", i.title, i.status.as_str())),
            date = rfc2822(&i.opened_at),
            content = esc(&updates_html(i))
        ));
    }
    out.push_str("</channel></rss>\n");
    out
}
