//! Access-log lines: JSON (the fields the config names, in its order) or the NCSA Common Log
//! Format. Runs on the writer thread, never on a request's path.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_model::{AccessLogConfig, LogField, LogFormat};

use super::Entry;

pub(super) struct Format {
    format: LogFormat,
    fields: Vec<LogField>,
}

impl Format {
    pub(super) fn new(config: &AccessLogConfig) -> Format {
        Format {
            format: config.format,
            fields: config.fields.clone(),
        }
    }

    /// Appends one line, newline included.
    pub(super) fn line(&self, e: &Entry, out: &mut Vec<u8>) {
        match self.format {
            LogFormat::Json => self.json(e, out),
            LogFormat::Clf => clf(e, out),
        }
        out.push(b'\n');
    }

    fn json(&self, e: &Entry, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, field.name());
            out.push(b':');
            value(*field, e, out);
        }
        out.push(b'}');
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

fn value(field: LogField, e: &Entry, out: &mut Vec<u8>) {
    match field {
        LogField::Time => string(out, &rampart_api::time::format_ms(ms(e.time))),
        LogField::RequestId => string(out, &String::from_utf8_lossy(e.request_id.as_bytes())),
        LogField::TraceId => match &e.trace_id {
            Some(id) => string(out, &hex::encode(id)),
            None => out.extend_from_slice(b"null"),
        },
        LogField::Listener => string(out, &e.listener.name),
        LogField::Route => opt_string(out, e.route.as_ref().map(|r| r.config.name.as_str())),
        LogField::Upstream => opt_string(
            out,
            e.route.as_ref().map(|r| r.upstream.config.name.as_str()),
        ),
        LogField::Endpoint => opt_string(out, e.endpoint.as_ref().map(|p| p.label.as_str())),
        LogField::Method => string(out, e.method.as_str()),
        LogField::Path => opt_string(out, e.path.as_ref().map(|p| p.path())),
        LogField::Status => number(out, e.status),
        LogField::BytesIn => number(out, e.bytes_in),
        LogField::BytesOut => number(out, e.bytes_out),
        LogField::DurationHeadersMs => number(out, millis(e.duration_headers)),
        LogField::DurationMs => number(out, millis(e.duration)),
        LogField::AuthSubject => opt_string(out, e.auth_subject.as_deref()),
        LogField::Client => string(out, &e.client.to_string()),
        LogField::Reason => opt_string(out, e.reason),
    }
}

/// Milliseconds with three decimals.
fn millis(d: std::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `client - subject [10/Oct/2026:13:55:36 +0000] "GET /path HTTP/1.1" 200 2326`
fn clf(e: &Entry, out: &mut Vec<u8>) {
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let at = time::OffsetDateTime::from(e.time)
        .format(&format)
        .unwrap_or_default();
    let subject = e
        .auth_subject
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(clf_token);
    let path = e.path.as_ref().map_or("-", |p| p.path());
    let _ = write!(
        out,
        "{} - {} [{at}] \"{} {} {:?}\" {} {}",
        e.client,
        subject.as_deref().unwrap_or("-"),
        e.method,
        clf_token(path),
        e.version,
        e.status,
        e.bytes_out,
    );
}

/// A value that cannot break a CLF line: no spaces, quotes or control bytes.
fn clf_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            }
        })
        .collect()
}
