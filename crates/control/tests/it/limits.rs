//! No client can do to the control plane what the seed's DNS lookup did to its servers: hold
//! every slot. A silent or slow client is cut off at the head deadline; one address holds at
//! most its share of connections; everyone else is still served meanwhile.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common;

/// A connection from `source` (any 127.0.0.0/8 address) to `to`.
async fn connect_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source");
    socket.connect(to).await.expect("connect")
}

/// Whether the server closed `conn` within `within` (EOF or reset on read).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(within, conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

/// A whole `GET /healthz` on a fresh connection from `source`: the status line.
async fn healthz_from(source: [u8; 4], to: SocketAddr) -> String {
    let mut conn = connect_from(source, to).await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_silent_or_greedy_client_holds_no_slot_for_long() {
    let limits = rampart_control::listener::Limits {
        header_read: Duration::from_millis(500),
        connections: 64,
        per_client: 4,
        streams: 8,
        ..Default::default()
    };
    let control = common::production("limits", move |c| c.with_limits(limits)).await;
    let addr = control.addr;
    let greedy = [127, 0, 0, 2];
    let other = [127, 0, 0, 3];

    // The greedy client opens its share and sends nothing, then one more: closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(greedy, addr).await);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = connect_from(greedy, addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_millis(300)).await,
        "a fifth connection from one address was kept"
    );
    // Everyone else is served meanwhile.
    assert_eq!(healthz_from(other, addr).await, "HTTP/1.1 200 OK");

    // Silent connections are cut at the head deadline, not held for ever.
    let t = Instant::now();
    for conn in &mut held {
        assert!(
            closed_within(conn, Duration::from_secs(3)).await,
            "a silent connection outlived the head deadline"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // A head sent a byte at a time is cut at the same deadline.
    let mut slow = connect_from(greedy, addr).await;
    let t = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\n"
        .iter()
        .cycle()
        .take(200)
    {
        if slow.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if t.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut slow, Duration::from_millis(500)).await,
        "a trickled head was never cut"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A kept-alive connection that goes quiet after a request is cut the same way.
    let mut idle = connect_from(greedy, addr).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.expect("an answer");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &answer[..n]
    );
    let t = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)).await,
        "an idle kept-alive connection was held"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Its slots are free again.
    assert_eq!(healthz_from(greedy, addr).await, "HTTP/1.1 200 OK");
    control.stop().await;
}

/// A raw `POST path` with a form body from `source`: the status code and the `Retry-After`.
async fn post_from(source: [u8; 4], to: SocketAddr, path: &str, form: &str) -> (u16, Option<u64>) {
    let mut conn = connect_from(source, to).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry = text
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .and_then(|v| v.trim().parse().ok());
    (status, retry)
}

/// The public form takes a few writes a minute from one address and a bounded number from
/// everyone; past either it answers 429 with `Retry-After`, and stores nothing.
#[tokio::test]
async fn the_public_form_takes_a_bounded_number_of_writes() {
    let limits = rampart_control::listener::Limits {
        public_writes_per_client: 3,
        public_writes: 5,
        ..Default::default()
    };
    let control = common::production("rate", move |c| c.with_limits(limits)).await;
    let addr = control.addr;
    let op = rampart_api::ApiClient::new(&control.url(), Some("op".into()));
    let subscribe = async |source: [u8; 4], n: u32| {
        let form = format!("email=reader{n}%40example.test");
        post_from(source, addr, "/subscribe", &form).await
    };
    for n in 0..3 {
        assert_eq!(subscribe([127, 0, 0, 2], n).await.0, 200);
    }
    let (status, retry) = subscribe([127, 0, 0, 2], 3).await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|r| (1..=60).contains(&r)), "{retry:?}");
    // Another address still gets its share, until everyone's is spent.
    assert_eq!(subscribe([127, 0, 0, 3], 10).await.0, 200);
    assert_eq!(
        post_from([127, 0, 0, 3], addr, "/subscribe/confirm", "token=nope")
            .await
            .0,
        404
    );
    assert_eq!(subscribe([127, 0, 0, 4], 20).await.0, 429);
    // Exactly the admitted ones were stored.
    let stored = op.subscribers().await.expect("subscribers");
    assert_eq!(stored.len(), 4, "{stored:?}");
    control.stop().await;
}

/// Agents are shed first: past the long-poll bound (three quarters of the connection cap) a
/// poll is answered `503 busy` at once, and an operator's deploy, meanwhile, is answered as
/// fast as ever.
#[tokio::test]
async fn a_fleet_at_its_bound_is_shed_and_the_operator_still_rolls_back() {
    let limits = rampart_control::listener::Limits {
        connections: 20,
        per_client: 20,
        ..Default::default()
    };
    let control =
        common::production("agent-shed", move |c| c.with_limits(limits).with_plan(None)).await;
    let op = rampart_api::ApiClient::new(&control.url(), Some("op".into()));
    let approver = rampart_api::ApiClient::new(&control.url(), Some("ap".into()));
    let doc = |ms| common::document(common::free_addr(), ms);
    let v1 = op.push(&doc(1000), "v1").await.expect("push").version.id;
    let v2 = op.push(&doc(2000), "v2").await.expect("push").version.id;
    approver
        .deploy("production", &v1, Some("first".into()))
        .await
        .expect("deploy");
    // Fifteen agents (the bound: 20 × 3/4) run v1 and long-poll, holding their permits.
    let agent = rampart_api::ApiClient::new(&control.url(), Some("agent".into()));
    let mut polls = vec![];
    for i in 0..16 {
        let reg = rampart_api::RegisterRequest {
            instance: format!("a{i}"),
            environment: "production".into(),
            zone: "z".into(),
            build: "test".into(),
        };
        let credential = agent.register(&reg).await.expect("register").credential;
        let me = agent.for_instance(&credential);
        let report = rampart_api::Report {
            applied: Some(v1.clone()),
            result: Some(rampart_api::ApplyResult::Applied {
                version: v1.clone(),
            }),
            ..Default::default()
        };
        me.report(&reg.instance, &report).await.expect("report");
        let v = v1.to_string();
        polls.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = me
                .desired(&reg.instance, Some(&v), None, None, Duration::from_secs(3))
                .await;
            (r, started.elapsed())
        }));
        if i == 14 {
            // Let the first fifteen settle into their waits.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let shed = polls.pop().expect("the sixteenth").await.expect("task");
    match &shed.0 {
        Err(rampart_api::ClientError::Api {
            status: 503, code, ..
        }) => assert_eq!(code, "busy"),
        other => panic!("the sixteenth poll was not shed: {other:?}"),
    }
    assert!(shed.1 < Duration::from_secs(1), "shed late: {:?}", shed.1);
    // The operator is not counted against the fleet: a deploy while it is at its bound is
    // answered at once (and wakes every poll), and so is the rollback after it.
    let asked = Instant::now();
    approver
        .deploy("production", &v2, Some("second".into()))
        .await
        .expect("deploy while the fleet is at its bound");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let asked = Instant::now();
    op.rollback("production", Some(v1.clone()))
        .await
        .expect("rollback");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    for p in polls {
        let (answer, _) = p.await.expect("task");
        answer.expect("every admitted poll is answered");
    }
}
