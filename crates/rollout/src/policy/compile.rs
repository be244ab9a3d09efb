//! A policy document checked and turned into a [`Plan`], and a plan written back as a document
//! (what `rampart policy show` prints for an environment on its default).

use std::time::Duration;

use rampart_model::ConfigError;
use rampart_model::duration::{DurationStr, format_duration};

use super::document::*;
use crate::gates::GateSettings;
use crate::plan::{OnInconclusive, Plan, Wave, WaveTarget};
use crate::probes::Probe;
use crate::queries::Prometheus;

const MAX_WAVES: usize = 20;
const MAX_PROBES: usize = 16;
const MAX_QUERIES: usize = 16;
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Collects every problem of a document, each with its path.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }

    /// A duration in `[min, max]`, or a problem at `path`.
    fn duration(
        &mut self,
        path: &str,
        d: Option<&DurationStr>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> u64 {
        let Some(d) = d else {
            return default.as_millis() as u64;
        };
        match d.parse() {
            Ok(v) if v < min || v > max => {
                let (lo, hi) = (format_duration(min), format_duration(max));
                self.add(path, format!("{d} is out of range ({lo} to {hi})"));
                0
            }
            Ok(v) => v.as_millis() as u64,
            Err(e) => {
                self.add(path, e);
                0
            }
        }
    }

    /// A number in `[min, max]`, or a problem at `path`.
    fn share(&mut self, path: &str, v: Option<f64>, default: f64, (min, max): (f64, f64)) -> f64 {
        match v {
            None => default,
            Some(x) if x.is_finite() && x >= min && x <= max => x,
            Some(x) => {
                self.add(path, format!("{x} is out of range ({min} to {max})"));
                default
            }
        }
    }
}

pub(super) fn compile(doc: &PolicyDocument) -> Result<Plan, Vec<ConfigError>> {
    let mut p = Problems::default();
    let waves = waves(&mut p, &doc.waves);
    let gates = gates(&mut p, doc.gates.as_ref());
    let day = Duration::from_secs(86_400);
    let liveness_ms = p.duration(
        "liveness",
        doc.liveness.as_ref(),
        Duration::from_secs(5),
        (Duration::from_secs(1), Duration::from_secs(600)),
    );
    let on_inconclusive = doc.on_inconclusive.as_ref().map(|o| OnInconclusive {
        after_ms: p.duration(
            "on_inconclusive.after",
            Some(&o.after),
            Duration::ZERO,
            (Duration::from_secs(1), 7 * day),
        ),
        action: o.action,
    });
    let probes = probes(&mut p, &doc.probes);
    let prometheus = doc.prometheus.as_ref().map(|d| prometheus(&mut p, d));
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Plan {
        waves,
        gates,
        liveness_ms,
        on_inconclusive,
        probes,
        prometheus,
        source: String::new(),
    })
}

fn waves(p: &mut Problems, docs: &[WaveDoc]) -> Vec<Wave> {
    if docs.is_empty() {
        p.add(
            "waves",
            "a policy needs at least one wave (e.g. `- percent: 100`)",
        );
    }
    if docs.len() > MAX_WAVES {
        p.add(
            "waves",
            format!("{} waves; at most {MAX_WAVES}", docs.len()),
        );
    }
    let mut out = vec![];
    let mut last_percent = 0;
    for (i, w) in docs.iter().enumerate() {
        let path = format!("waves[{i}]");
        let target = match (w.instances, w.percent) {
            (Some(_), Some(_)) => {
                p.add(&path, "give `instances` or `percent`, not both");
                continue;
            }
            (None, None) => {
                p.add(&path, "a wave needs `instances: N` or `percent: N`");
                continue;
            }
            (Some(0), None) => {
                p.add(format!("{path}.instances"), "must be at least 1");
                continue;
            }
            (Some(n), None) => WaveTarget::Instances(n),
            (None, Some(pc)) if pc == 0 || pc > 100 => {
                p.add(format!("{path}.percent"), format!("{pc} is not in 1–100"));
                continue;
            }
            (None, Some(pc)) if pc < last_percent => {
                let m = format!("{pc}% is smaller than the wave before ({last_percent}%)");
                p.add(format!("{path}.percent"), m);
                continue;
            }
            (None, Some(pc)) => {
                last_percent = pc;
                WaveTarget::Percent(pc)
            }
        };
        let bake_ms = p.duration(
            &format!("{path}.bake"),
            w.bake.as_ref(),
            Duration::ZERO,
            (Duration::ZERO, Duration::from_secs(86_400)),
        );
        out.push(Wave {
            target,
            bake_ms,
            pause: w.pause,
        });
    }
    if let Some(w) = docs.last()
        && w.percent != Some(100)
    {
        let at = format!("waves[{}]", docs.len() - 1);
        p.add(
            at,
            "the last wave must cover every instance (`percent: 100`)",
        );
    }
    out
}

fn gates(p: &mut Problems, doc: Option<&GatesDoc>) -> GateSettings {
    let d = GateSettings::default();
    let Some(g) = doc else {
        return d;
    };
    let min_requests = match g.min_requests {
        Some(n) if n > 1_000_000 => {
            p.add("gates.min_requests", format!("{n} is over 1000000"));
            d.min_requests
        }
        Some(n) => n,
        None => d.min_requests,
    };
    GateSettings {
        min_requests,
        ceiling: p.share(
            "gates.error_ceiling",
            g.error_ceiling,
            d.ceiling,
            (0.0, 1.0),
        ),
        alpha: p.share("gates.alpha", g.alpha, d.alpha, (1e-6, 0.5)),
        p99_ratio: p.share("gates.p99_ratio", g.p99_ratio, d.p99_ratio, (1.0, 100.0)),
        max_shed_rate: p.share(
            "gates.max_shed_rate",
            g.max_shed_rate,
            d.max_shed_rate,
            (0.0, 1.0),
        ),
        ..d
    }
}

fn unique_name(p: &mut Problems, seen: &mut Vec<String>, path: &str, name: &str) {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        p.add(
            format!("{path}.name"),
            "a name is 1–64 visible ASCII characters",
        );
    } else if seen.iter().any(|s| s == name) {
        p.add(format!("{path}.name"), format!("{name:?} is used twice"));
    }
    seen.push(name.to_owned());
}

fn probes(p: &mut Problems, docs: &[ProbeDoc]) -> Vec<Probe> {
    if docs.len() > MAX_PROBES {
        p.add(
            "probes",
            format!("{} probes; at most {MAX_PROBES}", docs.len()),
        );
    }
    let mut names = vec![];
    let mut out = vec![];
    for (i, d) in docs.iter().enumerate() {
        let path = format!("probes[{i}]");
        unique_name(p, &mut names, &path, &d.name);
        let method = d.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            let m = format!("{method:?} is not one of {}", METHODS.join(", "));
            p.add(format!("{path}.method"), m);
        }
        if !d.path.starts_with('/') || d.path.parse::<http::uri::PathAndQuery>().is_err() {
            let m = format!("{:?} is not a path starting with `/`", d.path);
            p.add(format!("{path}.path"), m);
        }
        if let Some(h) = &d.host
            && h.parse::<http::uri::Authority>().is_err()
        {
            p.add(format!("{path}.host"), format!("{h:?} is not a host name"));
        }
        for (k, v) in &d.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                p.add(format!("{path}.headers.{k}"), "not a valid header");
            }
        }
        let expect_status = d.expect_status.unwrap_or(200);
        if !(100..=599).contains(&expect_status) {
            let m = format!("{expect_status} is not an HTTP status");
            p.add(format!("{path}.expect_status"), m);
        }
        let per_second = d.rate.unwrap_or(2);
        if !(1..=50).contains(&per_second) {
            let m = format!("{per_second} per second is not in 1–50");
            p.add(format!("{path}.rate"), m);
        }
        out.push(Probe {
            name: d.name.clone(),
            method,
            path: d.path.clone(),
            host: d.host.clone(),
            headers: d.headers.clone(),
            expect_status,
            per_second,
        });
    }
    out
}

fn prometheus(p: &mut Problems, d: &PrometheusDoc) -> Prometheus {
    match d.url.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
        _ => p.add(
            "prometheus.url",
            format!("{:?} is not an http(s) URL with a host", d.url),
        ),
    }
    let interval_ms = p.duration(
        "prometheus.interval",
        d.interval.as_ref(),
        Duration::from_secs(10),
        (Duration::from_secs(1), Duration::from_secs(600)),
    );
    let deadline_ms = p.duration(
        "prometheus.deadline",
        d.deadline.as_ref(),
        Duration::from_secs(5),
        (Duration::from_millis(100), Duration::from_secs(30)),
    );
    if d.queries.is_empty() || d.queries.len() > MAX_QUERIES {
        let m = format!("{} queries; give 1 to {MAX_QUERIES}", d.queries.len());
        p.add("prometheus.queries", m);
    }
    let mut names = vec![];
    for (i, q) in d.queries.iter().enumerate() {
        let path = format!("prometheus.queries[{i}]");
        unique_name(p, &mut names, &path, &q.name);
        if q.query.trim().is_empty() || q.query.len() > 4096 {
            p.add(format!("{path}.query"), "a query is 1–4096 characters");
        }
        if !q.threshold.is_finite() {
            p.add(format!("{path}.threshold"), "must be a finite number");
        }
    }
    Prometheus {
        url: d.url.trim_end_matches('/').to_owned(),
        interval_ms,
        deadline_ms,
        queries: d.queries.clone(),
    }
}

fn duration(ms: u64) -> DurationStr {
    DurationStr(format_duration(Duration::from_millis(ms)))
}

/// The document a plan reads back as; compiling it gives the plan again.
pub(super) fn document(plan: &Plan) -> PolicyDocument {
    let g = &plan.gates;
    PolicyDocument {
        waves: plan
            .waves
            .iter()
            .map(|w| WaveDoc {
                instances: match w.target {
                    WaveTarget::Instances(n) => Some(n),
                    WaveTarget::Percent(_) => None,
                },
                percent: match w.target {
                    WaveTarget::Percent(n) => Some(n),
                    WaveTarget::Instances(_) => None,
                },
                bake: Some(duration(w.bake_ms)),
                pause: w.pause,
            })
            .collect(),
        gates: Some(GatesDoc {
            min_requests: Some(g.min_requests),
            error_ceiling: Some(g.ceiling),
            alpha: Some(g.alpha),
            p99_ratio: Some(g.p99_ratio),
            max_shed_rate: Some(g.max_shed_rate),
        }),
        liveness: Some(duration(plan.liveness_ms)),
        on_inconclusive: plan.on_inconclusive.map(|o| OnInconclusiveDoc {
            after: duration(o.after_ms),
            action: o.action,
        }),
        probes: plan
            .probes
            .iter()
            .map(|pr| ProbeDoc {
                name: pr.name.clone(),
                method: Some(pr.method.clone()),
                path: pr.path.clone(),
                host: pr.host.clone(),
                headers: pr.headers.clone(),
                expect_status: Some(pr.expect_status),
                rate: Some(pr.per_second),
            })
            .collect(),
        prometheus: plan.prometheus.as_ref().map(|pm| PrometheusDoc {
            url: pm.url.clone(),
            interval: Some(duration(pm.interval_ms)),
            deadline: Some(duration(pm.deadline_ms)),
            queries: pm.queries.clone(),
        }),
    }
}
