//! The API client given several replicas: it moves past one that cannot be reached or says no
//! replica leads, and sticks to the one that answered; it never sends a write twice when the
//! first may have been taken, and an API error is an answer, not a reason to move on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_api::{ApiClient, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;

/// A server on loopback that answers every request with `answer` (raw HTTP/1.1), or, given
/// `None`, reads the request and closes the connection without a word; counts requests.
async fn stub(answer: Option<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                if let Some(a) = answer {
                    let _ = stream.write_all(a.as_bytes()).await;
                }
            });
        }
    });
    (addr, seen)
}

fn answer(status: &str, code: &str) -> &'static str {
    let body = format!(r#"{{"error":"{code}","message":"stub"}}"#);
    Box::leak(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

#[tokio::test]
async fn the_client_fails_over_only_when_nothing_was_done() {
    let control = common::production("failover", |c| c).await;
    let live = control.url();
    // Nothing listens here.
    let dead = format!("http://{}", common::free_addr());
    let (no_leader, asked_no_leader) =
        stub(Some(answer("503 Service Unavailable", "no_leader"))).await;
    let (broken, asked_broken) = stub(Some(answer("500 Internal Server Error", "internal"))).await;
    let (silent, asked_silent) = stub(None).await;

    // Unreachable, then a replica without a leader: a write goes on to the live one, and the
    // client stays there.
    let op = ApiClient::new(
        &format!("{dead},http://{no_leader},{live}"),
        Some("op".into()),
    );
    let doc = common::document(common::free_addr(), 1000);
    op.push(&doc, "through the third").await.expect("push");
    assert_eq!(op.base(), live);
    assert_eq!(asked_no_leader.load(Ordering::SeqCst), 1);
    op.versions().await.expect("versions");
    assert_eq!(
        asked_no_leader.load(Ordering::SeqCst),
        1,
        "it did not stick"
    );

    // An API error is the answer: no other replica is asked.
    let op = ApiClient::new(&format!("http://{broken},{live}"), Some("op".into()));
    let err = op.versions().await.expect_err("the first replica's 500");
    assert!(matches!(err, ClientError::Api { status: 500, .. }), "{err}");
    assert_eq!(asked_broken.load(Ordering::SeqCst), 1);

    // A replica that took the request and said nothing: a write is not sent again (it may
    // have been done), a read is.
    let op = ApiClient::new(&format!("http://{silent},{live}"), Some("op".into()));
    let err = op.push(&doc, "maybe done").await.expect_err("not retried");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert_eq!(asked_silent.load(Ordering::SeqCst), 1);
    let op = ApiClient::new(&format!("http://{silent},{live}"), Some("op".into()));
    op.versions().await.expect("a read goes on to the next");
    assert_eq!(asked_silent.load(Ordering::SeqCst), 2);

    // Every replica away: the call ends by its deadline, saying what the last one said.
    let op = ApiClient::new(&format!("{dead},http://{no_leader}"), Some("op".into()));
    let started = std::time::Instant::now();
    let err = op.versions().await.expect_err("nobody leads");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("stub") || err.to_string().contains("unreachable"),
        "{err}"
    );
}
