//! Access-log lines: JSON (the fields the config names, in its order) or the NCSA Common Log
//! Format. Runs when a request's response ends, into the buffer the writer takes.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_model::{AccessLogConfig, LogField, LogFormat};

use super::Entry;
use crate::json_text::{self, content, string};

pub(super) struct Format {
    format: LogFormat,
    /// A JSON line as constant bytes each followed by a field's value: `{"time":"`, then the
    /// time, then `","request_id":"`… The quotes around a value that is always a string are
    /// part of the constant bytes, so that each field costs two copies at most.
    steps: Vec<(Box<[u8]>, LogField)>,
    /// What ends the line: the last value's closing quote if it has one, `}` and the newline.
    end: Box<[u8]>,
    /// The last second formatted with the dot after it (`2026-11-30T05:09:10.`), reused
    /// while lines share it.
    second: (u64, String),
}

/// Whether a field's value is always a JSON string (never `null`): its quotes are written with
/// the keys.
fn always_string(field: LogField) -> bool {
    matches!(
        field,
        LogField::Time
            | LogField::RequestId
            | LogField::Listener
            | LogField::Method
            | LogField::Client
    )
}

impl Format {
    pub(super) fn new(config: &AccessLogConfig) -> Format {
        let mut steps = Vec::with_capacity(config.fields.len());
        let mut before = b"{".to_vec();
        for (i, field) in config.fields.iter().enumerate() {
            if i > 0 {
                before.push(b',');
            }
            before.extend_from_slice(format!("\"{}\":", field.name()).as_bytes());
            if always_string(*field) {
                before.push(b'"');
            }
            steps.push((std::mem::take(&mut before).into(), *field));
            if always_string(*field) {
                before.push(b'"');
            }
        }
        if config.fields.is_empty() {
            before.push(b'{');
        }
        before.extend_from_slice(b"}\n");
        Format {
            format: config.format,
            steps,
            end: before.into(),
            second: (u64::MAX, String::new()),
        }
    }

    /// Appends one line, newline included.
    pub(super) fn line(&mut self, e: &Entry, time: SystemTime, out: &mut Vec<u8>) {
        match self.format {
            LogFormat::Json => {
                for (before, field) in &self.steps {
                    out.extend_from_slice(before);
                    value(*field, e, time, &mut self.second, out);
                }
                out.extend_from_slice(&self.end);
            }
            LogFormat::Clf => {
                clf(e, time, out);
                out.push(b'\n');
            }
        }
    }
}

/// `2026-11-30T05:09:10.123Z` (the quotes are the caller's): the second formatted once (in
/// `second`), the milliseconds each line.
fn time(second: &mut (u64, String), ms: u64, out: &mut Vec<u8>) {
    let s = ms / 1000;
    if second.0 != s {
        let full = rampart_api::time::format_ms(s * 1000);
        *second = (s, format!("{}.", full.get(..19).unwrap_or_default()));
    }
    out.extend_from_slice(second.1.as_bytes());
    let [a, b, c] = three_digits(ms % 1000);
    out.extend_from_slice(&[a, b, c, b'Z']);
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn hex_string(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    let mut text = *b"\"00000000000000000000000000000000\"";
    crate::hex_text::encode_into(bytes, &mut text[1..33]);
    out.extend_from_slice(&text);
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// `n` (below 1000) as three digits.
fn three_digits(n: u64) -> [u8; 3] {
    [
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// One field's value; `second` caches the time's formatted second across lines. The values
/// of [`always_string`] fields are written without their quotes.
fn value(
    field: LogField,
    e: &Entry,
    at: SystemTime,
    second: &mut (u64, String),
    out: &mut Vec<u8>,
) {
    match field {
        LogField::Time => time(second, ms(at), out),
        LogField::RequestId => content(out, e.request_id.as_bytes()),
        LogField::TraceId => match &e.trace_id {
            Some(id) => hex_string(out, id),
            None => out.extend_from_slice(b"null"),
        },
        LogField::Listener => content(out, e.listener.name.as_bytes()),
        LogField::Route => match &e.route {
            Some(r) => string(out, r.config.name.as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
        LogField::Upstream => match &e.route {
            Some(r) => string(out, r.upstream.config.name.as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
        LogField::Endpoint => match &e.endpoint {
            Some(p) => string(out, p.label.as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
        // A method is a token (no quote, backslash or control byte: `http` checks it).
        LogField::Method => out.extend_from_slice(e.method.as_str().as_bytes()),
        LogField::Path => opt_string(out, e.path.as_ref().map(|p| p.path())),
        LogField::Status => match e.status {
            100..=999 => out.extend_from_slice(&three_digits(u64::from(e.status))),
            other => json_text::integer(out, u64::from(other)),
        },
        LogField::BytesIn => json_text::integer(out, e.bytes_in),
        LogField::BytesOut => json_text::integer(out, e.bytes_out),
        LogField::DurationHeadersMs => millis(out, e.duration_headers),
        LogField::DurationMs => millis(out, e.duration),
        LogField::AuthSubject => opt_string(out, e.auth_subject.as_deref()),
        // An IP address's text needs no escaping.
        LogField::Client => out.extend_from_slice(e.client_text.as_bytes()),
        LogField::Reason => opt_string(out, e.reason),
    }
}

/// Milliseconds with three decimals (microseconds), written without floating point.
fn millis(out: &mut Vec<u8>, d: std::time::Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    json_text::integer(out, us / 1000);
    out.push(b'.');
    out.extend_from_slice(&three_digits(us % 1000));
}

/// `client - subject [10/Oct/2026:13:55:36 +0000] "GET /path HTTP/1.1" 200 2326`
fn clf(e: &Entry, time: SystemTime, out: &mut Vec<u8>) {
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let at = time::OffsetDateTime::from(time)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        for (micros, text) in [(1005, "1.005"), (7, "0.007"), (12_345_678, "12345.678")] {
            let mut out = Vec::new();
            millis(&mut out, std::time::Duration::from_micros(micros));
            assert_eq!(out, text.as_bytes(), "{micros} µs");
        }
    }
}
