//! W3C Trace Context (`traceparent`): reading the header a request came with, and writing the
//! one its upstream gets. Without `tracing` the header is forwarded as the client sent it and
//! only its trace id is read, for the access log.

use http::{HeaderMap, HeaderName};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A valid `traceparent`: the trace, the caller's span, and the flags (bit 0: sampled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// `00-TRACE-SPAN-FLAGS` naming `span` as the parent.
    pub fn header(trace_id: &[u8; 16], span: &[u8; 8], sampled: bool) -> http::HeaderValue {
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        crate::hex_text::encode_into(trace_id, &mut text[3..35]);
        crate::hex_text::encode_into(span, &mut text[36..52]);
        if sampled {
            text[54] = b'1';
        }
        http::HeaderValue::from_bytes(&text).unwrap_or_else(|_| http::HeaderValue::from_static(""))
    }
}

/// The trace id of a valid `traceparent`, else none.
pub fn trace_id(headers: &HeaderMap) -> Option<[u8; 16]> {
    parse(headers).map(|t| t.trace_id)
}

/// A valid `traceparent` (version 00, or a later version read as 00; neither id all zeros;
/// lower-case hex), else none.
pub fn parse(headers: &HeaderMap) -> Option<TraceParent> {
    let value = headers.get(&TRACEPARENT)?.as_bytes();
    let (version, rest) = (value.get(..2)?, value.get(2..)?);
    let valid_version = hex_lower(version) && version != b"ff";
    // version-00 is exactly 55 bytes; a later version may append "-…".
    let len_ok = if version == b"00" {
        value.len() == 55
    } else {
        value.len() == 55 || value.get(55) == Some(&b'-')
    };
    if !valid_version || !len_ok {
        return None;
    }
    let (dash1, trace, dash2, parent, dash3, flags) = (
        rest.first()?,
        rest.get(1..33)?,
        rest.get(33)?,
        rest.get(34..50)?,
        rest.get(50)?,
        rest.get(51..53)?,
    );
    if [dash1, dash2, dash3] != [&b'-'; 3]
        || !hex_lower(trace)
        || !hex_lower(parent)
        || !hex_lower(flags)
        || trace.iter().all(|b| *b == b'0')
        || parent.iter().all(|b| *b == b'0')
    {
        return None;
    }
    let mut trace_id = [0u8; 16];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    let mut parent_id = [0u8; 8];
    hex::decode_to_slice(parent, &mut parent_id).ok()?;
    let mut flag = [0u8; 1];
    hex::decode_to_slice(flags, &mut flag).ok()?;
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: flag[0],
    })
}

fn hex_lower(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert("traceparent", v.parse().unwrap());
        trace_id(&h).map(hex::encode)
    }

    #[test]
    fn reads_valid_traceparents_and_refuses_the_rest() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            read(good).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // A later version may carry more after the flags.
        assert!(read("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
        let mut h = HeaderMap::new();
        h.insert("traceparent", good.parse().unwrap());
        let t = parse(&h).expect("valid");
        assert!(t.sampled());
        assert_eq!(hex::encode(t.parent_id), "00f067aa0ba902b7");
        assert_eq!(TraceParent::header(&t.trace_id, &t.parent_id, true), good);
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }
}
