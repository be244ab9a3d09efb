//! Request path normalization (RFC 3986 §6), done once before routing so that the gateway
//! routes, authenticates and forwards one and the same path.
//!
//! What [`normalize`] does, in order:
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and the hex
//!   digits of the encodings that stay are upper-cased (`%2e` → `.`, `%3a` → `%3A`);
//! - an encoded `/` or `\` (`%2F`, `%5C`, any case) is refused, or kept encoded and opaque with
//!   [`EscapedSlashes::Keep`]; a raw `\` is always refused (some servers read it as `/`);
//! - runs of `/` are merged;
//! - `.` and `..` segments are removed; a `..` that would climb above the root is refused, and
//!   so is a dot-segment carrying `;` parameters (`..;x`), which some servers strip before
//!   resolving dot-segments.
//!
//! Pure and allocation-free when the path is already normal (the common case).

use std::borrow::Cow;

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Keep them encoded: they are part of a segment, never a separator.
    Keep,
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path holds an encoded '/' or '\\' (%2F, %5C)")]
    EscapedSlash,
    #[error("the path holds a '\\'")]
    Backslash,
    #[error("the path climbs above the root with '..'")]
    AboveRoot,
    #[error("the path holds a dot-segment with ';' parameters")]
    DotSegmentParameters,
    #[error("the path holds a malformed percent-encoding")]
    BadEncoding,
}

/// The normal form of `path` (without query), or why it is refused.
pub fn normalize(path: &str, escaped: EscapedSlashes) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes, escaped)?;
    let mut out: Vec<&[u8]> = Vec::new();
    // Segments after the leading '/'; empty ones (from "//") are merged away except a final one,
    // which keeps a trailing slash.
    let body = decoded.get(1..).unwrap_or_default();
    let segments: Vec<&[u8]> = body.split(|b| *b == b'/').collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        let is_last = i == last;
        match *seg {
            b"" => trailing_slash = is_last && i > 0,
            b"." => trailing_slash = is_last,
            b".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = is_last;
            }
            s => {
                let name = s.split(|b| *b == b';').next().unwrap_or_default();
                if s.contains(&b';') && (name == b"." || name == b"..") {
                    return Err(PathError::DotSegmentParameters);
                }
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for seg in &out {
        result.push('/');
        // Only ASCII ever reaches here: the input was a &str and decoding yields unreserved
        // ASCII; non-ASCII bytes are copied from valid UTF-8 whole.
        result.push_str(&String::from_utf8_lossy(seg));
    }
    if out.is_empty() || trailing_slash {
        result.push('/');
    }
    Ok(Cow::Owned(result))
}

/// True when nothing in the path needs work: no '%', no '\', no "//", no "." or ".." segment,
/// no dot-segment with parameters.
fn is_normal(bytes: &[u8]) -> bool {
    let mut prev_slash = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' => return false,
            b'/' if prev_slash => return false,
            b'.' if prev_slash => {
                // "/." followed by end, '/', ';' or another '.' (then end, '/' or ';').
                let rest = bytes.get(i + 1..).unwrap_or_default();
                let after_dots = match rest.first() {
                    Some(b'.') => rest.get(1..).unwrap_or_default(),
                    _ => rest,
                };
                if matches!(after_dots.first(), None | Some(b'/' | b';')) {
                    return false;
                }
            }
            _ => {}
        }
        prev_slash = b == b'/';
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved characters, upper-cases the hex of the rest, refuses escaped slashes
/// (unless kept) and raw backslashes.
fn decode_unreserved(bytes: &[u8], escaped: EscapedSlashes) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEncoding);
                };
                let c = h * 16 + l;
                if c == b'/' || c == b'\\' {
                    if escaped == EscapedSlashes::Reject {
                        return Err(PathError::EscapedSlash);
                    }
                    out.extend_from_slice(if c == b'/' { b"%2F" } else { b"%5C" });
                } else if unreserved(c) {
                    out.push(c);
                } else {
                    out.push(b'%');
                    out.push(b"0123456789ABCDEF"[usize::from(h)]);
                    out.push(b"0123456789ABCDEF"[usize::from(l)]);
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        use EscapedSlashes::{Keep, Reject};
        let ok = |p: &str, e: EscapedSlashes| normalize(p, e).map(|c| c.into_owned());
        let cases: &[(&str, EscapedSlashes, Result<&str, PathError>)] = &[
            ("/", Reject, Ok("/")),
            ("/a/b", Reject, Ok("/a/b")),
            ("/a/b/", Reject, Ok("/a/b/")),
            ("/a/../b", Reject, Ok("/b")),
            ("/a/./b", Reject, Ok("/a/b")),
            ("/a/..", Reject, Ok("/")),
            ("/a/.", Reject, Ok("/a/")),
            ("/x/../secure", Reject, Ok("/secure")),
            ("/x/%2e%2e/secure", Reject, Ok("/secure")),
            ("/x/%2E%2e/secure", Reject, Ok("/secure")),
            ("/x/.%2E/secure", Reject, Ok("/secure")),
            ("/x/%2e/secure", Reject, Ok("/x/secure")),
            ("//secure", Reject, Ok("/secure")),
            ("/a//b///c", Reject, Ok("/a/b/c")),
            ("/%7Euser/%41%62", Reject, Ok("/~user/Ab")),
            ("/a%3ab", Reject, Ok("/a%3Ab")),
            ("/a%20b", Reject, Ok("/a%20b")),
            ("/..", Reject, Err(PathError::AboveRoot)),
            ("/a/../../b", Reject, Err(PathError::AboveRoot)),
            ("/%2e%2e/b", Reject, Err(PathError::AboveRoot)),
            ("/a%2Fb", Reject, Err(PathError::EscapedSlash)),
            ("/a%2fb", Reject, Err(PathError::EscapedSlash)),
            ("/a%5Cb", Reject, Err(PathError::EscapedSlash)),
            ("/a%5cb", Reject, Err(PathError::EscapedSlash)),
            ("/a%2fb", Keep, Ok("/a%2Fb")),
            ("/a/..%2f..%2fb", Keep, Ok("/a/..%2F..%2Fb")),
            ("/a\\b", Reject, Err(PathError::Backslash)),
            (
                "/x/..;/secure",
                Reject,
                Err(PathError::DotSegmentParameters),
            ),
            (
                "/x/.;a/secure",
                Reject,
                Err(PathError::DotSegmentParameters),
            ),
            ("/x/a;b/c", Reject, Ok("/x/a;b/c")),
            ("/x/..a/b", Reject, Ok("/x/..a/b")),
            ("/x/.a", Reject, Ok("/x/.a")),
            ("/a%zz", Reject, Err(PathError::BadEncoding)),
            ("/a%2", Reject, Err(PathError::BadEncoding)),
            ("a/b", Reject, Err(PathError::NotAbsolute)),
            ("", Reject, Err(PathError::NotAbsolute)),
        ];
        for (input, mode, want) in cases {
            let got = ok(input, *mode);
            assert_eq!(got.as_deref(), want.as_deref(), "{input:?} ({mode:?})");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/v1/users/7", "/a.b/c..d/.e", "/x;y/z"] {
            assert!(
                matches!(normalize(p, EscapedSlashes::Reject), Ok(Cow::Borrowed(_))),
                "{p}"
            );
        }
    }

    proptest! {
        /// The normal form is a fixed point, never climbs above the root, and never holds a
        /// dot-segment or an empty segment (except a trailing slash).
        #[test]
        fn normal_form_is_idempotent_and_clean(
            segs in proptest::collection::vec(
                prop_oneof![
                    Just("..".to_string()), Just(".".to_string()), Just("".to_string()),
                    Just("%2e%2E".to_string()), Just("%2e".to_string()), Just("a".to_string()),
                    Just("%41b".to_string()), Just("x;y".to_string()), "[a-z%0-9.;~_-]{0,6}",
                ],
                0..8,
            )
        ) {
            let path = format!("/{}", segs.join("/"));
            if let Ok(n) = normalize(&path, EscapedSlashes::Reject) {
                let again = normalize(&n, EscapedSlashes::Reject);
                prop_assert_eq!(again.as_deref(), Ok(n.as_ref()));
                prop_assert!(n.starts_with('/'));
                let inner = n.trim_end_matches('/');
                for seg in inner.split('/').skip(1) {
                    prop_assert!(seg != "." && seg != ".." && !seg.is_empty(), "{} -> {}", path, n);
                }
            }
        }
    }
}
