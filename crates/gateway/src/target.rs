//! The request target as the gateway reads it, once, before routing: the normalized path
//! (what is routed, authenticated and forwarded) and the authority (what the route's host is
//! matched against, and the Host the upstream receives).

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, PathAndQuery, Uri};
use rampart_model::path::{EscapedSlashes, normalize};

use crate::error::ProxyError;

pub struct Target {
    /// From the URI (HTTP/2 `:authority`, HTTP/1.1 absolute form) or else the Host header.
    pub authority: Option<Authority>,
    /// The authority as the Host header the upstream receives: the client's own Host value
    /// when that is where it came from.
    pub host_header: Option<HeaderValue>,
    /// The normalized path and the query as sent.
    pub path_and_query: PathAndQuery,
}

impl Target {
    pub fn read(
        uri: &Uri,
        headers: &HeaderMap,
        escaped: EscapedSlashes,
    ) -> Result<Target, ProxyError> {
        let bad = |why: String| ProxyError::BadRequest(why);
        let (authority, host_header) = match uri.authority() {
            // RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored.
            Some(a) => (Some(a.clone()), HeaderValue::from_str(a.as_str()).ok()),
            None => {
                let mut hosts = headers.get_all(header::HOST).iter();
                match (hosts.next(), hosts.next()) {
                    (None, _) => (None, None),
                    (Some(_), Some(_)) => return Err(bad("more than one Host header".into())),
                    (Some(v), None) => (
                        Some(
                            Authority::try_from(v.as_bytes())
                                .map_err(|_| bad("the Host header is not a host[:port]".into()))?,
                        ),
                        Some(v.clone()),
                    ),
                }
            }
        };
        if let Some(a) = &authority
            && (a.as_str().contains('@') || a.host().is_empty())
        {
            return Err(bad("the authority is not a host[:port]".into()));
        }
        let path = uri.path();
        let path_and_query = match normalize(path, escaped) {
            Err(e) => return Err(bad(format!("path refused: {e}"))),
            Ok(Cow::Borrowed(_)) => uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
            Ok(Cow::Owned(normal)) => {
                let text = match uri.query() {
                    Some(q) => format!("{normal}?{q}"),
                    None => normal,
                };
                PathAndQuery::try_from(text).map_err(|e| bad(format!("path refused: {e}")))?
            }
        };
        Ok(Target {
            authority,
            host_header,
            path_and_query,
        })
    }

    /// The host routes match on: the authority without port or IPv6 brackets.
    pub fn host(&self) -> Option<&str> {
        let h = self.authority.as_ref()?.host();
        Some(
            h.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(h),
        )
    }

    pub fn path(&self) -> &str {
        self.path_and_query.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(uri: &str, host: &[&str]) -> Result<(Option<String>, String), String> {
        let mut h = HeaderMap::new();
        for v in host {
            h.append(header::HOST, v.parse().expect("value"));
        }
        let uri: Uri = uri.parse().expect("uri");
        Target::read(&uri, &h, EscapedSlashes::Reject)
            .map(|t| (t.host().map(str::to_owned), t.path_and_query.to_string()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn authority_and_path() {
        assert_eq!(
            read("/a/../b?x=1", &["api.example.com:8080"]),
            Ok((Some("api.example.com".into()), "/b?x=1".into()))
        );
        // Absolute form wins over Host.
        assert_eq!(
            read("http://other:1/x", &["api.example.com"]),
            Ok((Some("other".into()), "/x".into()))
        );
        assert_eq!(
            read("/x", &["[::1]:8080"]),
            Ok((Some("::1".into()), "/x".into()))
        );
        assert_eq!(read("/x", &[]), Ok((None, "/x".into())));
        assert!(read("/x", &["a", "b"]).is_err());
        assert!(read("/x", &["user@host"]).is_err());
        assert!(read("/x", &["bad host"]).is_err());
        assert!(read("/%2e%2e/x", &["a"]).is_err());
    }
}
