//! JSON written by hand where it is written per request or per span (the access log's lines,
//! OTLP spans): strings copied as they are when nothing in them needs escaping (names, ids,
//! normalized paths: the usual case; checked eight bytes at a time), escaped by serde_json
//! otherwise; numbers through itoa. serde's derive escapes every key on every value.

/// A JSON string, quotes included.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if plain(s) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        escaped(out, s);
    }
}

/// A JSON string's content, without its quotes (the caller's constant bytes hold them).
pub fn content(out: &mut Vec<u8>, s: &[u8]) {
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

/// Escaped by serde_json, bytes that are not UTF-8 replaced.
fn escaped(out: &mut Vec<u8>, s: &[u8]) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(s));
}

/// A decimal integer (itoa: two digits per step, no formatting machinery).
pub fn integer(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether bytes need no JSON escaping: printable ASCII without '"' or '\\'. Eight bytes at
/// a time (the usual bit tricks on a u64); the last few padded with spaces to eight.
pub fn plain(bytes: &[u8]) -> bool {
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
    fn strings_and_integers_are_valid_json() {
        assert_eq!(text(|o| integer(o, 0u64)), "0");
        assert_eq!(text(|o| integer(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(text(|o| integer(o, -42i64)), "-42");
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
            // Without its quotes (they are in the caller's constant bytes).
            let inner = text(|o| content(o, hostile.as_bytes()));
            let back: String = serde_json::from_str(&format!("\"{inner}\"")).unwrap();
            assert_eq!(back, hostile, "{inner}");
        }
        let invalid_utf8 = text(|o| string(o, b"a\xffb"));
        assert_eq!(
            serde_json::from_str::<String>(&invalid_utf8).unwrap(),
            "a\u{fffd}b"
        );
    }
}
