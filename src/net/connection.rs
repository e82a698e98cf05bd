//! One accepted connection: its byte stream (after TLS and the HTTP/2 preface, which
//! it replays), what it says of its peer, and the signal that closes it early.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Where a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// A Unix socket (only processes on this host that may open the socket file).
    Unix,
    /// A TCP peer.
    Tcp(SocketAddr),
}

/// The client certificate a TLS connection presented.
#[derive(Debug, Clone, Default)]
pub enum ClientCertificate {
    /// None (a plaintext connection, or a TLS client that sent none).
    #[default]
    None,
    /// A certificate chain that chains to the client CA; the end entity first.
    Verified(Arc<[CertificateDer<'static>]>),
    /// A certificate that does not chain to the client CA (the peer proved it holds its
    /// key, but nobody meshd trusts vouches for it), and why.
    Untrusted(String),
}

/// What a connection says of its peer, handed to every request on it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Where it comes from.
    pub remote: Remote,
    /// Its TLS client certificate.
    pub client_certificate: ClientCertificate,
    pub(super) activity: Arc<Activity>,
}

/// How many streams a connection carries (a connection with none is idle).
#[derive(Debug, Default)]
pub(super) struct Activity {
    streams: AtomicUsize,
    /// Streams opened since the listener last looked.
    opened: AtomicUsize,
}

impl Activity {
    pub(super) fn is_idle(&self) -> bool {
        self.streams.load(Ordering::Relaxed) == 0
    }

    pub(super) fn streams_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    pub(super) fn reset_opened(&self) {
        self.opened.store(0, Ordering::Relaxed);
    }
}

impl ConnectionInfo {
    /// A connection that did not come through meshd's listeners (served in process).
    pub fn local() -> Self {
        Self {
            remote: Remote::Unix,
            client_certificate: ClientCertificate::None,
            activity: Arc::default(),
        }
    }

    /// Counts a stream on this connection until the guard is dropped: a connection
    /// with a stream is never closed as idle.
    pub fn stream_opened(&self) -> StreamGuard {
        self.activity.streams.fetch_add(1, Ordering::Relaxed);
        self.activity.opened.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.activity.clone())
    }

    /// How many streams the connection carries now.
    pub fn streams(&self) -> usize {
        self.activity.streams.load(Ordering::Relaxed)
    }
}

/// A stream counted on its connection (see [`ConnectionInfo::stream_opened`]).
#[derive(Debug)]
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The byte streams a connection can be: TCP, TLS over TCP, a Unix socket.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// An accepted connection, ready for HTTP/2: reading first replays the preface the
/// listener already read; once its close signal fires (the listener closing an idle
/// connection to make room), reads end and writes fail, so the server drops it.
pub struct Connection {
    io: Box<dyn Io>,
    replay: Vec<u8>,
    replayed: usize,
    info: ConnectionInfo,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Dropped with the connection: frees its place under the listener's limit.
    _slot: Box<dyn Send + Sync>,
}

impl Connection {
    pub(super) fn new(
        io: Box<dyn Io>,
        replay: Vec<u8>,
        info: ConnectionInfo,
        close: CancellationToken,
        slot: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            io,
            replay,
            replayed: 0,
            info,
            closed: Box::pin(close.cancelled_owned()),
            _slot: slot,
        }
    }

    fn is_closed(&mut self, cx: &mut Context<'_>) -> bool {
        self.closed.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.is_closed(cx) {
            return Poll::Ready(Ok(()));
        }
        if this.replayed < this.replay.len() {
            let rest = &this.replay[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

fn closed_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "closed by meshd to make room",
    )
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.is_closed(cx) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}
