//! Meshd's own listeners, beneath the protocols: accepting connections with a limit,
//! a deadline for each handshake (TLS and the HTTP/2 preface) and the idle ones closed
//! first when the limit is reached; TLS with a certificate that is re-read when its
//! files change; and what each connection says of its peer ([`ConnectionInfo`]).

mod connection;
mod listener;
mod tls;

pub use connection::{ClientCertificate, Connection, ConnectionInfo, Io, Remote, StreamGuard};
pub use listener::{Acceptor, ListenerCounts, ListenerLimits, ListenerStats, serve_connections};
pub use tls::{ServerTls, TlsError};

/// Raises this process's soft limit on open files to its hard limit, so that the
/// connection limits, not the open-files limit (1,024 under systemd by default), decide
/// how many connections meshd holds. Returns the soft limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::increase_nofile_limit(hard)
}
