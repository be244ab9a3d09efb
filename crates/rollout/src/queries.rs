//! Prometheus gates: a query's answer against its threshold, and how the answers join the
//! agents' verdict.
//!
//! A query that cannot be answered (no series, NaN, an error or a deadline) never passes: it is
//! inconclusive by default (the wave holds), or a failure when the policy says
//! `on_no_data: fail`. A wave whose agents pass still holds until every query has been
//! answered during the wave.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gates::Verdict;

/// How a query's value must compare with its threshold to pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Below => "<",
            Comparison::AtMost => "<=",
            Comparison::Above => ">",
            Comparison::AtLeast => ">=",
        }
    }
}

/// What a query without a usable value (no series, NaN, an error) counts as. Never a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnNoData {
    #[default]
    Inconclusive,
    Fail,
}

impl OnNoData {
    fn is_default(&self) -> bool {
        *self == OnNoData::default()
    }
}

/// One Prometheus gate, as a policy writes it and the plan keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub name: String,
    /// PromQL returning one number (aggregate with `sum`, `max`, …). `{{environment}}`,
    /// `{{version}}` and `{{previous}}` are replaced with the release's.
    pub query: String,
    /// The value passes when `value <comparison> threshold`: `<`, `<=`, `>` or `>=`.
    pub comparison: Comparison,
    pub threshold: f64,
    /// No series, NaN, or an error: `inconclusive` (default; the wave holds) or `fail`.
    /// Never a pass.
    #[serde(default, skip_serializing_if = "OnNoData::is_default")]
    pub on_no_data: OnNoData,
}

/// The Prometheus server a plan's queries go to, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prometheus {
    pub url: String,
    /// How often each query is asked while a wave runs.
    pub interval_ms: u64,
    /// Each query's deadline; past it the answer is an error (no data).
    pub deadline_ms: u64,
    pub queries: Vec<Query>,
}

/// One answer from Prometheus, as the caller read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sample", content = "value", rename_all = "snake_case")]
pub enum Sample {
    Value(f64),
    /// The query matched no series.
    Empty,
    /// The query failed, timed out, or answered something that is not one number.
    Error(String),
}

/// The latest answer to a query, and when it came (ms, the caller's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryOutcome {
    pub name: String,
    pub at_ms: u64,
    pub sample: Sample,
}

/// One query's verdict.
pub fn judge_query(q: &Query, sample: &Sample) -> Verdict {
    let no_data = |why: String| match q.on_no_data {
        OnNoData::Inconclusive => Verdict::Inconclusive {
            detail: format!("query {}: {why}", q.name),
        },
        OnNoData::Fail => Verdict::Fail {
            gate: format!("prometheus:{}", q.name),
            detail: format!("{why} (on_no_data: fail)"),
        },
    };
    match sample {
        Sample::Empty => no_data("no series matched".into()),
        Sample::Error(e) => no_data(e.clone()),
        Sample::Value(v) if v.is_nan() => no_data("the value is NaN".into()),
        Sample::Value(v) if q.comparison.holds(*v, q.threshold) => Verdict::Pass {
            detail: format!("{} = {v} {} {}", q.name, q.comparison.symbol(), q.threshold),
        },
        Sample::Value(v) => Verdict::Fail {
            gate: format!("prometheus:{}", q.name),
            detail: format!(
                "{} = {v}, must be {} {}",
                q.query,
                q.comparison.symbol(),
                q.threshold
            ),
        },
    }
}

/// The agents' verdict joined with the queries' answers given since `since_ms` (the wave's
/// start). A failure anywhere fails; otherwise anything inconclusive (or a query not yet answered
/// in this wave) holds. The flag tells whether a query is what holds: a policy's
/// `on_inconclusive: promote` must not turn an unanswered query into a pass.
pub fn combine(
    agents: Verdict,
    prometheus: Option<&Prometheus>,
    outcomes: &[QueryOutcome],
    since_ms: u64,
) -> (Verdict, bool) {
    let Some(prometheus) = prometheus else {
        return (agents, false);
    };
    if matches!(agents, Verdict::Fail { .. }) {
        return (agents, false);
    }
    let mut passed = vec![];
    let mut held = vec![];
    for q in &prometheus.queries {
        let answer = outcomes
            .iter()
            .find(|o| o.name == q.name && o.at_ms >= since_ms);
        let verdict = match answer {
            Some(o) => judge_query(q, &o.sample),
            None => Verdict::Inconclusive {
                detail: format!("query {}: not yet answered in this wave", q.name),
            },
        };
        match verdict {
            Verdict::Fail { .. } => return (verdict, false),
            Verdict::Inconclusive { detail } => held.push(detail),
            Verdict::Pass { detail } => passed.push(detail),
        }
    }
    match agents {
        Verdict::Inconclusive { detail } => {
            held.insert(0, detail);
            (
                Verdict::Inconclusive {
                    detail: held.join("; "),
                },
                held.len() > 1,
            )
        }
        _ if !held.is_empty() => (
            Verdict::Inconclusive {
                detail: held.join("; "),
            },
            true,
        ),
        Verdict::Pass { detail } => (
            Verdict::Pass {
                detail: format!("{detail}; prometheus: {}", passed.join(", ")),
            },
            false,
        ),
        fail => (fail, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(on_no_data: OnNoData) -> Query {
        Query {
            name: "downstream".into(),
            query: "sum(rate(errors[1m]))".into(),
            comparison: Comparison::Below,
            threshold: 0.05,
            on_no_data,
        }
    }

    #[test]
    fn no_data_never_passes() {
        for on in [OnNoData::Inconclusive, OnNoData::Fail] {
            for sample in [
                Sample::Empty,
                Sample::Value(f64::NAN),
                Sample::Error("deadline".into()),
            ] {
                let v = judge_query(&query(on), &sample);
                assert!(!matches!(v, Verdict::Pass { .. }), "{sample:?} passed");
                let expect_fail = on == OnNoData::Fail;
                assert_eq!(matches!(v, Verdict::Fail { .. }), expect_fail, "{v:?}");
            }
        }
    }

    #[test]
    fn values_compare_with_the_threshold() {
        let q = query(OnNoData::Inconclusive);
        assert!(matches!(
            judge_query(&q, &Sample::Value(0.01)),
            Verdict::Pass { .. }
        ));
        assert!(matches!(
            judge_query(&q, &Sample::Value(0.05)),
            Verdict::Fail { .. }
        ));
        assert!(Comparison::AtMost.holds(0.05, 0.05));
        assert!(Comparison::AtLeast.holds(1.0, 0.5));
        assert!(!Comparison::Above.holds(0.5, 0.5));
    }

    #[test]
    fn answers_from_before_the_wave_do_not_count() {
        let p = Prometheus {
            url: "http://127.0.0.1:9090".into(),
            interval_ms: 1000,
            deadline_ms: 1000,
            queries: vec![query(OnNoData::Inconclusive)],
        };
        let pass = Verdict::Pass {
            detail: "agents".into(),
        };
        let old = [QueryOutcome {
            name: "downstream".into(),
            at_ms: 10,
            sample: Sample::Value(0.0),
        }];
        let (v, by_query) = combine(pass.clone(), Some(&p), &old, 20);
        assert!(
            matches!(v, Verdict::Inconclusive { .. }) && by_query,
            "{v:?}"
        );
        let (v, _) = combine(pass, Some(&p), &old, 10);
        assert!(matches!(v, Verdict::Pass { .. }), "{v:?}");
    }
}
