//! The postmortem as an HTML page, with its timeline drawn as SVG (a row per event, the bad
//! version's span shaded).

use super::*;
use crate::status_page::esc;

/// Colour of a timeline mark by what happened.
fn mark_colour(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("alert.fired") || k == "release.rolled_back" || k.contains("failed") => {
            "#b42318"
        }
        "gate.verdict" => "#b54708",
        k if k.starts_with("incident") => "#5925dc",
        k if k.starts_with("notification") => "#0e7090",
        "environment.converged" | "alert.resolved" | "release.succeeded" => "#067647",
        _ => "#475467",
    }
}

/// A timeline picture: one row per event — its time and what happened on the left, a mark on
/// the incident's time axis on the right — with the phases (bad version live, rolling back,
/// recovering) shaded behind.
pub fn timeline_svg(f: &Facts) -> String {
    let (Some(a), Some(b)) = (f.first_ms(), f.end_ms()) else {
        return String::new();
    };
    let span = b.saturating_sub(a).max(1) as f64;
    let (label_w, axis_w, row_h, top) = (470.0, 430.0, 18.0, 34.0);
    let w = label_w + axis_w + 20.0;
    let x = |ms: u64| label_w + (ms.saturating_sub(a) as f64 / span) * axis_w;
    let h = top + f.events.len().max(1) as f64 * row_h + 10.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" role="img" aria-label="Timeline of incident {}" font-family="system-ui,sans-serif">"#,
        f.incident.id
    );
    svg.push_str(&format!(
        r##"<rect width="{w}" height="{h}" fill="#ffffff"/>"##
    ));
    // Phases: from the first bad apply to the rollback, and from the rollback to recovery.
    let at = |e: Option<&Event>| e.and_then(|e| parse_ms(&e.at));
    let rolled = at(f.find("release.rolled_back"));
    for (from, to, colour, name) in [
        (at(f.bad_apply()), rolled, "#fee4e2", "bad version live"),
        (rolled, at(f.recovered()), "#fef0c7", "rolling back"),
    ] {
        if let (Some(p), Some(q)) = (from, to) {
            let (x0, x1) = (x(p), x(q).max(x(p) + 2.0));
            svg.push_str(&format!(
                r##"<rect x="{x0:.1}" y="{}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{name}</title></rect>"##,
                top - 8.0,
                x1 - x0,
                h - top
            ));
        }
    }
    svg.push_str(r##"<rect x="4" y="5" width="10" height="10" fill="#fee4e2" stroke="#f97066"/><text x="18" y="14" font-size="11" fill="#475467">bad version live</text><rect x="120" y="5" width="10" height="10" fill="#fef0c7" stroke="#fdb022"/><text x="134" y="14" font-size="11" fill="#475467">rolling back</text>"##);
    svg.push_str(&format!(
        r##"<text x="{label_w}" y="14" font-size="11" fill="#475467">{}</text><text x="{}" y="14" font-size="11" text-anchor="end" fill="#475467">+{}</text>"##,
        esc(f.events.first().map(|e| clock(&e.at)).unwrap_or_default()),
        label_w + axis_w,
        esc(&duration(b.saturating_sub(a)))
    ));
    for (n, e) in f.events.iter().enumerate() {
        let Some(ms) = parse_ms(&e.at) else { continue };
        let y = top + n as f64 * row_h + row_h / 2.0;
        let colour = mark_colour(&e.kind);
        let mut text = describe(e);
        if text.chars().count() > 62 {
            text = text.chars().take(61).collect::<String>() + "…";
        }
        svg.push_str(&format!(
            r##"<line x1="{label_w}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eaecf0"/><text x="4" y="{:.1}" font-size="11" fill="#101828"><tspan fill="#475467">{}</tspan> {}</text><circle cx="{:.1}" cy="{y:.1}" r="4.5" fill="{colour}"><title>{}</title></circle>"##,
            label_w + axis_w,
            y + 4.0,
            esc(clock(&e.at)),
            esc(&text),
            x(ms),
            esc(&describe(e))
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The postmortem as a standalone HTML page with the timeline picture.
pub fn html(f: &Facts) -> String {
    let md = markdown(f);
    let mut body = String::new();
    let mut in_list = false;
    let mut in_code = false;
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with("```") {
            body.push_str(if in_code { "</pre>" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            body.push_str(&esc(line));
            body.push('\n');
            continue;
        }
        if in_list && !line.starts_with("- ") {
            body.push_str("</ul>");
            in_list = false;
        }
        if in_table && !line.starts_with('|') {
            body.push_str("</table>");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("# ") {
            body.push_str(&format!("<h1>{}</h1>", esc(h)));
        } else if let Some(h) = line.strip_prefix("## ") {
            body.push_str(&format!("<h2>{}</h2>", esc(h)));
            if h == "Timeline" {
                body.push_str(&format!("<figure>{}</figure>", timeline_svg(f)));
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                body.push_str("<ul>");
                in_list = true;
            }
            body.push_str(&format!("<li>{}</li>", esc(item)));
        } else if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            let header = !in_table;
            if header {
                body.push_str("<table>");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let tag = if header { "th" } else { "td" };
            body.push_str("<tr>");
            for c in cells {
                body.push_str(&format!("<{tag}>{}</{tag}>", esc(c)));
            }
            body.push_str("</tr>");
        } else if !line.trim().is_empty() {
            body.push_str(&format!("<p>{}</p>", esc(line)));
        }
    }
    if in_list {
        body.push_str("</ul>");
    }
    if in_table {
        body.push_str("</table>");
    }
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Postmortem: {}</title><style>body{{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#101828}}h2{{border-bottom:1px solid #eaecf0;padding-bottom:.2em}}pre{{background:#f2f4f7;padding:1em;overflow:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #d0d5dd;padding:.3em .6em;text-align:left}}figure{{margin:1em 0;overflow-x:auto}}</style></head><body>{body}</body></html>"#,
        esc(&f.incident.title)
    )
}
