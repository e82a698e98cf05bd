//! The etcd backend: meshd's state in etcd v3, shared by several meshd replicas.
//!
//! Each replica keeps the whole store in memory, as with the other backends, and:
//! - on start, reads everything under its prefix (`load.rs`) at one etcd revision;
//! - commits each write as one etcd transaction that succeeds only if nothing was
//!   written since the snapshot the write was checked against (`txn.rs`); otherwise the
//!   store waits until this replica has caught up, checks the write again and retries;
//! - watches the prefix from the revision it loaded at and applies the other replicas'
//!   writes, publishing them on the change feed so that its proxies get them
//!   (`watch.rs`).
//!
//! The etcd client is async; it runs on a small runtime of its own, so that the store's
//! synchronous callers (API handlers on blocking threads) can wait for it from any
//! thread, and no async worker of the server ever waits for etcd. Every request has a
//! timeout: with etcd unreachable, a write fails within [`REQUEST_TIMEOUT`] with
//! [`BackendError::Unavailable`] (`ServiceUnavailableException`), nothing of it applied,
//! while reads keep being served from memory.

mod layout;
mod load;
mod members;
mod txn;
mod watch;

use std::future::Future;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::backend::{Backend, BackendError, Commit};
use super::shared::Follower;
use super::{EtcdAccess, OpenError, Snapshot};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

pub use layout::FORMAT_VERSION as ETCD_FORMAT_VERSION;
use layout::Keys;
use load::LoadError;
use members::Members;

/// How long one request to etcd (a write's transaction) may take before the write fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long loading the store on start may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A store kept in etcd under a key prefix.
pub struct EtcdBackend {
    runtime: Option<Runtime>,
    members: Arc<Members>,
    keys: Keys,
    endpoints: String,
    loaded_at: i64,
    follower: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl EtcdBackend {
    /// Connects to etcd at `endpoints`, makes `prefix` meshd's if it is empty, and reads
    /// it all back: the backend to commit to, and the snapshot to start from. Data that
    /// cannot be read back, or an etcd that does not answer, is refused. The replica
    /// follows other replicas' writes once [`EtcdBackend::follow`] is called.
    pub fn open(
        endpoints: &[String],
        prefix: &str,
        access: &EtcdAccess,
    ) -> Result<(EtcdBackend, Snapshot), OpenError> {
        let joined = endpoints.join(",");
        let unavailable = |detail: String| OpenError::EtcdUnavailable {
            endpoints: joined.clone(),
            detail,
        };
        if endpoints.is_empty() {
            return Err(unavailable("no etcd endpoint is configured".into()));
        }
        let options = connect_options(endpoints, access)
            .map_err(|detail| OpenError::EtcdAccess { detail })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(4)
            .thread_name("meshd-etcd")
            .enable_all()
            .build()
            .map_err(|err| unavailable(format!("cannot start the etcd client: {err}")))?;
        let keys = Keys::new(prefix);
        let opened = {
            let endpoints = endpoints.to_vec();
            let keys = keys.clone();
            run(&runtime, OPEN_TIMEOUT, async move {
                let members = Members::new(&endpoints, options);
                load::initialise(&members, &keys).await?;
                let (snapshot, at) = load::load(&members, &keys).await?;
                Ok::<_, LoadError>((members, snapshot, at))
            })
        };
        let (members, snapshot, loaded_at) = match opened {
            Some(Ok(opened)) => opened,
            Some(Err(LoadError::Data(detail))) => {
                return Err(OpenError::EtcdData {
                    prefix: keys.prefix().to_string(),
                    detail,
                });
            }
            Some(Err(LoadError::Unavailable(detail))) => return Err(unavailable(detail)),
            None => {
                return Err(unavailable(format!(
                    "etcd did not answer within {OPEN_TIMEOUT:?}"
                )));
            }
        };
        tracing::info!(
            endpoints = %joined,
            prefix = keys.prefix(),
            resources = snapshot.len(),
            revision = snapshot.revision(),
            "loaded {} resources (revision {}) from etcd at {joined}",
            snapshot.len(),
            snapshot.revision()
        );
        let backend = EtcdBackend {
            runtime: Some(runtime),
            members: Arc::new(members),
            keys,
            endpoints: joined,
            loaded_at,
            follower: Mutex::new(None),
        };
        Ok((backend, snapshot))
    }

    /// Starts following etcd from where the snapshot was loaded, applying every write
    /// of another replica through `follower`; stops when the backend is dropped.
    pub(crate) fn follow(&self, follower: Follower) {
        let task = self.runtime().spawn(watch::follow(
            self.members.clone(),
            self.keys.clone(),
            follower,
            self.loaded_at,
        ));
        if let Some(previous) = self.follower.lock().replace(task) {
            previous.abort();
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the backend")
    }
}

/// The etcd client's options for `access`, with the TLS files read; or what is wrong.
fn connect_options(endpoints: &[String], access: &EtcdAccess) -> Result<ConnectOptions, String> {
    access.check(endpoints)?;
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|err| format!("cannot read {what} {}: {err}", path.display()))
    };
    let mut options = ConnectOptions::new();
    if access.uses_tls() {
        let mut tls = TlsOptions::new();
        if let Some(ca_file) = &access.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca_file, "the etcd CA file")?));
        }
        if let (Some(cert_file), Some(key_file)) = (&access.cert_file, &access.key_file) {
            tls = tls.identity(Identity::from_pem(
                read(cert_file, "the etcd client certificate")?,
                read(key_file, "the etcd client key")?,
            ));
        }
        options = options.with_tls(tls);
    }
    if let (Some(username), Some(password)) = (&access.username, &access.password) {
        options = options.with_user(username.clone(), password.clone());
    }
    Ok(options)
}

/// Runs `future` on `runtime` and waits for it on this thread, at most `timeout`.
fn run<T: Send + 'static>(
    runtime: &Runtime,
    timeout: Duration,
    future: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (sender, receiver) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        if let Ok(output) = tokio::time::timeout(timeout, future).await {
            let _ = sender.send(output);
        }
    });
    receiver.recv().ok()
}

impl Backend for EtcdBackend {
    fn commit(&self, commit: &Commit) -> Result<(), BackendError> {
        let txn = txn::transaction(&self.keys, commit);
        let members = self.members.clone();
        let answer = run(self.runtime(), REQUEST_TIMEOUT, async move {
            members
                .call(|mut client| {
                    let txn = txn.clone();
                    async move { client.txn(txn).await }
                })
                .await
        });
        let response = match answer {
            Some(Ok(response)) => response,
            Some(Err(err)) => {
                tracing::warn!(endpoints = %self.endpoints, "a write to etcd failed: {err}");
                return Err(BackendError::Unavailable(format!(
                    "etcd at {} did not take the write: {err}",
                    self.endpoints
                )));
            }
            None => {
                tracing::warn!(endpoints = %self.endpoints, "a write to etcd timed out");
                return Err(BackendError::Unavailable(format!(
                    "etcd at {} did not answer within {REQUEST_TIMEOUT:?} (if it took the write after all, every replica will show it)",
                    self.endpoints
                )));
            }
        };
        match txn::outcome(&response) {
            Err(BackendError::Behind { revision }) if revision < commit.revision - 1 => {
                Err(BackendError::Unavailable(format!(
                    "etcd holds revision {revision} of the store, older than this replica's {}; restart meshd to reload it",
                    commit.revision - 1
                )))
            }
            outcome => outcome,
        }
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        if let Some(task) = self.follower.lock().take() {
            task.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            // Also from inside an async context, where a runtime must not block to stop.
            runtime.shutdown_background();
        }
    }
}
