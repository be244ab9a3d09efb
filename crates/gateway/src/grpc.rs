//! gRPC over the gateway: which requests are gRPC, their `grpc-timeout`, the status codes the
//! gateway answers its own errors with (a trailers-only response: HTTP 200 with `grpc-status`
//! and `grpc-message`, as gRPC clients expect), and the messages of the gRPC health-checking
//! protocol (`grpc.health.v1.Health/Check`), encoded by hand: two fields.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// gRPC status codes the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// Whether a request is gRPC (`content-type: application/grpc`, `application/grpc+proto`…).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16
            && v.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
            && matches!(v.get(16), None | Some(b'+' | b';'))
    })
}

/// The `grpc-timeout` of a request: 1 to 8 digits and a unit (H, M, S, m, u, n); anything
/// else is no timeout.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A `grpc-timeout` value for `d` (whole milliseconds, at least 1; at most 8 digits).
pub fn timeout_value(d: Duration) -> http::HeaderValue {
    let ms = d.as_millis().clamp(1, 99_999_999);
    http::HeaderValue::from_str(&format!("{ms}m"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("99999999m"))
}

/// `grpc-message` is percent-encoded: everything outside printable ASCII, and '%'.
pub fn message_value(message: &str) -> http::HeaderValue {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    http::HeaderValue::from_str(&out).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// A length-prefixed gRPC message (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// `HealthCheckRequest { service }`, framed.
pub fn health_request(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    frame(&message)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Whether a framed `HealthCheckResponse` says SERVING (status 1).
pub fn health_serving(body: &[u8]) -> bool {
    let Some(len) = body
        .get(1..5)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
    else {
        return false;
    };
    if body.first() != Some(&0) {
        return false;
    }
    let Some(mut rest) = body.get(5..5 + len as usize) else {
        return false;
    };
    let mut status = 0;
    while let Some((key, n)) = varint(rest) {
        rest = rest.get(n..).unwrap_or_default();
        match key & 7 {
            0 => {
                let Some((v, n)) = varint(rest) else {
                    return false;
                };
                if key >> 3 == 1 {
                    status = v;
                }
                rest = rest.get(n..).unwrap_or_default();
            }
            2 => {
                let Some((l, n)) = varint(rest) else {
                    return false;
                };
                let Some(r) = usize::try_from(l)
                    .ok()
                    .and_then(|l| l.checked_add(n))
                    .and_then(|end| rest.get(end..))
                else {
                    return false;
                };
                rest = r;
            }
            _ => return false,
        }
    }
    status == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_read_as_grpc_writes_them() {
        let t = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            timeout(&h)
        };
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("100u"), Some(Duration::from_micros(100)));
        for bad in ["", "m", "123456789m", "10x", "-1S", "1.5S"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(timeout_value(Duration::from_millis(300)), "300m");
    }

    #[test]
    fn only_grpc_content_types_are_grpc() {
        let is = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, v.parse().unwrap());
            is_grpc(&h)
        };
        assert!(is("application/grpc"));
        assert!(is("application/grpc+proto"));
        assert!(is("Application/GRPC; charset=utf-8"));
        assert!(!is("application/grpc-web"));
        assert!(!is("application/json"));
    }

    #[test]
    fn health_messages_round_trip() {
        assert_eq!(&health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &health_request("db")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert!(health_serving(&[0, 0, 0, 0, 2, 0x08, 1]));
        assert!(!health_serving(&[0, 0, 0, 0, 2, 0x08, 2]));
        assert!(!health_serving(&[0, 0, 0, 0, 0]));
        assert!(!health_serving(&[0, 0, 0, 0, 9, 0x08]));
        assert!(!health_serving(&[]));
        assert_eq!(message_value("no 100% ü"), "no 100%25 %C3%BC");
    }
}
