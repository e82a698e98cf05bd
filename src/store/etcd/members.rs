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
use tokio::sync::OnceCell;

/// How long connecting to an etcd member (and authenticating, with a user) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One client per etcd member.
pub(super) struct Members {
    members: Vec<Member>,
    preferred: AtomicUsize,
}

/// One etcd member and its client, made when the member is first used: with a user and
/// password, making the client authenticates, which a member that is down at start
/// cannot answer; the other members serve meanwhile.
struct Member {
    endpoint: String,
    options: ConnectOptions,
    client: OnceCell<Client>,
}

impl Member {
    /// The member's client, connected (and authenticated) on first use.
    async fn client(&self) -> Result<Client, etcd_client::Error> {
        self.client
            .get_or_try_init(|| async {
                let connect = Client::connect([&self.endpoint], Some(self.options.clone()));
                match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                    Ok(connected) => connected,
                    Err(_) => Err(etcd_client::Error::Internal(format!(
                        "no answer from {} within {CONNECT_TIMEOUT:?}",
                        self.endpoint
                    ))),
                }
            })
            .await
            .cloned()
    }
}

impl Members {
    /// The members at `endpoints`, reached with `options` (TLS, user) besides meshd's
    /// own timeouts; nothing is connected until a request is made.
    pub(super) fn new(endpoints: &[String], options: ConnectOptions) -> Self {
        let options = options
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let members = endpoints
            .iter()
            .map(|endpoint| Member {
                endpoint: endpoint.clone(),
                options: options.clone(),
                client: OnceCell::new(),
            })
            .collect();
        Self {
            members,
            preferred: AtomicUsize::new(0),
        }
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
        for offset in 0..self.members.len() {
            let index = (start + offset) % self.members.len();
            let member = &self.members[index];
            let endpoint = &member.endpoint;
            let client = match member.client().await {
                Ok(client) => client,
                Err(err) => {
                    tracing::debug!(endpoint, "cannot connect to etcd member: {err}");
                    last = Some(err);
                    continue;
                }
            };
            match request(client).await {
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
    pub(super) async fn current(&self) -> Result<Client, etcd_client::Error> {
        let index = self.preferred.load(Ordering::Relaxed) % self.members.len();
        self.members[index].client().await
    }

    /// Moves on from the member at `index` (it failed, or its stream broke).
    pub(super) fn skip(&self, index: usize) {
        let next = (index + 1) % self.members.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Moves on from the current member.
    pub(super) fn skip_current(&self) {
        self.skip(self.preferred.load(Ordering::Relaxed) % self.members.len());
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
