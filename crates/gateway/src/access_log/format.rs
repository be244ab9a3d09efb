//! Access-log lines: JSON (the fields the config names, in its order) or the NCSA Common Log
//! Format. Runs when a request's response ends, into the buffer the writer takes.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_model::{AccessLogConfig, LogField, LogFormat};

use super::Entry;

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

/// A JSON string: copied as it is when it holds nothing to escape (names, ids, normalized
/// paths: the usual case), else escaped by serde_json (bytes that are not UTF-8 replaced).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    if plain(s) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        escaped(out, s);
    }
}

/// A JSON string's content, without its quotes (they are in the line's constant bytes).
fn content(out: &mut Vec<u8>, s: &[u8]) {
    if plain(s) {
        out.extend_from_slice(s);
    } else {
        let start = out.len();
        escaped(out, s);
        // serde_json wrote the quotes around what it escaped: take them off.
        out.pop();
        out.remove(start);
    }
}

fn escaped(out: &mut Vec<u8>, s: &[u8]) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(s));
}

/// Whether bytes need no JSON escaping: printable ASCII without '"' or '\\'. Eight bytes at
/// a time (the usual bit tricks on a u64); the last few padded with spaces to eight.
fn plain(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let mut bad = 0;
    for chunk in &mut chunks {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        bad |= escapes(u64::from_le_bytes(lanes));
    }
    let mut tail = [b' '; 8];
    let rest = chunks.remainder();
    if let Some(dst) = tail.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    bad |= escapes(u64::from_le_bytes(tail));
    bad == 0
}

/// Non-zero when one of eight bytes needs escaping in JSON (or is not ASCII).
fn escapes(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A lane of `x` is zero (the high bit of the result set where one is).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // Below 0x20, or 0x7f and above (which also catches UTF-8), or a quote, or a backslash.
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let high = (x | x.wrapping_add(ONES)) & HIGH;
    control | high | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))
}

/// A decimal number (itoa: two digits per step, no formatting machinery).
fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
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
            other => number(out, u64::from(other)),
        },
        LogField::BytesIn => number(out, e.bytes_in),
        LogField::BytesOut => number(out, e.bytes_out),
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
    number(out, us / 1000);
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

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_plain_check_agrees_with_a_byte_by_byte_one() {
        let slow = |b: &[u8]| {
            b.iter()
                .all(|c| (0x20..0x7f).contains(c) && *c != b'"' && *c != b'\\')
        };
        for byte in 0u8..=255 {
            for len in 1..=17 {
                for at in 0..len {
                    let mut v = vec![b'a'; len];
                    v[at] = byte;
                    assert_eq!(plain(&v), slow(&v), "byte {byte} at {at} of {len}");
                }
            }
        }
        assert!(plain(b""));
    }

    #[test]
    fn numbers_durations_and_strings_are_valid_json() {
        assert_eq!(text(|o| number(o, 0)), "0");
        assert_eq!(text(|o| number(o, 1_234_567)), "1234567");
        assert_eq!(text(|o| number(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(
            text(|o| millis(o, std::time::Duration::from_micros(1005))),
            "1.005"
        );
        assert_eq!(
            text(|o| millis(o, std::time::Duration::from_micros(7))),
            "0.007"
        );
        assert_eq!(text(|o| string(o, b"/v1/users/7")), "\"/v1/users/7\"");
        for hostile in [
            "a\"b",
            "back\\slash",
            "new\nline",
            "ü",
            "\u{7f}",
            "eight-by\"",
            "sixteen-bytes-ok\u{1}",
            "0123456789abcdef\\",
        ] {
            let json = text(|o| string(o, hostile.as_bytes()));
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, hostile, "{json}");
            // Without its quotes (they are in the line's constant bytes).
            let inner = text(|o| content(o, hostile.as_bytes()));
            let back: String = serde_json::from_str(&format!("\"{inner}\"")).unwrap();
            assert_eq!(back, hostile, "{inner}");
        }
    }
}
