//! Route matching: by host, path (exact or prefix on segment boundaries), method and headers,
//! most specific first.

use std::sync::Arc;

use http::{HeaderMap, Method};
use rampart_model::{HostMatch, PathMatch, RouteConfig};

/// Routes sorted from most to least specific; the first match wins.
pub struct Router<T> {
    routes: Vec<(RouteConfig, Arc<T>)>,
}

impl<T> Router<T> {
    /// Sorts by specificity: host (exact > wildcard > any), then path (exact > longer prefix),
    /// then methods given, then more header conditions. Ties keep document order.
    pub fn new(mut routes: Vec<(RouteConfig, Arc<T>)>) -> Router<T> {
        routes.sort_by_key(|(r, _)| std::cmp::Reverse(specificity(r)));
        Router { routes }
    }

    pub fn find(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&Arc<T>> {
        self.routes
            .iter()
            .find(|(r, _)| matches(r, method, host, path, headers))
            .map(|(_, t)| t)
    }

    /// The CORS route a preflight asking about `method` is for: the one that method would
    /// take, else the most specific CORS route on that host and path whatever its methods
    /// (its policy then refuses the method).
    pub fn find_preflight(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&Arc<T>> {
        let with_cors = || self.routes.iter().filter(|(r, _)| r.cors.is_some());
        with_cors()
            .find(|(r, _)| matches(r, method, host, path, headers))
            .or_else(|| with_cors().find(|(r, _)| matches_any_method(r, host, path, headers)))
            .map(|(_, t)| t)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|(r, _)| r.name.as_str())
    }
}

fn specificity(r: &RouteConfig) -> (u8, usize, u8, usize, u8, usize) {
    let (host_rank, host_len) = match &r.host {
        Some(HostMatch::Exact(h)) => (2, h.len()),
        Some(HostMatch::Suffix(s)) => (1, s.len()),
        None => (0, 0),
    };
    let (path_rank, path_len) = match &r.path {
        PathMatch::Exact(p) => (1, p.len()),
        PathMatch::Prefix(p) => (0, p.len()),
    };
    (
        host_rank,
        host_len,
        path_rank,
        path_len,
        u8::from(r.methods.is_some()),
        r.headers.len(),
    )
}

fn matches(
    r: &RouteConfig,
    method: &Method,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> bool {
    r.methods.as_ref().is_none_or(|m| m.contains(method))
        && matches_any_method(r, host, path, headers)
}

fn matches_any_method(
    r: &RouteConfig,
    host: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> bool {
    let host_ok = match (&r.host, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(h)), Some(got)) => h.eq_ignore_ascii_case(got),
        (Some(HostMatch::Suffix(s)), Some(got)) => {
            got.len() > s.len() && got[got.len() - s.len()..].eq_ignore_ascii_case(s)
        }
    };
    host_ok
        && match &r.path {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => prefix_matches(p, path),
        }
        && r.headers
            .iter()
            .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
}

/// "/v1/users" matches "/v1/users" and "/v1/users/7" but not "/v1/usersx".
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" || prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(doc: &str) -> Router<String> {
        let config = rampart_model::load(doc).expect("config");
        Router::new(
            config
                .routes
                .iter()
                .map(|r| (r.clone(), Arc::new(r.name.clone())))
                .collect(),
        )
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(
            r#"
listeners: [{ name: l, address: "127.0.0.1:0" }]
upstreams: [{ name: u, endpoints: ["127.0.0.1:1"] }]
routes:
  - { name: catch-all, upstream: u }
  - { name: users, match: { path_prefix: /v1/users }, upstream: u }
  - { name: users-post, match: { path_prefix: /v1/users, methods: [POST] }, upstream: u }
  - { name: user-exact, match: { path_exact: /v1/users/me }, upstream: u }
  - { name: api-host, match: { host: api.example.com, path_prefix: /v1 }, upstream: u }
  - { name: wildcard, match: { host: "*.example.com" }, upstream: u }
  - { name: canary, match: { path_prefix: /v1/users, headers: { x-canary: "1" } }, upstream: u }
"#,
        );
        let mut canary = HeaderMap::new();
        canary.insert("x-canary", "1".parse().expect("value"));
        let none = HeaderMap::new();
        let table: &[(&str, Option<&str>, &str, &HeaderMap, &str)] = &[
            ("GET", None, "/", &none, "catch-all"),
            ("GET", None, "/v1/users", &none, "users"),
            ("GET", None, "/v1/users/7", &none, "users"),
            ("GET", None, "/v1/usersx", &none, "catch-all"),
            ("POST", None, "/v1/users", &none, "users-post"),
            ("GET", None, "/v1/users/me", &none, "user-exact"),
            (
                "GET",
                Some("API.example.com"),
                "/v1/users",
                &none,
                "api-host",
            ),
            ("GET", Some("api.example.com"), "/v2", &none, "wildcard"),
            (
                "GET",
                Some("www.example.com"),
                "/v1/users",
                &none,
                "wildcard",
            ),
            ("GET", Some("example.com"), "/", &none, "catch-all"),
            ("GET", None, "/v1/users/7", &canary, "canary"),
        ];
        for (method, host, path, headers, want) in table {
            let m: Method = method.parse().expect("method");
            let got = r.find(&m, *host, path, headers).map(|s| s.as_str());
            assert_eq!(got, Some(*want), "{method} {host:?} {path}");
        }
    }
}
