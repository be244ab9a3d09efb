//! The OTLP/HTTP exporter: batches of spans as JSON (`ExportTraceServiceRequest`, the OTLP
//! JSON encoding: ids in hex, times as decimal strings) POSTed to the traces endpoint, each
//! under `tracing.timeout`, through the gateway's resolver. One export at a time; spans that
//! arrive meanwhile wait in the bounded queue or are dropped there, never on a request.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use rampart_model::TracingConfig;
use rampart_net::Resolver;
use rampart_net::client::{HttpsClient, fetch, https_client};
use tokio::sync::mpsc;

use super::{Span, Value};
use crate::metrics::Metrics;
use crate::{hex_text, json_text};

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

/// The start of an `ExportTraceServiceRequest` in OTLP's JSON encoding, up to its spans.
fn open_request(out: &mut Vec<u8>, service: &str) {
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    out.extend_from_slice(b"{\"key\":\"service.name\",\"value\":{\"stringValue\":");
    json_text::string(out, service.as_bytes());
    out.extend_from_slice(b"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"rampart\",\"version\":");
    json_text::string(out, env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"},\"spans\":[");
}

fn close_request(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}]}]}");
}

/// A span as OTLP's JSON encoding spells it (ids in hex, 64-bit times as decimal strings),
/// written straight from the span: keys are constant bytes, values checked for escaping.
fn push_span(out: &mut Vec<u8>, s: &Span, first: bool) {
    if !first {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"traceId\":\"");
    out.extend_from_slice(&hex_text::encode::<16, 32>(&s.trace_id));
    out.extend_from_slice(b"\",\"spanId\":\"");
    out.extend_from_slice(&hex_text::encode::<8, 16>(&s.span_id));
    if let Some(parent) = &s.parent_id {
        out.extend_from_slice(b"\",\"parentSpanId\":\"");
        out.extend_from_slice(&hex_text::encode::<8, 16>(parent));
    }
    out.extend_from_slice(b"\",\"name\":");
    json_text::string(out, s.name.as_bytes());
    out.extend_from_slice(b",\"kind\":");
    json_text::integer(out, s.kind as u8);
    out.extend_from_slice(b",\"startTimeUnixNano\":\"");
    json_text::integer(out, s.start_ns);
    out.extend_from_slice(b"\",\"endTimeUnixNano\":\"");
    json_text::integer(out, s.end_ns);
    out.extend_from_slice(b"\",\"attributes\":[");
    for (i, (key, value)) in s.attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        json_text::string(out, key.as_bytes());
        match value {
            Value::Str(v) => {
                out.extend_from_slice(b",\"value\":{\"stringValue\":");
                json_text::string(out, v.as_bytes());
            }
            Value::Int(n) => {
                out.extend_from_slice(b",\"value\":{\"intValue\":\"");
                json_text::integer(out, *n);
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"}}");
    }
    // STATUS_CODE_ERROR (2) or UNSET (0).
    out.extend_from_slice(if s.error {
        b"],\"status\":{\"code\":2}}"
    } else {
        b"],\"status\":{\"code\":0}}"
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Kind;

    /// One export request holding `spans`, parsed back: its `resourceSpans[0]`.
    fn exported(service: &str, spans: &[&Span]) -> serde_json::Value {
        let mut body = Vec::new();
        open_request(&mut body, service);
        for (i, span) in spans.iter().enumerate() {
            push_span(&mut body, span, i == 0);
        }
        close_request(&mut body);
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        doc["resourceSpans"][0].clone()
    }

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
        let root = Span {
            parent_id: None,
            error: true,
            name: "needs \"escaping\"".into(),
            attributes: vec![("url.path", Value::Str("/a".into()))],
            ..one.clone()
        };
        let rs = exported("edge", &[&one, &root]);
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
        assert_eq!(spans[0]["kind"], 2);
        assert_eq!(spans[0]["status"]["code"], 0);
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "rampart");
        assert!(
            spans[1].get("parentSpanId").is_none(),
            "a root span has no parent"
        );
        assert_eq!(spans[1]["name"], "needs \"escaping\"");
        assert_eq!(spans[1]["status"]["code"], 2);
        assert_eq!(spans[1]["attributes"][0]["value"]["stringValue"], "/a");

        // A service name and attribute values that JSON must escape, a negative integer.
        let odd = Span {
            attributes: vec![
                ("url.path", Value::Str("/a\"b\\c\u{1}".into())),
                ("delta", Value::Int(-7)),
            ],
            ..one
        };
        let rs = exported("edge \"west\"", &[&odd]);
        assert_eq!(
            rs["resource"]["attributes"][0]["value"]["stringValue"],
            "edge \"west\""
        );
        let attrs = &rs["scopeSpans"][0]["spans"][0]["attributes"];
        assert_eq!(attrs[0]["value"]["stringValue"], "/a\"b\\c\u{1}");
        assert_eq!(attrs[1]["value"]["intValue"], "-7");
    }
}
