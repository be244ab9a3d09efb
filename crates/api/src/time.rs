//! Times on the wire: RFC 3339 in UTC with milliseconds (`2026-11-29T18:41:24.123Z`), and the
//! milliseconds since the epoch they stand for.

/// Milliseconds since the epoch as RFC 3339 in UTC with milliseconds.
pub fn format_ms(ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Milliseconds since the epoch of an RFC 3339 time; `None` when it is not one.
pub fn parse_ms(at: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        let ms = 1_796_150_484_123;
        let at = format_ms(ms);
        assert_eq!(at, "2026-12-01T18:41:24.123Z");
        assert_eq!(parse_ms(&at), Some(ms));
        assert_eq!(parse_ms("yesterday"), None);
    }
}
