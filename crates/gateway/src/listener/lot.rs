//! The parking lot: idle plain HTTP/1.1 connections that hold nothing but their socket.
//!
//! A plain HTTP/1.1 connection idle for `limits.park_after` ends its task and hands its socket here.
//! The lot keeps it as an entry of a few dozen bytes (the socket, the client's address, the
//! connection's slot under `max_connections`, its idle deadline), watched by an epoll instance
//! of the lot's own (mio's `Poll`, which the runtime's reactor watches in turn), so a parked
//! connection has no task, no buffer and no registration with the runtime. When a parked socket
//! becomes readable (the next request's bytes, or the client's close) its entry leaves the lot
//! and a new connection task takes the socket over; when its idle deadline passes, or the
//! listener stops, it is closed. TLS connections are parked in their own task instead: their
//! session state has to stay (`park.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, watch};

use super::Slot;
use super::conn::Stop;
use crate::shared::Shared;

/// What a connection leaves behind when it is parked.
pub(super) struct Parked {
    /// The socket, out of the runtime's reactor (non-blocking).
    pub socket: TcpStream,
    pub remote: SocketAddr,
    /// When it is closed unless a request has started.
    pub idle_deadline: Instant,
}

/// One parked connection.
struct Entry {
    socket: TcpStream,
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
    shared: Arc<Shared>,
}

/// What a parked connection becomes when its socket turns readable.
pub(super) type Resume = dyn Fn(TcpStream, SocketAddr, Slot) + Send + Sync;

impl Lot {
    /// A lot and the poller its [`Lot::run`] watches.
    pub(super) fn new(shared: Arc<Shared>) -> io::Result<(Arc<Lot>, Poll)> {
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
            shared,
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
        let fd = parked.socket.as_raw_fd();
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
        self.shared.metrics.parked_connections().inc();
        drop(spaces);
        if earliest.is_none_or(|at| parked.idle_deadline < at) {
            self.earlier.notify_one();
        }
    }

    /// Takes a parked connection out of the lot.
    fn take(&self, spaces: &mut Spaces, key: usize) -> Option<Entry> {
        let entry = spaces.entries.try_remove(key)?;
        let _ = self
            .registry
            .deregister(&mut SourceFd(&entry.socket.as_raw_fd()));
        self.shared.metrics.parked_connections().dec();
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
                self.shared.metrics.deadline_expired("idle");
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
        self.shared.metrics.parked_connections().dec_by(parked);
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
