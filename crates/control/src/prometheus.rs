//! Asking Prometheus the queries of a release's policy (`POST /api/v1/query`), each under its
//! deadline, in the background: the reconciler never waits for Prometheus. It reads the latest
//! answers, and the planner judges them (`rampart_rollout::queries`).
//!
//! An answer is one number: a vector of one series or a scalar. No series is `Empty`; NaN is
//! kept as NaN; anything else (an error status, more than one series, a deadline, a malformed
//! body) is an `Error` that says what happened. None of them passes a gate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use rampart_net::client::{HttpsClient, fetch, https_client};
use rampart_rollout::{Prometheus, Query, QueryOutcome, Sample};

/// The largest answer read from Prometheus.
const MAX_ANSWER: usize = 1 << 20;

/// The latest answers per release, and the rounds in flight.
pub struct Asker {
    client: HttpsClient,
    rounds: Mutex<HashMap<i64, Round>>,
}

#[derive(Default)]
struct Round {
    answers: Vec<QueryOutcome>,
    asked_ms: u64,
    asking: bool,
}

/// What a query's `{{…}}` placeholders stand for.
pub struct Vars<'a> {
    pub environment: &'a str,
    pub version: &'a str,
    pub previous: &'a str,
}

impl Asker {
    pub fn new(resolver: &rampart_net::Resolver) -> Asker {
        Asker {
            client: https_client(resolver, Duration::from_secs(5)),
            rounds: Mutex::new(HashMap::new()),
        }
    }

    fn rounds(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Round>> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest answer to each query of `release`.
    pub fn answers(&self, release: i64) -> Vec<QueryOutcome> {
        self.rounds()
            .get(&release)
            .map(|r| r.answers.clone())
            .unwrap_or_default()
    }

    /// Forgets an ended release.
    pub fn forget(&self, release: i64) {
        self.rounds().remove(&release);
    }

    /// Starts a round of every query when the interval has passed since the last one and none
    /// is in flight. Returns at once; each answer lands when it comes (or at its deadline).
    pub fn ask_if_due(self: &Arc<Self>, release: i64, p: &Prometheus, vars: Vars<'_>, now_ms: u64) {
        {
            let mut rounds = self.rounds();
            let round = rounds.entry(release).or_default();
            if round.asking || now_ms.saturating_sub(round.asked_ms) < p.interval_ms {
                return;
            }
            round.asking = true;
            round.asked_ms = now_ms;
        }
        let asker = self.clone();
        let p = p.clone();
        let queries: Vec<(String, String)> = p
            .queries
            .iter()
            .map(|q| (q.name.clone(), expand(q, &vars)))
            .collect();
        tokio::spawn(async move {
            let deadline = Duration::from_millis(p.deadline_ms);
            let asks = queries.iter().map(|(name, query)| async {
                let sample =
                    match tokio::time::timeout(deadline, ask(&asker.client, &p.url, query)).await {
                        Ok(sample) => sample,
                        Err(_) => Sample::Error(format!("no answer within {} ms", p.deadline_ms)),
                    };
                QueryOutcome {
                    name: name.clone(),
                    at_ms: crate::release::now_ms(),
                    sample,
                }
            });
            let answers = futures_util::future::join_all(asks).await;
            for a in &answers {
                tracing::debug!(release, query = %a.name, sample = ?a.sample, "prometheus answered");
            }
            let mut rounds = asker.rounds();
            if let Some(round) = rounds.get_mut(&release) {
                round.answers = answers;
                round.asking = false;
            }
        });
    }
}

/// The query with its placeholders replaced.
fn expand(q: &Query, v: &Vars<'_>) -> String {
    q.query
        .replace("{{environment}}", v.environment)
        .replace("{{version}}", v.version)
        .replace("{{previous}}", v.previous)
}

/// One instant query, read as one number.
pub async fn ask(client: &HttpsClient, base: &str, query: &str) -> Sample {
    let body = match serde_urlencoded::to_string([("query", query)]) {
        Ok(b) => b,
        Err(e) => return Sample::Error(format!("encoding the query: {e}")),
    };
    let req = http::Request::post(format!("{base}/api/v1/query"))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(body)));
    let req = match req {
        Ok(r) => r,
        Err(e) => return Sample::Error(format!("building the request: {e}")),
    };
    match fetch(client, req, MAX_ANSWER).await {
        Ok((status, body)) => read_answer(status, &body),
        Err(e) => Sample::Error(format!("asking {base}: {e}")),
    }
}

/// Reads Prometheus's JSON answer.
pub fn read_answer(status: http::StatusCode, body: &[u8]) -> Sample {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Sample::Error(format!("HTTP {status}: the answer is not JSON"));
    };
    if v["status"] != "success" {
        let error = v["error"].as_str().unwrap_or("no error given");
        return Sample::Error(format!("HTTP {status}: {error}"));
    }
    let data = &v["data"];
    let value = match (data["resultType"].as_str(), &data["result"]) {
        (Some("vector"), serde_json::Value::Array(series)) => match series.as_slice() {
            [] => return Sample::Empty,
            [one] => &one["value"],
            many => {
                return Sample::Error(format!(
                    "{} series; a gate needs one number (aggregate with sum, max, …)",
                    many.len()
                ));
            }
        },
        (Some("scalar"), value) => value,
        (kind, _) => {
            return Sample::Error(format!(
                "a {} result; a gate needs a vector of one series or a scalar",
                kind.unwrap_or("missing")
            ));
        }
    };
    // [ timestamp, "value" ]; Prometheus writes NaN and ±Inf as strings too.
    match value.get(1).and_then(serde_json::Value::as_str) {
        Some(text) => match text.parse::<f64>() {
            Ok(x) => Sample::Value(x),
            Err(_) => Sample::Error(format!("{text:?} is not a number")),
        },
        None => Sample::Error("the result has no value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Sample {
        read_answer(http::StatusCode::OK, body.as_bytes())
    }

    #[test]
    fn answers_read_as_one_number_or_say_why_not() {
        let vector = |r: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{r}}}}}"#)
        };
        assert_eq!(
            read(&vector(r#"[{"metric":{},"value":[1,"0.25"]}]"#)),
            Sample::Value(0.25)
        );
        assert_eq!(read(&vector("[]")), Sample::Empty);
        assert!(
            matches!(read(&vector(r#"[{"metric":{},"value":[1,"NaN"]}]"#)), Sample::Value(x) if x.is_nan())
        );
        let two = vector(
            r#"[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]"#,
        );
        assert!(matches!(read(&two), Sample::Error(e) if e.starts_with("2 series")));
        assert_eq!(
            read(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#),
            Sample::Value(3.0)
        );
        assert!(matches!(
            read(r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#),
            Sample::Error(e) if e.contains("parse error")
        ));
        assert!(matches!(read("<html>"), Sample::Error(e) if e.contains("not JSON")));
    }
}
