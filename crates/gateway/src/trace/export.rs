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
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Span, Value};
use crate::hex_text;
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

/// A span as OTLP's JSON encoding spells it, written straight from the span (no
/// intermediate JSON tree).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OtlpSpan<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<&'a str>,
    name: &'a str,
    kind: u8,
    /// OTLP JSON writes 64-bit integers as strings.
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<Attribute<'a>>,
    status: Status,
}

#[derive(Serialize)]
struct Attribute<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    Str(&'a str),
    #[serde(rename = "intValue")]
    Int(String),
}

impl<'a> AnyValue<'a> {
    fn of(value: &'a Value) -> AnyValue<'a> {
        match value {
            Value::Str(s) => AnyValue::Str(s),
            Value::Int(i) => AnyValue::Int(i.to_string()),
        }
    }
}

#[derive(Serialize)]
struct Status {
    /// STATUS_CODE_ERROR (2) or UNSET (0).
    code: u8,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

/// The start of an `ExportTraceServiceRequest` in OTLP's JSON encoding, up to its spans.
fn open_request(out: &mut Vec<u8>, service: &str) {
    let resource = [Attribute {
        key: "service.name",
        value: AnyValue::Str(service),
    }];
    let scope = Scope {
        name: "rampart",
        version: env!("CARGO_PKG_VERSION"),
    };
    out.extend_from_slice(b"{\"resourceSpans\":[{\"resource\":{\"attributes\":");
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &resource);
    out.extend_from_slice(b"},\"scopeSpans\":[{\"scope\":");
    let _ = serde_json::to_writer(&mut *out, &scope);
    out.extend_from_slice(b",\"spans\":[");
}

fn close_request(out: &mut Vec<u8>) {
    out.extend_from_slice(b"]}]}]}");
}

fn push_span(out: &mut Vec<u8>, s: &Span, first: bool) {
    if !first {
        out.push(b',');
    }
    let trace_id: [u8; 32] = hex_text::encode(&s.trace_id);
    let span_id: [u8; 16] = hex_text::encode(&s.span_id);
    let mut parent_id = [0u8; 16];
    let parent = s.parent_id.map(|p| {
        hex_text::encode_into(&p, &mut parent_id);
        ascii(&parent_id)
    });
    let span = OtlpSpan {
        trace_id: ascii(&trace_id),
        span_id: ascii(&span_id),
        parent_span_id: parent,
        name: &s.name,
        kind: s.kind as u8,
        start_time_unix_nano: s.start_ns.to_string(),
        end_time_unix_nano: s.end_ns.to_string(),
        attributes: s
            .attributes
            .iter()
            .map(|(key, value)| Attribute {
                key,
                value: AnyValue::of(value),
            })
            .collect(),
        status: Status {
            code: if s.error { 2 } else { 0 },
        },
    };
    let _ = serde_json::to_writer(&mut *out, &span);
}

/// Hex digits as text (they are ASCII).
fn ascii(hex: &[u8]) -> &str {
    std::str::from_utf8(hex).unwrap_or_default()
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
        let root = Span {
            parent_id: None,
            error: true,
            name: "needs \"escaping\"".into(),
            attributes: vec![("url.path", Value::Str("/a".into()))],
            ..one.clone()
        };
        push_span(&mut body, &root, false);
        close_request(&mut body);
        let doc: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
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
    }
}
