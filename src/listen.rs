//! Serving HTTP (1.1 and 2) on a TCP listener within bounds, for any [`axum::Router`]:
//! at most [`ConnectionLimits::max_connections`] connections at a time (when a new one
//! would pass it, the connection idle the longest is closed to make room, and if none is
//! idle the new one is closed at once), a request head that is not read within
//! [`ConnectionLimits::header_timeout`] closes its connection, and a connection with no
//! request in flight for [`ConnectionLimits::idle_timeout`] is closed. An accept that
//! fails (out of file descriptors) is retried after a pause, never ends the server.
//!
//! Request bodies are the service's business (a gRPC stream's body lasts as long as the
//! stream): the API bounds them itself (`api::limits`).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// File descriptors kept free below the open-files limit for everything but
/// connections (the store, the xDS port, logs, Envoy's streams' own descriptors…).
const RESERVED_DESCRIPTORS: u64 = 256;

/// How long a connection told to close may take to finish the request it is serving.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long to wait before accepting again after an accept failed.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The bounds a server keeps its connections within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// The longest a request head (request line and headers) may take to arrive.
    pub header_timeout: Duration,
    /// The longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// A 10 s header timeout, a 60 s idle timeout and [`default_max_connections`].
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// 4,096 connections, or fewer when the process's open-files limit would not leave
/// [`RESERVED_DESCRIPTORS`] free (at least 16).
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    limit.saturating_sub(RESERVED_DESCRIPTORS).clamp(16, 4096) as usize
}

/// One open connection, as the accept loop sees it.
struct Connection {
    /// Requests being served on it now.
    in_flight: AtomicUsize,
    /// When its last request ended (or it was accepted).
    idle_since: Mutex<Instant>,
    /// Told to close (to make room, or because the server stops).
    close: Notify,
    /// Chosen to make room: no longer counted against the limit, never chosen again.
    closing: AtomicBool,
}

impl Connection {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: Notify::new(),
            closing: AtomicBool::new(false),
        }
    }

    /// Since when it has been idle, if it is.
    fn idle(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| *self.idle_since.lock())
    }
}

/// Counts a request in flight on a connection for as long as it lives.
struct InFlight(Arc<Connection>);

impl InFlight {
    fn start(connection: &Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(connection.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, by id.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next: AtomicU64,
}

impl Connections {
    /// Makes room for one more connection within `max`: closes the one idle the
    /// longest if the limit is reached. `false` when every connection is busy.
    fn make_room(&self, max: usize) -> bool {
        let open = self.open.lock();
        let counted = || open.values().filter(|c| !c.closing.load(Ordering::Acquire));
        if counted().count() < max {
            return true;
        }
        let longest_idle = counted()
            .filter_map(|c| c.idle().map(|since| (since, c)))
            .min_by_key(|(since, _)| *since);
        match longest_idle {
            Some((_, connection)) => {
                // It leaves the table when its task ends, a moment later; it no longer
                // counts, and is not chosen again.
                connection.closing.store(true, Ordering::Release);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn insert(&self, connection: Arc<Connection>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, connection);
        id
    }

    fn remove(&self, id: u64) {
        self.open.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.open.lock().len()
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then
/// stops accepting, lets each connection finish the request it serves (up to a few
/// seconds) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let (stopping, stop_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(256 * 1024)
        .max_headers(256);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!("accepting a connection failed: {err}; retrying");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        if !connections.make_room(limits.max_connections) {
            // Accepted and closed at once, so that it does not wait in the backlog.
            tracing::debug!(%peer, "closing a new connection: every one of {} is busy", limits.max_connections);
            drop(stream);
            continue;
        }
        let connection = Arc::new(Connection::new());
        let id = connections.insert(connection.clone());
        let router = router.clone();
        let builder = builder.clone();
        let connections = connections.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(builder, stream, peer, router, connection, limits, stop_rx).await;
            connections.remove(id);
        });
    }
    let _ = stopping.send(true);
    let deadline = Instant::now() + CLOSE_GRACE + Duration::from_secs(1);
    while connections.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Serves one connection until it ends, is told to close, stays idle too long, or the
/// server stops.
async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    connection: Arc<Connection>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let tracked = connection.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = InFlight::start(&tracked);
            let router = router.clone();
            async move {
                let response = router.oneshot(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        });
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);
    let closing = loop {
        let idle_check = match connection.idle() {
            Some(since) => since + limits.idle_timeout,
            None => Instant::now() + limits.idle_timeout,
        };
        tokio::select! {
            result = served.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, "connection ended: {err}");
                }
                return;
            }
            () = connection.close.notified() => break "to make room",
            _ = stop.wait_for(|stop| *stop) => break "the server stops",
            () = tokio::time::sleep_until(idle_check) => {
                if connection.idle().is_some_and(|since| since.elapsed() >= limits.idle_timeout) {
                    break "idle";
                }
            }
        }
    };
    tracing::debug!(%peer, "closing the connection: {closing}");
    served.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, served).await;
}
