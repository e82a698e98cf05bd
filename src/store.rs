//! The resource store: every App Mesh resource in memory, safe for many concurrent
//! readers and writers. Each write is checked against the resources it depends on,
//! passed to the durable backend, and published as a new revision; subscribers see
//! every revision through a watch channel (the change feed the compiler consumes).
//!
//! The backend is chosen once, by [`StoreConfig`]: memory only, the embedded durable
//! store ([`EmbeddedBackend`]), or etcd shared by several replicas (`EtcdBackend`, with
//! the `etcd` feature). Nothing above the store knows which one is in use.
//!
//! With etcd, another replica may commit between this one's check and its commit: the
//! backend then refuses the commit ([`BackendError::Behind`]), and the store waits until
//! it has followed the other replica's writes, checks the write again and retries it.

mod backend;
mod codec;
mod embedded;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod etcd_access;
mod group;
mod integrity;
mod open_error;
mod records;
mod shared;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::model::spec::TagRef;
use crate::model::{Metadata, Resource, ResourceKey, ResourceKind, Spec, Status, Timestamp};

pub use backend::{Backend, BackendError, Commit, MemoryBackend};
pub use embedded::{DATA_FILE, EmbeddedBackend, FORMAT_VERSION};
pub use error::StoreError;
#[cfg(feature = "etcd")]
pub use etcd::{ETCD_FORMAT_VERSION, EtcdBackend, REQUEST_TIMEOUT as ETCD_REQUEST_TIMEOUT};
pub use etcd_access::EtcdAccess;
use group::{Decision, GroupCommit};
pub use integrity::Inconsistency;
pub use open_error::OpenError;
pub use records::{
    RecordKey, RecordSpace, RecordValue, RecordWrite, TransactError, UnknownRecordSpace,
};
#[cfg(feature = "etcd")]
use shared::Follower;
use shared::Shared;
pub use snapshot::{Change, IdempotencyRecord, MAX_REMEMBERED_TOKENS, Snapshot};

/// How long a write may wait, in all, for this replica to catch up with writes other
/// replicas committed first (only with a shared backend).
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a write is checked and committed before it gives up because other
/// replicas keep committing first.
pub const MAX_WRITE_ATTEMPTS: u32 = 32;
/// The default key prefix of meshd's data in etcd.
pub const DEFAULT_ETCD_PREFIX: &str = "/meshd/";

/// The most user tags one resource may carry.
pub const MAX_TAGS: usize = 50;

/// How many resources of each kind may exist; all configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Meshes in the account.
    pub meshes: usize,
    /// Virtual nodes, routers, services or gateways (each kind counted alone) in one mesh.
    pub resources_per_mesh: usize,
    /// Routes in one virtual router, gateway routes in one virtual gateway.
    pub routes_per_parent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            meshes: 1_000,
            resources_per_mesh: 50_000,
            routes_per_parent: 1_000,
        }
    }
}

/// Where the store keeps its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In memory only: everything is gone when the process ends.
    Memory,
    /// In the embedded durable store in a data directory; loaded back on start.
    Embedded {
        /// The data directory (created if missing).
        data_dir: PathBuf,
    },
    /// In etcd (v3), shared by every meshd replica configured with the same endpoints
    /// and prefix; loaded on start and followed while running. Needs the `etcd` feature.
    Etcd {
        /// The etcd members' client URLs (`http://127.0.0.1:2379`).
        endpoints: Vec<String>,
        /// The prefix of every key meshd writes ([`DEFAULT_ETCD_PREFIX`]).
        prefix: String,
        /// TLS and authentication, for a secured etcd.
        access: EtcdAccess,
    },
}

/// A client token and the digest of the request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The request's `clientToken`.
    pub token: String,
    /// A digest of the operation, its target and its body.
    pub fingerprint: String,
}

/// A write to the store.
#[derive(Debug, Clone)]
pub enum Write {
    /// Create a resource that does not exist yet.
    Create {
        /// The new resource.
        key: ResourceKey,
        /// Its spec, validated and with defaults filled in.
        spec: Spec,
        /// Its user tags.
        tags: Vec<TagRef>,
    },
    /// Replace the spec of an existing resource.
    Update {
        /// The resource.
        key: ResourceKey,
        /// Its new spec.
        spec: Spec,
    },
    /// Remove a resource.
    Delete {
        /// The resource.
        key: ResourceKey,
    },
    /// Add or overwrite user tags.
    Tag {
        /// The resource.
        key: ResourceKey,
        /// The tags to set.
        tags: Vec<TagRef>,
    },
    /// Remove user tags by key.
    Untag {
        /// The resource.
        key: ResourceKey,
        /// The tag keys to remove.
        keys: Vec<String>,
    },
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    shared: Arc<Shared>,
    backend: Box<dyn Backend>,
    /// Groups concurrent writes into one commit, with a backend that allows it.
    group: GroupCommit,
    limits: Limits,
}

impl Store {
    /// An empty store that keeps nothing beyond the process's life.
    pub fn in_memory(limits: Limits) -> Self {
        Self::with_backend(Box::new(MemoryBackend), Snapshot::default(), limits)
    }

    /// Opens the store `config` describes: an empty one in memory, or the durable one
    /// with everything it holds loaded back.
    pub fn open(config: &StoreConfig, limits: Limits) -> Result<Self, OpenError> {
        match config {
            StoreConfig::Memory => Ok(Self::in_memory(limits)),
            StoreConfig::Embedded { data_dir } => {
                let (backend, snapshot) = EmbeddedBackend::open(data_dir)?;
                Ok(Self::with_backend(Box::new(backend), snapshot, limits))
            }
            #[cfg(feature = "etcd")]
            StoreConfig::Etcd {
                endpoints,
                prefix,
                access,
            } => {
                let (backend, snapshot) = EtcdBackend::open(endpoints, prefix, access)?;
                let shared = Shared::new(snapshot);
                backend.follow(Follower::new(shared.clone()));
                Ok(Self {
                    shared,
                    backend: Box::new(backend),
                    group: GroupCommit::default(),
                    limits,
                })
            }
            #[cfg(not(feature = "etcd"))]
            StoreConfig::Etcd { .. } => Err(OpenError::EtcdNotBuilt),
        }
    }

    /// A store that starts from `initial` and records every write in `backend`.
    pub fn with_backend(backend: Box<dyn Backend>, initial: Snapshot, limits: Limits) -> Self {
        Self {
            shared: Shared::new(initial),
            backend,
            group: GroupCommit::default(),
            limits,
        }
    }

    /// The latest revision's snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    /// The change feed: a receiver that is told of every new revision and always holds
    /// the latest snapshot (compare snapshots with [`Snapshot::changes_since`]). With a
    /// shared backend, it also carries the writes made through other replicas.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.shared.subscribe()
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Applies one write atomically and returns the resource as the API reports it (a
    /// deleted resource with status `DELETED`). With `idempotency`, a request that repeats
    /// an earlier one's token and content gets the earlier answer and changes nothing.
    ///
    /// Blocks the calling thread until the write is durable (API handlers call it on
    /// blocking threads); concurrent writes share one commit when the backend allows it.
    /// When another replica committed first, the write is checked again once this
    /// replica has caught up, up to [`MAX_WRITE_ATTEMPTS`] times.
    pub fn apply(
        &self,
        write: Write,
        idempotency: Option<Idempotency>,
    ) -> Result<Arc<Resource>, StoreError> {
        self.write(
            |current| self.decide_apply(current, write.clone(), idempotency.clone()),
            |err| err,
        )
    }

    /// Runs `decide` on the latest state, one write at a time (with group commit, that
    /// state includes the writes decided before it and not yet durable), and commits the
    /// records it returns as one write (one revision, durable like any other, seen by
    /// every replica), then returns its answer. An empty [`RecordWrite`] commits
    /// nothing. `decide`'s own refusal commits nothing and comes back as
    /// [`TransactError::Refused`].
    ///
    /// Blocks like [`Store::apply`]; when another replica committed first, `decide` runs
    /// again on the snapshot that includes that replica's write.
    pub fn transact<T, E>(
        &self,
        decide: impl Fn(&Snapshot) -> Result<(RecordWrite, T), E>,
    ) -> Result<T, TransactError<E>> {
        self.write(
            |current| decide_transact(current, &decide),
            TransactError::Store,
        )
    }

    /// Decides a write on the latest state with `decide` and commits what it decided:
    /// grouped with concurrent writes when the backend allows it, else alone, checked
    /// again after another replica's commit. `store_error` turns the store's own
    /// failures into the caller's error.
    fn write<T, E>(
        &self,
        decide: impl Fn(&Snapshot) -> Decision<T, E>,
        store_error: impl Fn(StoreError) -> E,
    ) -> Result<T, E> {
        if self.backend.groups_commits() {
            return self
                .group
                .write(&self.shared, &*self.backend, &decide, store_error);
        }
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.commit_alone(&decide) {
                Err(Attempt::Behind { revision }) => {
                    if attempts >= MAX_WRITE_ATTEMPTS {
                        return Err(store_error(StoreError::Contended { attempts }));
                    }
                    if !self.shared.wait_for(revision, deadline) {
                        return Err(store_error(StoreError::Unavailable(format!(
                            "this replica has not caught up with revision {revision} of the shared store within {CATCH_UP_TIMEOUT:?}"
                        ))));
                    }
                }
                Err(Attempt::Refused(err)) => return Err(err),
                Err(Attempt::Failed(err)) => return Err(store_error(err)),
                Ok(result) => return Ok(result),
            }
        }
    }

    /// Decides a write on the current snapshot under the writer lock and commits it
    /// once, alone.
    fn commit_alone<T, E>(
        &self,
        decide: &impl Fn(&Snapshot) -> Decision<T, E>,
    ) -> Result<T, Attempt<E>> {
        let _writing = self.shared.writer.lock();
        let started = Instant::now();
        let current = self.snapshot();
        match decide(&current) {
            Decision::Refused(err) => Err(Attempt::Refused(err)),
            Decision::Unchanged(answer) => Ok(answer),
            Decision::Changed {
                next,
                commit,
                answer,
            } => {
                match self.backend.commit(&commit) {
                    Ok(()) => {}
                    Err(BackendError::Behind { revision }) => {
                        return Err(Attempt::Behind { revision });
                    }
                    Err(BackendError::Unavailable(detail)) => {
                        return Err(Attempt::Failed(StoreError::Unavailable(detail)));
                    }
                }
                self.shared.publish(next);
                crate::metrics::store_write(started.elapsed());
                Ok(answer)
            }
        }
    }

    /// Checks `write` against `current`: refused, an idempotent repeat's earlier
    /// answer, or the snapshot and commit it makes.
    fn decide_apply(
        &self,
        current: &Snapshot,
        write: Write,
        idempotency: Option<Idempotency>,
    ) -> Decision<Arc<Resource>, StoreError> {
        if let Some(idempotency) = &idempotency
            && let Some(record) = current.token(&idempotency.token)
        {
            return if record.fingerprint == idempotency.fingerprint {
                Decision::Unchanged(record.result.clone())
            } else {
                Decision::Refused(StoreError::TokenReused {
                    token: idempotency.token.clone(),
                })
            };
        }
        let (result, puts, deletes) = match self.prepare(current, write) {
            Ok(prepared) => prepared,
            Err(err) => return Decision::Refused(err),
        };
        let mut next = current.clone();
        next.revision += 1;
        for put in &puts {
            next.put(put.clone());
        }
        for key in &deletes {
            next.remove(key);
        }
        let mut forgotten_tokens = Vec::new();
        let token = idempotency.map(|idempotency| {
            let record = IdempotencyRecord {
                fingerprint: idempotency.fingerprint,
                result: result.clone(),
            };
            forgotten_tokens = next.remember_token(idempotency.token.clone(), record.clone());
            (idempotency.token, record)
        });
        let commit = Commit {
            revision: next.revision,
            puts,
            deletes,
            token,
            forgotten_tokens,
            records: RecordWrite::none(),
        };
        Decision::Changed {
            next: Arc::new(next),
            commit,
            answer: result,
        }
    }

    /// Checks `write` against `current` and works out what it changes: the result to
    /// report, the resources to put and the keys to delete.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        current: &Snapshot,
        write: Write,
    ) -> Result<(Arc<Resource>, Vec<Arc<Resource>>, Vec<ResourceKey>), StoreError> {
        let now = Timestamp::now();
        match write {
            Write::Create { key, spec, tags } => {
                integrity::check_parents(current, &key)?;
                if current.get(&key).is_some() {
                    return Err(StoreError::AlreadyExists(key));
                }
                self.check_limit(current, &key)?;
                check_tag_count(tags.len())?;
                integrity::check_references(current, &key, &spec)?;
                let resource = Arc::new(Resource {
                    key,
                    spec,
                    metadata: Metadata {
                        uid: uuid::Uuid::new_v4().to_string(),
                        version: 1,
                        created_at: now,
                        last_updated_at: now,
                    },
                    tags: merge_tags(Vec::new(), tags),
                    status: Status::Active,
                });
                Ok((resource.clone(), vec![resource], Vec::new()))
            }
            Write::Update { key, spec } => {
                integrity::check_parents(current, &key)?;
                let existing = existing(current, &key)?;
                integrity::check_references(current, &key, &spec)?;
                let resource = Arc::new(Resource {
                    spec,
                    metadata: Metadata {
                        version: existing.metadata.version + 1,
                        last_updated_at: now,
                        ..existing.metadata.clone()
                    },
                    ..(**existing).clone()
                });
                Ok((resource.clone(), vec![resource], Vec::new()))
            }
            Write::Delete { key } => {
                integrity::check_parents(current, &key)?;
                let existing = existing(current, &key)?;
                integrity::check_unused(current, &key)?;
                let deleted = Arc::new(Resource {
                    status: Status::Deleted,
                    ..(**existing).clone()
                });
                Ok((deleted, Vec::new(), vec![key]))
            }
            Write::Tag { key, tags } => {
                let existing = existing(current, &key)?;
                let merged = merge_tags(existing.tags.clone(), tags);
                check_tag_count(merged.len())?;
                let resource = Arc::new(Resource {
                    tags: merged,
                    ..(**existing).clone()
                });
                Ok((resource.clone(), vec![resource], Vec::new()))
            }
            Write::Untag { key, keys } => {
                let existing = existing(current, &key)?;
                let mut tags = existing.tags.clone();
                tags.retain(|tag| !keys.contains(&tag.key));
                let resource = Arc::new(Resource {
                    tags,
                    ..(**existing).clone()
                });
                Ok((resource.clone(), vec![resource], Vec::new()))
            }
        }
    }

    fn check_limit(&self, current: &Snapshot, key: &ResourceKey) -> Result<(), StoreError> {
        let (count, limit, what) = match key.kind {
            ResourceKind::Mesh => (
                current.meshes().count(),
                self.limits.meshes,
                "meshes".to_string(),
            ),
            ResourceKind::Route | ResourceKind::GatewayRoute => (
                current.count(&key.mesh, key.kind, &key.parent),
                self.limits.routes_per_parent,
                format!(
                    "{}s in {} {}",
                    key.kind.words(),
                    key.kind.parent_kind().expect("routes have parents").words(),
                    key.parent
                ),
            ),
            kind => (
                current.count(&key.mesh, kind, ""),
                self.limits.resources_per_mesh,
                format!("{}s in mesh {}", kind.words(), key.mesh),
            ),
        };
        if count >= limit {
            Err(StoreError::LimitExceeded { what, limit })
        } else {
            Ok(())
        }
    }
}

/// How one attempt at a write ended, if not with success.
enum Attempt<E> {
    /// The write is refused: the answer to give.
    Refused(E),
    /// The backend did not take the write.
    Failed(StoreError),
    /// Another replica committed first; the shared store is at `revision`.
    Behind { revision: u64 },
}

/// Runs a transaction's `decide` on `current`: its refusal, its answer alone when it
/// writes no records, or the snapshot and commit its records make.
fn decide_transact<T, E>(
    current: &Snapshot,
    decide: &impl Fn(&Snapshot) -> Result<(RecordWrite, T), E>,
) -> Decision<T, TransactError<E>> {
    let (records, answer) = match decide(current) {
        Ok(decided) => decided,
        Err(err) => return Decision::Refused(TransactError::Refused(err)),
    };
    if records.is_empty() {
        return Decision::Unchanged(answer);
    }
    let mut next = current.clone();
    next.revision += 1;
    next.write_records(&records);
    let commit = Commit {
        revision: next.revision,
        records,
        ..Commit::default()
    };
    Decision::Changed {
        next: Arc::new(next),
        commit,
        answer,
    }
}

fn existing<'a>(current: &'a Snapshot, key: &ResourceKey) -> Result<&'a Arc<Resource>, StoreError> {
    current
        .get(key)
        .ok_or_else(|| StoreError::NotFound(key.clone()))
}

fn check_tag_count(count: usize) -> Result<(), StoreError> {
    if count > MAX_TAGS {
        Err(StoreError::TooManyTags {
            limit: MAX_TAGS,
            count,
        })
    } else {
        Ok(())
    }
}

/// Sets `new` on top of `tags`: a key already present keeps its place and takes the new value.
fn merge_tags(mut tags: Vec<TagRef>, new: Vec<TagRef>) -> Vec<TagRef> {
    for tag in new {
        match tags.iter_mut().find(|existing| existing.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => tags.push(tag),
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> RecordKey {
        RecordKey::new(RecordSpace::Authority, id)
    }

    #[test]
    fn a_transaction_commits_what_it_decides_and_nothing_when_it_refuses() {
        let store = Store::in_memory(Limits::default());
        let mut feed = store.subscribe();
        let create_once = |snapshot: &Snapshot| {
            if snapshot.record(&key("root")).is_some() {
                return Err("exists");
            }
            let mut write = RecordWrite::none();
            write.put(key("root"), b"pem".as_slice());
            Ok((write, "created"))
        };
        assert_eq!(store.transact(create_once).unwrap(), "created");
        assert!(feed.has_changed().unwrap());
        feed.borrow_and_update();
        let after_first = store.snapshot();
        assert_eq!(after_first.revision(), 1);
        assert_eq!(
            after_first.record_changes_since(&Snapshot::default(), RecordSpace::Authority),
            [key("root")]
        );
        assert!(
            after_first
                .record_changes_since(&Snapshot::default(), RecordSpace::CloudMap)
                .is_empty()
        );

        assert!(matches!(
            store.transact(create_once),
            Err(TransactError::Refused("exists"))
        ));
        let read_only = store
            .transact(|snapshot| Ok::<_, ()>((RecordWrite::none(), snapshot.record_count())))
            .unwrap();
        assert_eq!(read_only, 1);
        assert_eq!(store.snapshot().revision(), 1, "nothing was committed");
        assert!(!feed.has_changed().unwrap());
    }
}
