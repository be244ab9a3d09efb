//! The OTLP/HTTP exporter: batches of spans as JSON (`ExportTraceServiceRequest`, the OTLP
//! JSON encoding: ids in hex, times as decimal strings) POSTed to the traces endpoint, each
//! under `tracing.timeout`, through the gateway's resolver. One export at a time; spans that
//! arrive meanwhile wait in the bounded queue or are dropped there, never on a request.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use rampart_model::TracingConfig;
use rampart_net::Resolver;
use rampart_net::client::{HttpsClient, fetch, https_client};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

use super::{Span, Value};
use crate::metrics::Metrics;

/// Most spans in one export.
const BATCH: usize = 512;
/// How long a batch waits for more spans once it has one.
const LINGER: Duration = Duration::from_millis(200);

pub(super) struct Exporter {
    config: TracingConfig,
    client: HttpsClient,
    exported: Counter,
    failed: Counter,
}

impl Exporter {
    pub(super) fn new(config: &TracingConfig, resolver: &Resolver, metrics: &Metrics) -> Exporter {
        Exporter {
            config: config.clone(),
            client: https_client(resolver, config.timeout),
            exported: metrics.trace_spans_exported(),
            failed: metrics.trace_spans_failed(),
        }
    }

    async fn export(&self, body: Bytes, spans: u64) {
        let req = Request::post(self.config.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let Ok(req) = req else {
            self.failed.inc_by(spans);
            return;
        };
        let sent = tokio::time::timeout(self.config.timeout, fetch(&self.client, req, 64 * 1024));
        match sent.await {
            Ok(Ok((status, _))) if status.is_success() => {
                self.exported.inc_by(spans);
            }
            outcome => {
                self.failed.inc_by(spans);
                tracing::debug!(?outcome, endpoint = %self.config.endpoint, "span export failed");
            }
        }
    }
}

/// Runs until every sender is gone. Each span is encoded as it arrives, so the work is spread
/// over the batch's linger instead of done at once when it is sent.
pub(super) async fn run(mut rx: mpsc::Receiver<Span>, exporter: Exporter) {
    let mut body = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        body.clear();
        open_request(&mut body, &exporter.config.service_name);
        push_span(&mut body, &first, true);
        let mut count = 1;
        let _ = tokio::time::timeout(LINGER, async {
            while count < BATCH {
                match rx.recv().await {
                    Some(span) => {
                        push_span(&mut body, &span, false);
                        count += 1;
                    }
                    None => return,
                }
            }
        })
        .await;
        close_request(&mut body);
        exporter
            .export(Bytes::copy_from_slice(&body), count as u64)
            .await;
    }
}

fn attribute(key: &str, value: &Value) -> Json {
    match value {
        Value::Str(s) => json!({ "key": key, "value": { "stringValue": s } }),
        // OTLP JSON writes 64-bit integers as strings.
        Value::Int(i) => json!({ "key": key, "value": { "intValue": i.to_string() } }),
    }
}

/// The start of an `ExportTraceServiceRequest` in OTLP's JSON encoding, up to its spans.
fn open_request(out: &mut Vec<u8>, service: &str) {
    let resource =
        json!({ "attributes": [attribute("service.name", &Value::Str(service.to_owned()))] });
    let scope = json!({ "name": "rampart", "version": env!("CARGO_PKG_VERSION") });
    let _ = write!(
        out,
        "{{\"resourceSpans\":[{{\"resource\":{resource},\"scopeSpans\":[{{\"scope\":{scope},\"spans\":["
    );
}

fn close_request(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}]}]}");
}

fn push_span(out: &mut Vec<u8>, s: &Span, first: bool) {
    if !first {
        out.push(b',');
    }
    let _ = serde_json::to_writer(&mut *out, &span(s));
}

fn span(s: &Span) -> Json {
    let mut span = json!({
        "traceId": hex::encode(s.trace_id),
        "spanId": hex::encode(s.span_id),
        "name": s.name,
        "kind": s.kind as u8,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        // STATUS_CODE_ERROR (2) or UNSET (0).
        "status": { "code": if s.error { 2 } else { 0 } },
    });
    if let Some(p) = s.parent_id {
        span["parentSpanId"] = Json::String(hex::encode(p));
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Kind;

    #[test]
    fn a_batch_is_one_valid_export_request() {
        let one = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_id: Some([3; 8]),
            name: "GET r".into(),
            kind: Kind::Server,
            start_ns: 10,
            end_ns: 20,
            attributes: vec![("http.response.status_code", Value::Int(200))],
            error: false,
        };
        let mut body = Vec::new();
        open_request(&mut body, "edge");
        push_span(&mut body, &one, true);
        push_span(&mut body, &one, false);
        close_request(&mut body);
        let doc: Json = serde_json::from_slice(&body).expect("valid JSON");
        let rs = &doc["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "edge"
        );
        let spans = rs["scopeSpans"][0]["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["traceId"], "01010101010101010101010101010101");
        assert_eq!(spans[0]["parentSpanId"], "0303030303030303");
        assert_eq!(spans[0]["startTimeUnixNano"], "10");
        assert_eq!(spans[0]["attributes"][0]["value"]["intValue"], "200");
    }
}
