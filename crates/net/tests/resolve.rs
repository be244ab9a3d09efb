//! The resolver: lookups with a hard deadline, positive and negative caching, serve-stale.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rampart_model::ResolverConfig;
use rampart_net::{ResolveError, Resolver};
use rampart_testkit::dns::{BlackHoleDns, StaticDns};

fn config(
    ns: std::net::SocketAddr,
    cache_ttl: u64,
    negative_ttl: u64,
    serve_stale: u64,
) -> ResolverConfig {
    ResolverConfig {
        nameservers: Some(vec![ns]),
        timeout: Duration::from_millis(100),
        attempts: 2,
        cache_ttl: Duration::from_millis(cache_ttl),
        negative_ttl: Duration::from_millis(negative_ttl),
        serve_stale: Duration::from_millis(serve_stale),
    }
}

#[tokio::test]
async fn black_hole_lookups_end_at_the_deadline_and_are_negatively_cached() {
    let dns = BlackHoleDns::start().await.expect("dns");
    let r = Resolver::new(&config(dns.addr, 1000, 500, 0)).expect("resolver");
    let t = Instant::now();
    let err = r.lookup("api.blackhole.test").await.expect_err("no answer");
    let took = t.elapsed();
    assert!(
        matches!(
            err,
            ResolveError::Timeout { .. } | ResolveError::Failed { .. }
        ),
        "{err}"
    );
    // Ended by the deadline (the black hole never answers), give or take scheduling.
    assert!(
        took <= r.deadline() + Duration::from_millis(500),
        "took {took:?}, deadline {:?}",
        r.deadline()
    );
    assert!(dns.queries() >= 1);
    // Within negative_ttl the failure is answered from cache: no query is sent.
    let queries = dns.queries();
    let err = r
        .lookup("api.blackhole.test")
        .await
        .expect_err("cached failure");
    assert!(matches!(err, ResolveError::Negative { .. }), "{err}");
    assert_eq!(
        dns.queries(),
        queries,
        "a negatively cached name was asked again"
    );
    // After it, the name is tried again.
    tokio::time::sleep(Duration::from_millis(550)).await;
    let before = dns.queries();
    let _ = r.lookup("api.blackhole.test").await;
    assert!(dns.queries() > before, "negative entry did not expire");
}

#[tokio::test]
async fn answers_are_cached_and_served_stale_when_dns_goes_silent() {
    let dns = StaticDns::start(&[("users.internal", Ipv4Addr::new(127, 0, 0, 7))])
        .await
        .expect("dns");
    let r = Resolver::new(&config(dns.addr, 200, 1000, 60_000)).expect("resolver");
    let want = vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))];
    assert_eq!(r.lookup("users.internal").await.expect("resolved"), want);
    let q = dns.queries();
    assert_eq!(r.lookup("users.internal").await.expect("cached"), want);
    assert_eq!(dns.queries(), q, "a fresh answer must come from cache");
    // The DNS server goes silent; after cache_ttl the stale answer is served, within the deadline.
    dns.set_silent(true);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let t = Instant::now();
    assert_eq!(r.lookup("users.internal").await.expect("stale"), want);
    assert!(t.elapsed() <= r.deadline() + Duration::from_millis(500));
    assert!(dns.queries() > q, "a refresh was attempted");
    // An unknown name is NXDOMAIN, cached negatively.
    dns.set_silent(false);
    assert!(r.lookup("nobody.internal").await.is_err());
    assert!(matches!(
        r.lookup("nobody.internal").await,
        Err(ResolveError::Negative { .. })
    ));
}
