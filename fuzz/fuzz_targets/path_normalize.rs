//! Path normalization never panics; its normal form is a fixed point, absolute, and holds no
//! dot-segment, empty segment (but a trailing slash), raw backslash or (when refused) escaped
//! slash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_model::path::{EscapedSlashes, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for mode in [EscapedSlashes::Reject, EscapedSlashes::Keep] {
        let Ok(normal) = normalize(path, mode) else {
            continue;
        };
        assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
        assert!(!normal.contains('\\'), "{path:?} -> {normal:?}");
        if mode == EscapedSlashes::Reject {
            let upper = normal.to_ascii_uppercase();
            assert!(
                !upper.contains("%2F") && !upper.contains("%5C"),
                "{path:?} -> {normal:?}"
            );
        }
        let inner = normal.trim_end_matches('/');
        for seg in inner.split('/').skip(1) {
            assert!(
                seg != "." && seg != ".." && !seg.is_empty(),
                "{path:?} -> {normal:?}"
            );
        }
        let again = normalize(&normal, mode).expect("a normal form is accepted");
        assert_eq!(again, normal, "not a fixed point");
    }
});
