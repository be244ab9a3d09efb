//! Proxy header semantics: hop-by-hop headers removed, forwarding headers added, request ids.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
fn hop_by_hop() -> [&'static HeaderName; 8] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ]
}

/// Removes hop-by-hop headers, including those the Connection header names. `Upgrade` is
/// removed too: the gateway does not tunnel protocol upgrades.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hop = hop_by_hop();
    // One pass over the message's names (a handful) instead of a hashed look-up per
    // hop-by-hop name: most messages carry none.
    if !headers
        .keys()
        .any(|k| k == header::UPGRADE || hop.contains(&k))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in hop {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
    if headers.contains_key(header::UPGRADE) {
        headers.remove(header::UPGRADE);
    }
}

/// Whether a comma-separated header (`Connection`, `Upgrade`, `TE`) lists `token`, in any
/// case.
pub fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The client end of a connection as the forwarding headers name it, formatted once per
/// connection rather than per request.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// Whether the peer is one of the listener's trusted proxies.
    pub trusted: bool,
    xff: HeaderValue,
    /// `for=...` of a `Forwarded` element (IPv6 quoted, RFC 7239 §6).
    forwarded_for: String,
}

impl Client {
    /// The address as text (what `X-Forwarded-For` gets), formatted once per connection.
    pub fn ip_text(&self) -> &HeaderValue {
        &self.xff
    }

    pub fn new(ip: IpAddr, trusted: bool) -> Client {
        let text = ip.to_string();
        let forwarded_for = match ip {
            IpAddr::V4(_) => format!("for={text}"),
            IpAddr::V6(_) => format!("for=\"[{text}]\""),
        };
        Client {
            ip,
            trusted,
            xff: HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("unknown")),
            forwarded_for,
        }
    }
}

/// Sets the forwarding headers. From a trusted proxy, `X-Forwarded-For` and `Forwarded` are
/// extended and its `X-Forwarded-Proto`/`-Host` kept; from anyone else all four are replaced,
/// so a client cannot claim another address, scheme or host. `host` is the Host the request
/// is forwarded with; `Forwarded` values are quoted and escaped (RFC 7239 §4).
pub fn add_forwarding(
    headers: &mut HeaderMap,
    client: &Client,
    proto: &'static str,
    host: Option<&HeaderValue>,
) {
    let trusted = client.trusted;
    let previous = |headers: &HeaderMap, name: &HeaderName| -> Option<String> {
        let prev = headers.get(name)?.to_str().ok()?.trim();
        (!prev.is_empty()).then(|| prev.to_owned())
    };
    match previous(headers, &X_FORWARDED_FOR).filter(|_| trusted) {
        Some(prev) => {
            if let Ok(v) = HeaderValue::try_from(format!("{prev}, {}", client.ip)) {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
        }
        None => {
            headers.insert(X_FORWARDED_FOR.clone(), client.xff.clone());
        }
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(v) => {
                headers.insert(X_FORWARDED_HOST.clone(), v.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    let mut buf = String::with_capacity(96);
    if let Some(prev) = previous(headers, &header::FORWARDED).filter(|_| trusted) {
        buf.push_str(&prev);
        buf.push_str(", ");
    }
    buf.push_str(&client.forwarded_for);
    buf.push_str(";proto=");
    buf.push_str(proto);
    if let Some(host) = host.and_then(|h| h.to_str().ok()) {
        buf.push_str(";host=\"");
        push_quoted(&mut buf, host);
        buf.push('"');
    }
    if let Ok(v) = HeaderValue::try_from(buf) {
        headers.insert(header::FORWARDED, v);
    }
}

/// The inside of an RFC 9110 quoted-string: `"` and `\` escaped, controls dropped.
fn push_quoted(buf: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                buf.push('\\');
                buf.push(c);
            }
            c if c.is_control() => {}
            c => buf.push(c),
        }
    }
}

/// The request's id: the client's X-Request-Id when it is sane, else a new UUIDv4.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    new_request_id()
}

fn new_request_id() -> HeaderValue {
    let r = fastrand::u128(..);
    // Set the version (4) and variant (10xx) bits of a UUIDv4.
    let r = (r & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let digits: [u8; 32] = crate::hex_text::encode(&r.to_be_bytes());
    // 8-4-4-4-12 digits: (first digit, end digit, where they go).
    const GROUPS: [(usize, usize, usize); 5] = [
        (0, 8, 0),
        (8, 12, 9),
        (12, 16, 14),
        (16, 20, 19),
        (20, 32, 24),
    ];
    let mut text = [b'-'; 36];
    for (from, to, at) in GROUPS {
        text[at..at + (to - from)].copy_from_slice(&digits[from..to]);
    }
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(
        "00000000-0000-4000-8000-000000000000",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn forwarding_headers_are_replaced_unless_the_peer_is_trusted() {
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        let untrusted = Client::new(ip, false);
        let trusted = Client::new(ip, true);
        let host = HeaderValue::from_static("api.example.com");
        let spoofed = || {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
            h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            h.insert(
                "x-forwarded-host",
                HeaderValue::from_static("admin.internal"),
            );
            h.insert("forwarded", HeaderValue::from_static("for=10.9.9.9"));
            h
        };
        let mut h = spoofed();
        add_forwarding(&mut h, &untrusted, "http", Some(&host));
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.7;proto=http;host=\"api.example.com\""
        );
        let mut h = spoofed();
        add_forwarding(&mut h, &untrusted, "http", None);
        assert!(h.get("x-forwarded-host").is_none());
        let mut h = spoofed();
        add_forwarding(&mut h, &trusted, "http", Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.9.9.9, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "admin.internal");
        assert_eq!(
            h["forwarded"],
            "for=10.9.9.9, for=192.0.2.7;proto=http;host=\"api.example.com\""
        );
        // A host that tries to close the quoted string stays inside it.
        let mut h = HeaderMap::new();
        add_forwarding(
            &mut h,
            &untrusted,
            "http",
            Some(&HeaderValue::from_static("a\";for=evil")),
        );
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.7;proto=http;host=\"a\\\";for=evil\""
        );
    }

    #[test]
    fn ipv6_clients_are_quoted_in_forwarded() {
        let mut h = HeaderMap::new();
        let client = Client::new("::1".parse().expect("ip"), false);
        add_forwarding(&mut h, &client, "https", None);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
    }

    #[test]
    fn request_ids_are_uuids_and_kept_when_given() {
        let id = request_id(&HeaderMap::new());
        let s = id.to_str().expect("ascii");
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        for (i, c) in s.char_indices() {
            if [8, 13, 18, 23].contains(&i) {
                assert_eq!(c, '-', "{s}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{s}");
            }
        }
        assert!(
            matches!(&s[19..20], "8" | "9" | "a" | "b"),
            "variant 10xx: {s}"
        );
        assert_ne!(request_id(&HeaderMap::new()), id, "a new id each time");
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
    }
}
