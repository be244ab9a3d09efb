//! The parking lot: idle HTTP/1.1 connections that hold nothing but their socket (and their
//! TLS session).
//!
//! An HTTP/1.1 connection idle for `limits.park_after` ends its task and hands its socket here
//! (with its TLS session, if any). The lot keeps it as an entry of a few dozen bytes (the
//! socket, the client's address, the connection's slot under `max_connections`, its idle
//! deadline), watched by an epoll instance of the lot's own (mio's `Poll`, which the runtime's
//! reactor watches in turn), so a parked connection has no task and no buffer, and a plain one
//! no registration with the runtime either. When a parked socket becomes readable (the next
//! request's bytes, or the client's close) its entry leaves the lot and a new connection task
//! takes the socket over; when its idle deadline passes, or the listener stops, it is closed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, watch};

use super::{Slot, Stop};
use crate::client_conn::Watched;
use crate::metrics::Metrics;

/// A parked connection's socket.
pub(super) enum Socket {
    /// Out of the runtime's reactor (non-blocking).
    Plain(TcpStream),
    /// A TLS session over its socket, which stays registered with the runtime.
    Tls(Box<tokio_rustls::server::TlsStream<Watched<tokio::net::TcpStream>>>),
}

impl Socket {
    fn fd(&self) -> RawFd {
        match self {
            Socket::Plain(socket) => socket.as_raw_fd(),
            Socket::Tls(tls) => tls.get_ref().0.get_ref().as_raw_fd(),
        }
    }
}

/// What a connection leaves behind when it is parked.
pub(super) struct Parked {
    pub socket: Socket,
    pub remote: SocketAddr,
    /// When it is closed unless a request has started.
    pub idle_deadline: Instant,
}

/// One parked connection.
struct Entry {
    socket: Socket,
    remote: SocketAddr,
    slot: Slot,
    /// Which parking this is: an entry's key is reused once it has left.
    id: u64,
}

/// The parked connections and their deadlines.
struct Spaces {
    entries: Slab<Entry>,
    /// Earliest first: (deadline, key, id). An entry that left before its deadline leaves its
    /// line behind (told apart by the id), so the heap is rebuilt from the entries when it
    /// holds more stale lines than live ones.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_id: u64,
    /// Set when the listener stops: a connection parked later is closed instead.
    closed: bool,
}

/// A listener's parked connections.
pub(super) struct Lot {
    registry: Registry,
    spaces: Mutex<Spaces>,
    /// Woken when a connection is parked with a deadline earlier than any the lot waits for.
    earlier: Notify,
    metrics: Metrics,
}

/// What a parked connection becomes when its socket turns readable.
pub(super) type Resume = dyn Fn(Socket, SocketAddr, Slot) + Send + Sync;

impl Lot {
    /// A lot and the poller its [`Lot::run`] watches.
    pub(super) fn new(metrics: Metrics) -> io::Result<(Arc<Lot>, Poll)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let lot = Lot {
            registry,
            spaces: Mutex::new(Spaces {
                entries: Slab::new(),
                deadlines: BinaryHeap::new(),
                next_id: 0,
                closed: false,
            }),
            earlier: Notify::new(),
            metrics,
        };
        Ok((Arc::new(lot), poll))
    }

    fn spaces(&self) -> MutexGuard<'_, Spaces> {
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks a connection; it is closed instead if the listener has stopped or the socket
    /// cannot be watched.
    pub(super) fn park(&self, parked: Parked, slot: Slot) {
        let mut spaces = self.spaces();
        if spaces.closed {
            return;
        }
        let key = spaces.entries.vacant_key();
        let fd = parked.socket.fd();
        // Readiness already there (bytes that arrived while the protocol was ending) is
        // reported at once: epoll looks when a socket is added.
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)
        {
            tracing::debug!(remote = %parked.remote, error = %e, "parking failed; connection closed");
            return;
        }
        let id = spaces.next_id;
        spaces.next_id += 1;
        spaces.entries.insert(Entry {
            socket: parked.socket,
            remote: parked.remote,
            slot,
            id,
        });
        let earliest = spaces.deadlines.peek().map(|Reverse((at, ..))| *at);
        spaces
            .deadlines
            .push(Reverse((parked.idle_deadline, key, id)));
        self.metrics.parked_connections().inc();
        drop(spaces);
        if earliest.is_none_or(|at| parked.idle_deadline < at) {
            self.earlier.notify_one();
        }
    }

    /// Takes a parked connection out of the lot.
    fn take(&self, spaces: &mut Spaces, key: usize) -> Option<Entry> {
        let entry = spaces.entries.try_remove(key)?;
        let _ = self.registry.deregister(&mut SourceFd(&entry.socket.fd()));
        self.metrics.parked_connections().dec();
        if spaces.deadlines.len() > 2 * spaces.entries.len() + 64 {
            let lines = std::mem::take(&mut spaces.deadlines).into_vec();
            spaces.deadlines = lines
                .into_iter()
                .filter(|Reverse((_, key, id))| {
                    spaces.entries.get(*key).is_some_and(|e| e.id == *id)
                })
                .collect();
        }
        Some(entry)
    }

    /// The earliest deadline the lot holds.
    fn next_deadline(&self) -> Option<Instant> {
        self.spaces().deadlines.peek().map(|Reverse((at, ..))| *at)
    }

    /// Closes the connections whose idle deadline has passed.
    fn expire(&self, now: Instant) {
        let mut spaces = self.spaces();
        while let Some(&Reverse((at, key, id))) = spaces.deadlines.peek() {
            if at > now {
                break;
            }
            spaces.deadlines.pop();
            if spaces.entries.get(key).is_some_and(|e| e.id == id)
                && let Some(entry) = self.take(&mut spaces, key)
            {
                self.metrics.deadline_expired("idle");
                tracing::debug!(remote = %entry.remote, deadline = "idle", "parked connection closed by a deadline");
            }
        }
    }

    /// Closes every parked connection, and any parked later.
    fn close(&self) {
        let mut spaces = self.spaces();
        spaces.closed = true;
        let parked = spaces.entries.len() as i64;
        spaces.entries.clear();
        spaces.deadlines.clear();
        self.metrics.parked_connections().dec_by(parked);
    }

    /// Watches the parked connections until the listener stops: a connection whose socket
    /// turns readable is handed to `resume`, one whose deadline passes is closed.
    pub(super) async fn run(
        self: Arc<Lot>,
        poll: Poll,
        mut stop: watch::Receiver<Stop>,
        resume: Box<Resume>,
    ) {
        // Sound here, what the deprecation warns of aside: the poller owns its epoll descriptor
        // and keeps it, unchanged, until it is dropped with the `AsyncFd` (the unsafe
        // replacement asks the caller to promise exactly this).
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(poll, tokio::io::Interest::READABLE);
        let mut poll = match registered {
            Ok(poll) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "parking lot not watched; parked connections closed");
                self.close();
                return;
            }
        };
        let mut events = Events::with_capacity(256);
        loop {
            let next = self.next_deadline();
            let earlier = self.earlier.notified();
            tokio::select! {
                biased;
                changed = stop.changed() => match (changed, *stop.borrow()) {
                    (Ok(()), Stop::Run) => {}
                    _ => break,
                },
                ready = poll.readable_mut() => {
                    let mut ready = match ready {
                        Ok(ready) => ready,
                        Err(e) => {
                            tracing::warn!(error = %e, "parking lot failed; parked connections closed");
                            break;
                        }
                    };
                    events.clear();
                    match ready.get_inner_mut().poll(&mut events, Some(Duration::ZERO)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "parking lot failed; parked connections closed");
                            break;
                        }
                    }
                    if events.is_empty() {
                        ready.clear_ready();
                        continue;
                    }
                    for event in events.iter() {
                        let taken = self.take(&mut self.spaces(), event.token().0);
                        if let Some(entry) = taken {
                            resume(entry.socket, entry.remote, entry.slot);
                        }
                    }
                }
                () = async { match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                } } => self.expire(Instant::now()),
                () = earlier => {}
            }
        }
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Limit;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    /// A lot watched by its task, what it resumes sent to the returned receiver.
    struct Running {
        lot: Arc<Lot>,
        stop: watch::Sender<Stop>,
        resumed: mpsc::UnboundedReceiver<(Socket, Slot)>,
        task: tokio::task::JoinHandle<()>,
        listener: tokio::net::TcpListener,
        slots: Arc<Limit>,
        metrics: Metrics,
    }

    impl Running {
        async fn start() -> Running {
            let metrics = Metrics::new();
            let (lot, poll) = Lot::new(metrics.clone()).expect("lot");
            let (stop, stopped) = watch::channel(Stop::Run);
            let (sent, resumed) = mpsc::unbounded_channel();
            let resume: Box<Resume> = Box::new(move |socket, _, slot| {
                let _ = sent.send((socket, slot));
            });
            let task = tokio::spawn(lot.clone().run(poll, stopped, resume));
            Running {
                lot,
                stop,
                resumed,
                task,
                listener: tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind"),
                slots: Limit::new(100),
                metrics,
            }
        }

        /// A client connection whose server end is parked until `deadline`.
        async fn park(&self, deadline: Duration) -> tokio::net::TcpStream {
            let addr = self.listener.local_addr().expect("addr");
            let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (server, remote) = self.listener.accept().await.expect("accept");
            let slot = Slot::new(
                self.slots.try_acquire().expect("a slot"),
                self.metrics.connections(),
            );
            self.lot.park(
                Parked {
                    socket: Socket::Plain(server.into_std().expect("std socket")),
                    remote,
                    idle_deadline: Instant::now() + deadline,
                },
                slot,
            );
            client
        }

        fn parked(&self) -> usize {
            self.lot.spaces().entries.len()
        }
    }

    /// Whether the gateway's end was closed: the client reads the end of the stream.
    async fn closed(client: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(within, client.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn a_parked_socket_resumes_when_readable_closes_at_its_deadline_and_at_the_stop() {
        let mut lot = Running::start().await;
        let mut readable = lot.park(Duration::from_secs(30)).await;
        let parked_at = Instant::now();
        let mut expiring = lot.park(Duration::from_millis(200)).await;
        let mut staying = lot.park(Duration::from_secs(30)).await;
        assert_eq!((lot.parked(), lot.slots.current()), (3, 3));

        // Bytes arrive: the socket leaves the lot, with its slot, the bytes still unread.
        readable
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let (socket, slot) = tokio::time::timeout(Duration::from_secs(5), lot.resumed.recv())
            .await
            .expect("resumed in time")
            .expect("resumed");
        let Socket::Plain(socket) = socket else {
            panic!("a plain socket was parked")
        };
        assert_eq!(
            socket.peer_addr().expect("peer"),
            readable.local_addr().expect("local")
        );
        let mut head = [0u8; 16];
        let socket = tokio::net::TcpStream::from_std(socket).expect("tokio socket");
        socket.readable().await.expect("readable");
        assert_eq!(socket.try_read(&mut head).expect("read"), 16);
        assert_eq!(lot.parked(), 2);

        // The deadline passes: closed, its slot freed.
        assert!(closed(&mut expiring, Duration::from_secs(5)).await);
        assert!(parked_at.elapsed() >= Duration::from_millis(200));
        assert_eq!((lot.parked(), lot.slots.current()), (1, 2));
        assert!(
            lot.metrics
                .encode()
                .contains("rampart_parked_connections 1")
        );

        // The listener stops: the rest is closed, and a later parking too.
        lot.stop.send_replace(Stop::Drain);
        tokio::time::timeout(Duration::from_secs(5), &mut lot.task)
            .await
            .expect("the lot's task ends")
            .expect("join");
        assert!(closed(&mut staying, Duration::from_secs(5)).await);
        let mut late = lot.park(Duration::from_secs(30)).await;
        assert!(closed(&mut late, Duration::from_secs(5)).await);
        drop((socket, slot));
        assert_eq!((lot.parked(), lot.slots.current()), (0, 0));
        assert!(
            lot.metrics
                .encode()
                .contains("rampart_parked_connections 0")
        );
    }

    #[tokio::test]
    async fn a_reused_entry_is_not_closed_by_the_deadline_of_the_parking_before_it() {
        let mut lot = Running::start().await;
        // Parked with a short deadline, then resumed: its deadline's line stays in the heap.
        let first_deadline = Duration::from_secs(1);
        let mut first = lot.park(first_deadline).await;
        first.write_all(b"x").await.expect("write");
        let resumed = tokio::time::timeout(first_deadline, lot.resumed.recv())
            .await
            .expect("resumed before its deadline")
            .expect("resumed");
        // The next parking takes the same slab entry, with a long deadline.
        let mut second = lot.park(Duration::from_secs(30)).await;
        assert!(lot.lot.spaces().entries.contains(0), "the entry reused");
        tokio::time::sleep(first_deadline + Duration::from_millis(300)).await;
        assert!(
            !closed(&mut second, Duration::from_millis(200)).await,
            "closed by the stale deadline of the entry's previous parking"
        );
        assert_eq!(lot.parked(), 1);
        drop(resumed);
    }

    #[tokio::test]
    async fn the_deadline_heap_does_not_grow_with_connections_that_come_and_go() {
        let mut lot = Running::start().await;
        let mut clients = Vec::new();
        for _ in 0..300 {
            let mut client = lot.park(Duration::from_secs(30)).await;
            client.write_all(b"x").await.expect("write");
            let resumed = lot.resumed.recv().await.expect("resumed");
            clients.push((client, resumed));
            if clients.len() > 50 {
                clients.remove(0);
            }
        }
        let heap = lot.lot.spaces().deadlines.len();
        assert!(heap <= 2 * lot.parked() + 65, "{heap} deadline lines");
    }
}
