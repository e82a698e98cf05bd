//! The resource store: every App Mesh resource in memory, safe for many concurrent
//! readers and writers. Each write is checked against the resources it depends on,
//! passed to the durable backend, and published as a new revision; subscribers see
//! every revision through a watch channel (the change feed the compiler consumes).
//!
//! The backend is chosen once, by [`StoreConfig`]: memory only, or the embedded durable
//! store ([`EmbeddedBackend`]). Nothing above the store knows which one is in use.

mod backend;
mod embedded;
mod error;
mod integrity;
mod open_error;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::model::spec::TagRef;
use crate::model::{Metadata, Resource, ResourceKey, ResourceKind, Spec, Status, Timestamp};

pub use backend::{Backend, BackendError, Commit, MemoryBackend};
pub use embedded::{DATA_FILE, EmbeddedBackend, FORMAT_VERSION};
pub use error::StoreError;
pub use integrity::Inconsistency;
pub use open_error::OpenError;
pub use snapshot::{Change, IdempotencyRecord, MAX_REMEMBERED_TOKENS, Snapshot};

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
    current: RwLock<Arc<Snapshot>>,
    writer: Mutex<()>,
    backend: Box<dyn Backend>,
    limits: Limits,
    feed: watch::Sender<Arc<Snapshot>>,
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
        }
    }

    /// A store that starts from `initial` and records every write in `backend`.
    pub fn with_backend(backend: Box<dyn Backend>, initial: Snapshot, limits: Limits) -> Self {
        let initial = Arc::new(initial);
        let (feed, _) = watch::channel(initial.clone());
        Self {
            current: RwLock::new(initial),
            writer: Mutex::new(()),
            backend,
            limits,
            feed,
        }
    }

    /// The latest revision's snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    /// The change feed: a receiver that is told of every new revision and always holds
    /// the latest snapshot (compare snapshots with [`Snapshot::changes_since`]).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.feed.subscribe()
    }

    /// The configured limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Applies one write atomically and returns the resource as the API reports it (a
    /// deleted resource with status `DELETED`). With `idempotency`, a request that repeats
    /// an earlier one's token and content gets the earlier answer and changes nothing.
    pub fn apply(
        &self,
        write: Write,
        idempotency: Option<Idempotency>,
    ) -> Result<Arc<Resource>, StoreError> {
        let _writing = self.writer.lock();
        let current = self.snapshot();
        if let Some(idempotency) = &idempotency
            && let Some(record) = current.token(&idempotency.token)
        {
            return if record.fingerprint == idempotency.fingerprint {
                Ok(record.result.clone())
            } else {
                Err(StoreError::TokenReused {
                    token: idempotency.token.clone(),
                })
            };
        }
        let mut next = (*current).clone();
        next.revision += 1;
        let (result, puts, deletes) = self.prepare(&current, write)?;
        for put in &puts {
            next.put(put.clone());
        }
        for key in &deletes {
            next.remove(key);
        }
        let token = idempotency.map(|idempotency| {
            let record = IdempotencyRecord {
                fingerprint: idempotency.fingerprint,
                result: result.clone(),
            };
            next.remember_token(idempotency.token.clone(), record.clone());
            (idempotency.token, record)
        });
        let commit = Commit {
            revision: next.revision,
            puts,
            deletes,
            token,
        };
        self.backend
            .commit(&commit)
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let next = Arc::new(next);
        *self.current.write() = next.clone();
        self.feed.send_replace(next);
        Ok(result)
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
