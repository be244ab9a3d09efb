//! Tracing: W3C Trace Context propagated (or started), and spans — the gateway's request, its
//! auth call, each upstream attempt — recorded for sampled traces and exported over OTLP.
//!
//! A request never waits for tracing: a finished span goes to a bounded queue (`try_send`;
//! past it the span is dropped and counted in `rampart_trace_spans_total{outcome="dropped"}`) and an
//! exporter task of its own sends batches under `tracing.timeout` (`export.rs`). A trace that
//! arrives with a `traceparent` follows its sampled flag; a new one is sampled at
//! `tracing.sample`. Every upstream attempt carries a `traceparent` naming its own span.

mod export;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use rampart_model::TracingConfig;
use rampart_net::Resolver;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::trace_context::{self, TraceParent};

/// OTLP span kinds.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Int(i64),
}

/// A finished span, as exported.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: bool,
}

/// A running tracer; cheap to clone. Its exporter ends when the last clone is gone.
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

struct Inner {
    config: TracingConfig,
    tx: mpsc::Sender<Span>,
    dropped: Counter,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

// Ids are never all zeros (an invalid id): zero, one draw in 2^64 (2^128), becomes one. A full
// range draw is one step of the generator; a range that leaves out zero costs a rejection
// loop (and for u128 a wide multiplication) on every request.
fn random_span_id() -> [u8; 8] {
    fastrand::u64(..).max(1).to_be_bytes()
}

fn random_trace_id() -> [u8; 16] {
    fastrand::u128(..).max(1).to_be_bytes()
}

impl Tracer {
    /// Starts the exporter (a task on the current runtime).
    pub fn start(config: &TracingConfig, resolver: &Resolver, metrics: &Metrics) -> Tracer {
        let (tx, rx) = mpsc::channel(config.buffer);
        tokio::spawn(export::run(
            rx,
            export::Exporter::new(config, resolver, metrics),
        ));
        Tracer {
            inner: Arc::new(Inner {
                config: config.clone(),
                tx,
                dropped: metrics.trace_spans_dropped(),
            }),
        }
    }

    pub fn config(&self) -> &TracingConfig {
        &self.inner.config
    }

    /// The trace a request belongs to: its `traceparent`'s, or a new one.
    pub fn begin(&self, headers: &HeaderMap) -> RequestTrace {
        let (trace_id, parent_id, sampled) = match trace_context::parse(headers) {
            Some(t) => (t.trace_id, Some(t.parent_id), t.sampled()),
            None => (
                random_trace_id(),
                None,
                fastrand::f64() < self.inner.config.sample,
            ),
        };
        RequestTrace {
            // Only a sampled trace records spans: an unsampled one holds no handle.
            tracer: sampled.then(|| self.clone()),
            trace_id,
            parent_id,
            span_id: random_span_id(),
            start_ns: if sampled { now_ns() } else { 0 },
            name: String::new(),
            attributes: Vec::new(),
            error: false,
        }
    }

    fn record(&self, span: Span) {
        if self.inner.tx.try_send(span).is_err() {
            self.inner.dropped.inc();
        }
    }
}

/// A child span being timed.
pub struct Child {
    span_id: [u8; 8],
    start_ns: u64,
}

/// One request's trace: its server span (recorded when dropped, that is when the response
/// body ends) and the children it started.
pub struct RequestTrace {
    /// Set when sampled (see [`RequestTrace::sampled`]).
    tracer: Option<Tracer>,
    pub trace_id: [u8; 16],
    parent_id: Option<[u8; 8]>,
    span_id: [u8; 8],
    start_ns: u64,
    /// The server span's name and attributes, filled in as the request goes.
    pub name: String,
    pub attributes: Vec<(&'static str, Value)>,
    pub error: bool,
}

impl RequestTrace {
    /// Whether the trace is sampled: only then does it hold the tracer its spans go to.
    pub fn sampled(&self) -> bool {
        self.tracer.is_some()
    }

    /// Starts a child span (its id is what the `traceparent` of a call it makes names).
    pub fn child(&self) -> Child {
        Child {
            span_id: random_span_id(),
            start_ns: if self.sampled() { now_ns() } else { 0 },
        }
    }

    /// The `traceparent` for a call made within `child`.
    pub fn traceparent(&self, child: &Child) -> HeaderValue {
        TraceParent::header(&self.trace_id, &child.span_id, self.sampled())
    }

    /// Ends a child span: recorded when the trace is sampled.
    pub fn end(
        &self,
        child: Child,
        name: String,
        kind: Kind,
        attributes: Vec<(&'static str, Value)>,
        error: bool,
    ) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        tracer.record(Span {
            trace_id: self.trace_id,
            span_id: child.span_id,
            parent_id: Some(self.span_id),
            name,
            kind,
            start_ns: child.start_ns,
            end_ns: now_ns(),
            attributes,
            error,
        });
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        let Some(tracer) = self.tracer.take() else {
            return;
        };
        tracer.record(Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            name: std::mem::take(&mut self.name),
            kind: Kind::Server,
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attributes: std::mem::take(&mut self.attributes),
            error: self.error,
        });
    }
}
