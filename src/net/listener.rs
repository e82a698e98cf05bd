//! Accepting connections under limits: at most `max_connections` at once (when full,
//! the oldest connection that carries no stream is closed to make room, and a new one
//! is refused only if every connection is busy), a deadline for the TLS handshake and
//! the HTTP/2 preface together, and connections idle for too long closed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::connection::{Activity, ClientCertificate, Connection, ConnectionInfo, Io, Remote};
use super::tls::ServerTls;

/// What every HTTP/2 connection starts with (RFC 9113, 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a listener bounds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// The most connections held at once.
    pub max_connections: usize,
    /// How long a connection may take to finish its TLS handshake and send the HTTP/2
    /// preface.
    pub handshake_timeout: Duration,
    /// How long a connection may carry no stream before it is closed.
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// What a listener has done, for the status view.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    open: AtomicU64,
    refused_full: AtomicU64,
    closed_idle: AtomicU64,
    failed_handshakes: AtomicU64,
}

/// [`ListenerStats`] as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerCounts {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now (handshaking or established).
    pub open: u64,
    /// Connections refused because every place was taken by a busy connection.
    pub refused_full: u64,
    /// Connections closed because they carried no stream (to make room, or for too long).
    pub closed_idle: u64,
    /// Connections that failed or timed out in the TLS handshake or the HTTP/2 preface.
    pub failed_handshakes: u64,
}

impl ListenerStats {
    /// The counts now.
    pub fn counts(&self) -> ListenerCounts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ListenerCounts {
            accepted: read(&self.accepted),
            open: read(&self.open),
            refused_full: read(&self.refused_full),
            closed_idle: read(&self.closed_idle),
            failed_handshakes: read(&self.failed_handshakes),
        }
    }
}

/// A source of connections: a TCP or Unix listener.
pub trait Acceptor: Send + 'static {
    /// The byte stream of one connection.
    type Stream: Io;
    /// The next connection and where it comes from.
    fn accept(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, Remote)>> + Send;
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> std::io::Result<(Self::Stream, Remote)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Remote::Tcp(addr)))
    }
}

impl Acceptor for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Stream, Remote)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, Remote::Unix))
    }
}

/// A connection's place under the limit.
struct Slot {
    activity: Arc<Activity>,
    close: CancellationToken,
    /// Whether it was idle at the last sweep, and how many streams it had opened then.
    idle_at_sweep: bool,
}

/// The connections a listener holds, oldest first.
#[derive(Default)]
struct Slots {
    slots: Mutex<BTreeMap<u64, Slot>>,
    next: AtomicU64,
}

/// Frees a connection's place when the connection is dropped.
struct SlotGuard {
    slots: Arc<Slots>,
    stats: Arc<ListenerStats>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.slots.lock().remove(&self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slots {
    /// Takes a place for a new connection, closing the oldest idle one if every place
    /// is taken; `None` if every connection is busy.
    fn take(
        self: &Arc<Self>,
        limit: usize,
        stats: &Arc<ListenerStats>,
    ) -> Option<(SlotGuard, Arc<Activity>, CancellationToken)> {
        let mut slots = self.slots.lock();
        if slots.len() >= limit {
            let idle = slots
                .iter()
                .find(|(_, slot)| slot.activity.is_idle())
                .map(|(id, _)| *id)?;
            if let Some(slot) = slots.remove(&idle) {
                slot.close.cancel();
                stats.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        let close = CancellationToken::new();
        slots.insert(
            id,
            Slot {
                activity: activity.clone(),
                close: close.clone(),
                idle_at_sweep: false,
            },
        );
        stats.open.fetch_add(1, Ordering::Relaxed);
        Some((
            SlotGuard {
                slots: self.clone(),
                stats: stats.clone(),
                id,
            },
            activity,
            close,
        ))
    }

    /// Closes the connections that were idle at the last sweep and still are (so idle
    /// for between one and two sweep intervals); marks the idle ones for the next.
    fn sweep(&self, stats: &ListenerStats) {
        let mut slots = self.slots.lock();
        slots.retain(|_, slot| {
            let idle = slot.activity.is_idle() && slot.activity.streams_opened() == 0;
            if idle && slot.idle_at_sweep {
                slot.close.cancel();
                stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            slot.idle_at_sweep = slot.activity.is_idle();
            slot.activity.reset_opened();
            true
        });
    }
}

/// Why a connection never got to HTTP/2.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it did not send the HTTP/2 preface")]
    NotHttp2,
}

async fn handshake<S: Io>(
    stream: S,
    tls: Option<&ServerTls>,
) -> Result<(Box<dyn Io>, Vec<u8>, ClientCertificate), HandshakeError> {
    let (mut io, client_certificate): (Box<dyn Io>, _) = match tls {
        Some(tls) => {
            let stream = tls.acceptor().accept(stream).await?;
            let presented = stream.get_ref().1.peer_certificates();
            let client = tls.client_certificate(presented);
            (Box::new(stream), client)
        }
        None => (Box::new(stream), ClientCertificate::None),
    };
    let mut preface = vec![0; PREFACE.len()];
    io.read_exact(&mut preface).await?;
    if preface != PREFACE {
        return Err(HandshakeError::NotHttp2);
    }
    Ok((io, preface, client_certificate))
}

/// Accepts connections from `listener` (through `tls`, if given) under `limits`, and
/// yields those that finish their handshake in time, ready for an HTTP/2 server
/// (tonic's `serve_with_incoming`). Accepting stops when the returned stream is dropped.
pub fn serve_connections<A: Acceptor>(
    listener: A,
    tls: Option<Arc<ServerTls>>,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
) -> ReceiverStream<std::io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Slots::default());
    tokio::spawn(sweep_idle(
        Arc::downgrade(&slots),
        stats.clone(),
        limits.idle_timeout,
    ));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to be freed.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            let Some((slot, activity, close)) = slots.take(limits.max_connections, &stats) else {
                stats.refused_full.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let (tx, tls, stats) = (tx.clone(), tls.clone(), stats.clone());
            tokio::spawn(async move {
                let finished = tokio::select! {
                    finished = tokio::time::timeout(limits.handshake_timeout, handshake(stream, tls.as_deref())) => finished,
                    () = close.cancelled() => return,
                };
                match finished {
                    Ok(Ok((io, preface, client_certificate))) => {
                        let info = ConnectionInfo {
                            remote,
                            client_certificate,
                            activity,
                        };
                        let connection = Connection::new(io, preface, info, close, Box::new(slot));
                        let _ = tx.send(Ok(connection)).await;
                    }
                    Ok(Err(err)) => {
                        stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(?remote, "a connection failed its handshake: {err}");
                    }
                    Err(_) => {
                        stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(
                            ?remote,
                            "a connection did not finish its handshake in time"
                        );
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn sweep_idle(slots: std::sync::Weak<Slots>, stats: Arc<ListenerStats>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(slots) = slots.upgrade() else { return };
        slots.sweep(&stats);
    }
}
