//! A release as a picture: which version each instance ran over time, the waves as bands across
//! the top, and each gate verdict where it was given.
//!
//! Drawn from the release's events only (`release.*`, `gate.verdict`, `instance.applied`,
//! `environment.converged`), so it is the same picture while the release runs and long after.
//!
//! (About 490 lines of one drawing, then its tests.)

use rampart_api::Event;
use rampart_model::version::short;
use rampart_rollout::WaveTarget;

use crate::release::state_name;
use crate::status_page::esc;
use crate::store::ReleaseRow;
use rampart_api::time::parse_ms;

/// A release and the events that tell its story, in order.
#[derive(Debug, Clone)]
pub struct Story {
    pub release: ReleaseRow,
    pub events: Vec<Event>,
}

fn text<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    e.data.get(key).and_then(|v| v.as_str())
}

impl Story {
    /// Keeps the events of release `release` from `events` (which start at its
    /// `release.started`): it ends at the environment's next release, or once the environment
    /// has converged on the version the release ended with.
    pub fn new(release: ReleaseRow, events: Vec<Event>) -> Story {
        let id = release.id;
        let ours = |e: &Event| e.data.get("release").and_then(|r| r.as_i64()) == Some(id);
        let mut kept = Vec::new();
        let mut settles_on: Option<String> = None;
        for e in events {
            match e.kind.as_str() {
                "release.started" if !ours(&e) => break,
                "release.succeeded_all_waves" | "release.rolled_back" if ours(&e) => {
                    let to = text(&e, "to").map(str::to_owned);
                    settles_on = Some(to.unwrap_or_else(|| {
                        if e.kind == "release.rolled_back" {
                            release.previous.to_string()
                        } else {
                            release.version.to_string()
                        }
                    }));
                    kept.push(e);
                }
                // A manual rollback after the release ended names where it goes.
                "rollback" => {
                    settles_on = text(&e, "to").map(str::to_owned);
                    kept.push(e);
                }
                // Every instance on one version (`release.succeeded` names a new last-known-good).
                "environment.converged" | "release.succeeded" => {
                    let done = settles_on.is_some() && text(&e, "version") == settles_on.as_deref();
                    kept.push(e);
                    if done {
                        break;
                    }
                }
                "instance.applied" => kept.push(e),
                k if (k.starts_with("release.") || k == "gate.verdict") && ours(&e) => kept.push(e),
                _ => {}
            }
        }
        Story {
            release,
            events: kept,
        }
    }

    fn rolled_back(&self) -> bool {
        self.events.iter().any(|e| e.kind == "release.rolled_back")
    }

    /// Instances named by the story's applies and the release's cohort, sorted.
    pub fn instances(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .events
            .iter()
            .filter(|e| e.kind == "instance.applied")
            .map(|e| e.subject.clone())
            .chain(self.release.cohort.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What each instance ran, as `(from_ms, to_ms, version)` spans over the story.
    pub fn spans(&self, instance: &str) -> Vec<(u64, u64, String)> {
        let (Some(start), Some(end)) = (self.start_ms(), self.end_ms()) else {
            return vec![];
        };
        let applies: Vec<(u64, &Event)> = self
            .events
            .iter()
            .filter(|e| e.kind == "instance.applied" && e.subject == instance)
            .filter_map(|e| Some((parse_ms(&e.at)?, e)))
            .collect();
        // Before its first apply in the story, an instance ran what that apply replaced.
        let mut running = applies
            .first()
            .and_then(|(_, e)| text(e, "previous"))
            .unwrap_or(self.release.previous.as_str())
            .to_owned();
        let mut from = start;
        let mut spans = Vec::new();
        for (at, e) in applies {
            let version = text(e, "version").unwrap_or_default().to_owned();
            // A report of the version it already ran (its first report, say) changes nothing.
            if version == running {
                continue;
            }
            if at > from {
                spans.push((from, at, running));
            }
            running = version;
            from = at;
        }
        spans.push((from, end.max(from), running));
        spans
    }

    fn start_ms(&self) -> Option<u64> {
        self.events.first().and_then(|e| parse_ms(&e.at))
    }

    /// The last event, and a little after it so the state it left is visible.
    fn end_ms(&self) -> Option<u64> {
        let start = self.start_ms()?;
        let last = self.events.last().and_then(|e| parse_ms(&e.at))?;
        let tail = ((last - start) / 12).max(250);
        Some((last + tail).max(start + 1_000))
    }
}

fn offset(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 120.0 {
        format!("+{s:.1} s")
    } else {
        format!("+{:.1} min", s / 60.0)
    }
}

fn wave_label(n: usize, target: Option<&WaveTarget>) -> String {
    match target {
        Some(WaveTarget::Instances(1)) => format!("wave {} · 1 instance", n + 1),
        Some(WaveTarget::Instances(k)) => format!("wave {} · {k} instances", n + 1),
        Some(WaveTarget::Percent(p)) => format!("wave {} · {p}%", n + 1),
        None => format!("wave {}", n + 1),
    }
}

/// A tick step (ms) that puts at most eight ticks on `span_ms`.
fn tick_step(span_ms: u64) -> u64 {
    const STEPS: [u64; 13] = [
        500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
        1_800_000, 3_600_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span_ms / s <= 8)
        .unwrap_or(7_200_000)
}

const NEW: &str = "#2e90fa";
const BAD: &str = "#f04438";
const OLD: &str = "#d0d5dd";
const OTHER: &str = "#98a2b3";
const PASS: &str = "#12b76a";
const FAIL: &str = "#d92d20";
/// Someone moved the release on (promote, skip).
const JUDGED: &str = "#7a5af8";

/// Where things go in the picture: the time axis maps `t0..t1` onto `axis_w` pixels after the
/// labels, then rows top to bottom.
#[derive(Clone, Copy)]
struct Layout {
    t0: u64,
    t1: u64,
    label_w: f64,
    axis_w: f64,
    band_y: f64,
    rows_y: f64,
    row_h: f64,
    axis_y: f64,
    legend_y: f64,
}

impl Layout {
    fn x(&self, ms: u64) -> f64 {
        let span = (self.t1 - self.t0) as f64;
        self.label_w + (ms.saturating_sub(self.t0) as f64 / span) * self.axis_w
    }
}

/// The release as an SVG: a band per wave, a row per instance coloured by the version it ran
/// (the previous one grey, the new one blue, or red once the release was rolled back), a line
/// per conclusive gate verdict, and the verdicts listed underneath.
pub fn svg(s: &Story) -> String {
    let r = &s.release;
    let (Some(t0), Some(t1)) = (s.start_ms(), s.end_ms()) else {
        return format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 30" width="400" role="img" aria-label="Release {}"><text x="4" y="20" font-family="system-ui,sans-serif" font-size="13">Release {} has no recorded events yet.</text></svg>"#,
            r.id, r.id
        );
    };
    let instances = s.instances();
    let verdicts = shown_verdicts(s);
    let (band_y, rows_y, row_h) = (58.0, 92.0, 24.0);
    let axis_y = rows_y + instances.len() as f64 * row_h + 6.0;
    let l = Layout {
        t0,
        t1,
        label_w: 150.0,
        axis_w: 700.0,
        band_y,
        rows_y,
        row_h,
        axis_y,
        legend_y: axis_y + 34.0,
    };
    let w = l.label_w + l.axis_w + 24.0;
    let h = l.legend_y + 20.0 + verdicts.len() as f64 * 16.0 + 8.0;
    let state = state_name(r.intent.state);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" role="img" aria-label="Release {} in {}: {state}" font-family="system-ui,sans-serif" data-release="{}" data-state="{state}">"#,
        r.id,
        esc(&r.environment),
        r.id
    );
    out.push_str(&format!(
        r##"<rect width="{w}" height="{h}" fill="#ffffff"/><text x="8" y="22" font-size="15" font-weight="600" fill="#101828">Release {} in {}: {} → {}</text><text x="8" y="42" font-size="12" fill="#475467">{}{} · {} instances · {}{}</text>"##,
        r.id,
        esc(&r.environment),
        esc(short(&r.previous)),
        esc(short(&r.version)),
        state.replace('_', " "),
        r.reason
            .as_deref()
            .map(|why| format!(": {}", esc(why)))
            .unwrap_or_default(),
        instances.len(),
        offset(t1 - t0).trim_start_matches('+'),
        policy_line(&r.intent),
    ));
    draw_waves(&mut out, &l, s);
    draw_instances(&mut out, &l, s, &instances);
    draw_gates(&mut out, &l, &verdicts);
    draw_axis(&mut out, &l);
    draw_legend(&mut out, &l, &verdicts);
    out.push_str("</svg>");
    out
}

/// " · policy P" and, while the release runs, the step it is in.
fn policy_line(intent: &rampart_rollout::Intent) -> String {
    let mut line = String::new();
    if !intent.plan.source.is_empty() {
        line.push_str(&format!(" · policy {}", esc(&intent.plan.source)));
    }
    if matches!(
        intent.state,
        rampart_rollout::ReleaseState::Pending
            | rampart_rollout::ReleaseState::Rolling
            | rampart_rollout::ReleaseState::Paused
    ) {
        line.push_str(&format!(
            " · now {}",
            esc(&crate::release::step_text(intent))
        ));
    }
    line
}

/// Conclusive verdicts, the latest one if the release is still waiting for traffic, and every
/// judgement (a promote or skip), in time order.
fn shown_verdicts(s: &Story) -> Vec<&Event> {
    let all: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| e.kind == "gate.verdict")
        .collect();
    let last_verdict = all.last().map(|e| e.seq);
    s.events
        .iter()
        .filter(|e| {
            is_judgement(e)
                || (e.kind == "gate.verdict"
                    && (Some(e.seq) == last_verdict
                        || e.data.pointer("/verdict/verdict").and_then(|v| v.as_str())
                            != Some("inconclusive")))
        })
        .collect()
}

/// Someone moved the release on (`rampart rollout promote` or `skip`), or its policy did
/// about a wave inconclusive past its deadline.
fn is_judgement(e: &Event) -> bool {
    matches!(
        e.kind.as_str(),
        "release.promoted" | "release.skipped" | "release.overdue"
    )
}

fn draw_waves(out: &mut String, l: &Layout, s: &Story) {
    let r = &s.release;
    let Layout { t0, t1, band_y, .. } = *l;
    let x = |ms: u64| l.x(ms);
    // Waves: from each wave's start to the next (or the end of the story).
    let waves: Vec<(u64, usize)> = s
        .events
        .iter()
        .filter(|e| e.kind == "release.wave")
        .filter_map(|e| Some((parse_ms(&e.at)?, e.data.get("wave")?.as_u64()? as usize)))
        .collect();
    let release_end = s
        .events
        .iter()
        .find(|e| {
            matches!(
                e.kind.as_str(),
                "release.rolled_back" | "release.succeeded_all_waves"
            )
        })
        .and_then(|e| parse_ms(&e.at))
        .unwrap_or(t1);
    for (n, (at, wave)) in waves.iter().enumerate() {
        let until = waves.get(n + 1).map(|(t, _)| *t).unwrap_or(release_end);
        let (x0, x1) = (x(*at), x(until).max(x(*at) + 2.0));
        let fill = if n % 2 == 0 { "#eff8ff" } else { "#d1e9ff" };
        let label = wave_label(*wave, r.intent.plan.waves.get(*wave).map(|w| &w.target));
        out.push_str(&format!(
            r##"<g class="wave" data-wave="{wave}"><rect x="{x0:.1}" y="{band_y}" width="{:.1}" height="22" fill="{fill}" stroke="#84caff"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#1849a9">{}</text><title>{} from {} to {}</title></g>"##,
            x1 - x0,
            x0 + 4.0,
            band_y + 15.0,
            if x1 - x0 > 70.0 { esc(&label) } else { String::new() },
            esc(&label),
            offset(at - t0),
            offset(until - t0),
        ));
    }
    out.push_str(&format!(
        r##"<text x="8" y="{:.1}" font-size="12" fill="#344054">waves</text>"##,
        band_y + 15.0
    ));
}

fn draw_instances(out: &mut String, l: &Layout, s: &Story, instances: &[String]) {
    let r = &s.release;
    let rolled_back = s.rolled_back();
    let Layout {
        t0, rows_y, row_h, ..
    } = *l;
    let x = |ms: u64| l.x(ms);
    // Instances: one row each, a span per version it ran.
    for (n, name) in instances.iter().enumerate() {
        let y = rows_y + n as f64 * row_h;
        out.push_str(&format!(
            r##"<g class="instance" data-instance="{}"><text x="8" y="{:.1}" font-size="12" fill="#101828">{}</text>"##,
            esc(name),
            y + 15.0,
            esc(name)
        ));
        for (from, to, version) in s.spans(name) {
            let (colour, role) = if version == r.version {
                if rolled_back {
                    (BAD, "new-rolled-back")
                } else {
                    (NEW, "new")
                }
            } else if version == r.previous {
                (OLD, "previous")
            } else {
                (OTHER, "other")
            };
            out.push_str(&format!(
                r#"<rect class="span {role}" data-version="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="16" rx="2" fill="{colour}"><title>{} ran {} from {} to {}</title></rect>"#,
                esc(&version),
                x(from),
                y + 3.0,
                (x(to) - x(from)).max(1.0),
                esc(name),
                esc(short(&version)),
                offset(from - t0),
                offset(to - t0)
            ));
        }
        out.push_str("</g>");
    }
}

fn draw_gates(out: &mut String, l: &Layout, verdicts: &[&Event]) {
    let Layout { band_y, axis_y, .. } = *l;
    let x = |ms: u64| l.x(ms);
    // Conclusive gate verdicts: a line across the waves and the instances.
    for e in verdicts {
        let Some(at) = parse_ms(&e.at) else { continue };
        let verdict = if is_judgement(e) {
            Some("judgement")
        } else {
            e.data.pointer("/verdict/verdict").and_then(|v| v.as_str())
        };
        let colour = match verdict {
            Some("pass") => PASS,
            Some("fail") => FAIL,
            Some("judgement") => JUDGED,
            _ => continue,
        };
        out.push_str(&format!(
            r#"<line class="gate {}" x1="{:.1}" y1="{band_y}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>"#,
            verdict.unwrap_or_default(),
            x(at),
            x(at),
            axis_y - 6.0
        ));
    }
}

fn draw_axis(out: &mut String, l: &Layout) {
    let Layout {
        t0,
        t1,
        label_w,
        axis_w,
        axis_y,
        ..
    } = *l;
    let x = |ms: u64| l.x(ms);
    // Time axis.
    out.push_str(&format!(
        r##"<line x1="{label_w}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#98a2b3"/>"##,
        label_w + axis_w
    ));
    let step = tick_step(t1 - t0);
    let mut tick = 0;
    while t0 + tick <= t1 {
        let tx = x(t0 + tick);
        out.push_str(&format!(
            r##"<line x1="{tx:.1}" y1="{axis_y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#98a2b3"/><text x="{tx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#475467">{}</text>"##,
            axis_y + 4.0,
            axis_y + 16.0,
            offset(tick)
        ));
        tick += step;
    }
}

fn draw_legend(out: &mut String, l: &Layout, verdicts: &[&Event]) {
    let Layout { t0, legend_y, .. } = *l;
    // Legend, then the verdicts in words.
    let mut lx = 8.0;
    for (colour, name, line) in [
        (OLD, "previous version", false),
        (NEW, "new version", false),
        (BAD, "new version, rolled back", false),
        (PASS, "gate passed", true),
        (FAIL, "gate failed", true),
        (JUDGED, "moved on by someone", true),
    ] {
        if line {
            out.push_str(&format!(
                r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>"#,
                legend_y - 4.0,
                lx + 14.0,
                legend_y - 4.0
            ));
        } else {
            out.push_str(&format!(
                r#"<rect x="{lx}" y="{:.1}" width="14" height="10" rx="2" fill="{colour}"/>"#,
                legend_y - 9.0
            ));
        }
        out.push_str(&format!(
            r##"<text x="{:.1}" y="{legend_y:.1}" font-size="11" fill="#475467">{name}</text>"##,
            lx + 18.0
        ));
        lx += 26.0 + name.len() as f64 * 6.2;
    }
    for (n, e) in verdicts.iter().enumerate() {
        let v = &e.data["verdict"];
        let mut line = if e.kind == "release.overdue" {
            format!(
                "{} · wave {} inconclusive past the policy's deadline: {} ({})",
                parse_ms(&e.at)
                    .map(|at| offset(at - t0))
                    .unwrap_or_default(),
                e.data["wave"].as_u64().map(|w| w + 1).unwrap_or_default(),
                e.data["then"].as_str().unwrap_or_default(),
                e.data["detail"].as_str().unwrap_or_default()
            )
        } else if is_judgement(e) {
            format!(
                "{} · wave {} {} by {}: {}",
                parse_ms(&e.at)
                    .map(|at| offset(at - t0))
                    .unwrap_or_default(),
                e.data["from_wave"]
                    .as_u64()
                    .map(|w| w + 1)
                    .unwrap_or_default(),
                if e.kind == "release.skipped" {
                    "skipped"
                } else {
                    "promoted"
                },
                e.actor,
                e.data["reason"].as_str().unwrap_or_default()
            )
        } else {
            format!(
                "{} · wave {} gate {}{}{}",
                parse_ms(&e.at)
                    .map(|at| offset(at - t0))
                    .unwrap_or_default(),
                e.data["wave"].as_u64().map(|w| w + 1).unwrap_or_default(),
                v.get("verdict").and_then(|x| x.as_str()).unwrap_or("?"),
                v.get("gate")
                    .and_then(|x| x.as_str())
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default(),
                v.get("detail")
                    .and_then(|x| x.as_str())
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default(),
            )
        };
        if line.chars().count() > 140 {
            line = line.chars().take(139).collect::<String>() + "…";
        }
        out.push_str(&format!(
            r##"<text class="verdict" x="8" y="{:.1}" font-size="11" fill="#344054">{}</text>"##,
            legend_y + 22.0 + n as f64 * 16.0,
            esc(&line)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    const NEW_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const OLD_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn event(seq: i64, ms: u64, kind: &str, subject: &str, data: serde_json::Value) -> Event {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Event {
            seq,
            at,
            kind: kind.into(),
            subject: subject.into(),
            actor: "control".into(),
            data,
        }
    }

    fn release() -> ReleaseRow {
        ReleaseRow {
            id: 7,
            environment: "production".into(),
            version: rampart_api::VersionId::parse(NEW_ID).expect("an id"),
            previous: rampart_api::VersionId::parse(OLD_ID).expect("an id"),
            intent: rampart_rollout::Intent {
                version: NEW_ID.into(),
                previous: Some(OLD_ID.into()),
                plan: rampart_rollout::Plan::standard(1_000),
                state: rampart_rollout::ReleaseState::RolledBack,
                wave: 0,
                wave_started_ms: 0,
            },
            cohort: vec!["p0".into()],
            gate: None,
            reason: Some("gate failed".into()),
            created_at: String::new(),
        }
    }

    #[test]
    fn the_story_ends_once_the_environment_settles_and_spans_follow_the_applies() {
        let t = 1_800_000_000_000;
        let events = vec![
            event(1, t, "release.started", "production", j!({"release": 7})),
            event(
                2,
                t + 10,
                "release.wave",
                "production",
                j!({"release": 7, "wave": 0}),
            ),
            event(
                3,
                t + 500,
                "instance.applied",
                "p0",
                j!({"version": NEW_ID, "previous": OLD_ID}),
            ),
            event(4, t + 900, "alert.fired", "production", j!({"release": 7})),
            event(
                5,
                t + 1_500,
                "gate.verdict",
                "production",
                j!({"release": 7, "wave": 0, "verdict": {"verdict": "fail", "gate": "error_ceiling"}}),
            ),
            event(
                6,
                t + 1_501,
                "release.rolled_back",
                "production",
                j!({"release": 7, "to": OLD_ID}),
            ),
            event(
                7,
                t + 2_000,
                "instance.applied",
                "p0",
                j!({"version": OLD_ID, "previous": NEW_ID}),
            ),
            event(
                8,
                t + 2_100,
                "environment.converged",
                "production",
                j!({"version": OLD_ID}),
            ),
            event(
                9,
                t + 9_000,
                "instance.applied",
                "p1",
                j!({"version": "other", "previous": OLD_ID}),
            ),
        ];
        let story = Story::new(release(), events);
        let kinds: Vec<&str> = story.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "release.started",
                "release.wave",
                "instance.applied",
                "gate.verdict",
                "release.rolled_back",
                "instance.applied",
                "environment.converged"
            ]
        );
        assert_eq!(
            story.spans("p0"),
            vec![
                (t, t + 500, OLD_ID.to_owned()),
                (t + 500, t + 2_000, NEW_ID.to_owned()),
                (t + 2_000, t + 2_350, OLD_ID.to_owned())
            ]
        );
        let svg = svg(&story);
        assert_eq!(svg.matches(r#"class="span new-rolled-back""#).count(), 1);
        assert_eq!(svg.matches(r#"class="gate fail""#).count(), 1);
        assert!(svg.contains("wave 1 · 1 instance"), "{svg}");
    }

    #[test]
    fn a_release_without_events_says_so() {
        let story = Story::new(release(), vec![]);
        assert!(svg(&story).contains("no recorded events"));
    }
}
