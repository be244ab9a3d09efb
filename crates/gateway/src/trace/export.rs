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

    async fn export(&self, spans: &[Span]) {
        let body = Bytes::from(encode(&self.config.service_name, spans).to_string());
        let req = Request::post(self.config.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let Ok(req) = req else {
            self.failed.inc_by(spans.len() as u64);
            return;
        };
        let sent = tokio::time::timeout(self.config.timeout, fetch(&self.client, req, 64 * 1024));
        match sent.await {
            Ok(Ok((status, _))) if status.is_success() => {
                self.exported.inc_by(spans.len() as u64);
            }
            outcome => {
                self.failed.inc_by(spans.len() as u64);
                tracing::debug!(?outcome, endpoint = %self.config.endpoint, "span export failed");
            }
        }
    }
}

/// Runs until every sender is gone.
pub(super) async fn run(mut rx: mpsc::Receiver<Span>, exporter: Exporter) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let _ = tokio::time::timeout(LINGER, async {
            while batch.len() < BATCH {
                match rx.recv().await {
                    Some(span) => batch.push(span),
                    None => return,
                }
            }
        })
        .await;
        exporter.export(&batch).await;
        batch.clear();
    }
}

fn attribute(key: &str, value: &Value) -> Json {
    match value {
        Value::Str(s) => json!({ "key": key, "value": { "stringValue": s } }),
        // OTLP JSON writes 64-bit integers as strings.
        Value::Int(i) => json!({ "key": key, "value": { "intValue": i.to_string() } }),
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding.
pub(super) fn encode(service: &str, spans: &[Span]) -> Json {
    let spans: Vec<Json> = spans
        .iter()
        .map(|s| {
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
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attribute("service.name", &Value::Str(service.to_owned()))] },
            "scopeSpans": [{
                "scope": { "name": "rampart", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }]
    })
}
