//! Header forwarding on hostile input: whatever headers and Host a client sends, reading the
//! target never panics, no hop-by-hop header survives, and an untrusted client cannot put
//! anything into the forwarding headers but what the gateway writes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use rampart_gateway::forward::{Client, add_forwarding, strip_hop_by_hop};
use rampart_gateway::target::Target;
use rampart_model::path::EscapedSlashes;

fuzz_target!(|data: &[u8]| {
    // Lines of "name: value"; the first line is the request target.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let trusted = data.first().is_some_and(|b| b & 1 == 1);
    let Ok(uri) = target.parse::<http::Uri>() else {
        return;
    };
    let Ok(t) = Target::read(&uri, &headers, EscapedSlashes::Reject) else {
        return;
    };
    strip_hop_by_hop(&mut headers);
    for name in [
        "connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
    ] {
        assert!(!headers.contains_key(name), "{name} survived");
    }
    let client = Client::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), trusted);
    add_forwarding(&mut headers, &client, "http", t.host_header.as_ref());
    let xff: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff.len(), 1);
    let forwarded: Vec<_> = headers.get_all("forwarded").iter().collect();
    assert_eq!(forwarded.len(), 1);
    if !trusted {
        assert_eq!(xff[0], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        // Exactly one element: the client's quoted host cannot open another.
        let f = forwarded[0].to_str().expect("ascii");
        let mut quoted = false;
        let mut escaped = false;
        for c in f.chars() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => quoted = !quoted,
                (false, _, ',') => panic!("a second Forwarded element: {f}"),
                _ => {}
            }
        }
        assert!(!quoted, "unterminated quoted string: {f}");
    }
    assert!(t.path().starts_with('/'));
});
