//! The etcd members meshd talks to, one client each, and failing over between them.
//!
//! A single client balanced over every endpoint keeps sending some requests to a member
//! that is down (each failing with a connection error), so meshd keeps one client per
//! member and sends each request to the member that last answered. A request that was
//! certainly never sent (the connection was refused, or the member says it has no
//! leader) is retried at once on the next member; any other failure is reported, since
//! the request may have been carried out, and the next request starts at the next
//! member.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// How long connecting to an etcd member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One client per etcd member.
pub(super) struct Members {
    clients: Vec<(String, Client)>,
    preferred: AtomicUsize,
}

impl Members {
    /// Clients for `endpoints` (connections are made when first used).
    pub(super) async fn connect(endpoints: &[String]) -> Result<Self, etcd_client::Error> {
        let mut clients = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let options = ConnectOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
                .with_keep_alive_while_idle(true)
                .with_require_leader(true);
            let client = Client::connect([endpoint], Some(options)).await?;
            clients.push((endpoint.clone(), client));
        }
        Ok(Self {
            clients,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Runs `request` on the preferred member, and on the next ones while it was
    /// certainly not carried out.
    pub(super) async fn call<T, F, Fut>(&self, request: F) -> Result<T, etcd_client::Error>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..self.clients.len() {
            let index = (start + offset) % self.clients.len();
            let (endpoint, client) = &self.clients[index];
            match request(client.clone()).await {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(err) if never_sent(&err) => {
                    tracing::debug!(endpoint, "etcd member unavailable: {err}");
                    last = Some(err);
                }
                Err(err) => {
                    self.skip(index);
                    return Err(err);
                }
            }
        }
        self.skip(start);
        Err(last.expect("there is at least one member"))
    }

    /// The client of the member to use now, for a long-lived request (the watch).
    pub(super) fn current(&self) -> Client {
        let index = self.preferred.load(Ordering::Relaxed) % self.clients.len();
        self.clients[index].1.clone()
    }

    /// Moves on from the member at `index` (it failed, or its stream broke).
    pub(super) fn skip(&self, index: usize) {
        let next = (index + 1) % self.clients.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Moves on from the current member.
    pub(super) fn skip_current(&self) {
        self.skip(self.preferred.load(Ordering::Relaxed) % self.clients.len());
    }
}

/// Whether `err` says the request never reached a member able to carry it out: the
/// connection could not be made, or the member has no leader (`require_leader`).
fn never_sent(err: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = err else {
        return matches!(err, etcd_client::Error::TransportError(_));
    };
    if status.code() == tonic::Code::Unavailable
        && (status.message().contains("no leader")
            || status.message().contains("tcp connect error"))
    {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        if cause.to_string().contains("tcp connect error")
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = cause.source();
    }
    false
}
