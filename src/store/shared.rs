//! The store's published state, which its writer and (with a replicated backend) the
//! follower of other replicas' writes both advance: the current snapshot, the writer
//! lock, the change feed, and a condition variable for "the store reached revision N".

use std::sync::Arc;
use std::time::Instant;

use imbl::OrdMap;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use super::Snapshot;
use super::backend::Commit;

/// What [`Store`](super::Store) and a [`Follower`] share.
pub(super) struct Shared {
    current: RwLock<Arc<Snapshot>>,
    /// Held while a write is checked and committed, and while a remote write is applied.
    pub(super) writer: Mutex<()>,
    feed: watch::Sender<Arc<Snapshot>>,
    /// The revision last published, and its condition variable.
    published: Mutex<u64>,
    advanced: Condvar,
}

impl Shared {
    pub(super) fn new(initial: Snapshot) -> Arc<Self> {
        let revision = initial.revision;
        let initial = Arc::new(initial);
        let (feed, _) = watch::channel(initial.clone());
        Arc::new(Self {
            current: RwLock::new(initial),
            writer: Mutex::new(()),
            feed,
            published: Mutex::new(revision),
            advanced: Condvar::new(),
        })
    }

    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.feed.subscribe()
    }

    /// Makes `next` the current snapshot and tells the change feed. The caller holds
    /// the writer lock.
    pub(super) fn publish(&self, next: Arc<Snapshot>) {
        let revision = next.revision;
        *self.current.write() = next.clone();
        self.feed.send_replace(next);
        *self.published.lock() = revision;
        self.advanced.notify_all();
    }

    /// Waits (blocking the thread) until the store has reached `revision`; `false` if it
    /// has not by `deadline`.
    pub(super) fn wait_for(&self, revision: u64, deadline: Instant) -> bool {
        let mut published = self.published.lock();
        while *published < revision {
            if self
                .advanced
                .wait_until(&mut published, deadline)
                .timed_out()
            {
                return *published >= revision;
            }
        }
        true
    }
}

/// How a replicated backend brings the writes of other replicas into the store: each is
/// applied in revision order under the writer lock and published on the change feed.
#[derive(Clone)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) struct Follower {
    shared: Arc<Shared>,
}

/// A remote commit that does not follow the store's revision: the follower must reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store is at revision {local}; the next write seen is revision {remote}")]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub(crate) struct Gap {
    pub(crate) local: u64,
    pub(crate) remote: u64,
}

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
impl Follower {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Applies `commit`, written by any replica (this one's own writes are already
    /// applied: `Ok(false)`). A commit that is not the next revision is a [`Gap`].
    pub(crate) fn apply(&self, commit: Commit) -> Result<bool, Gap> {
        let _writing = self.shared.writer.lock();
        let current = self.shared.snapshot();
        if commit.revision <= current.revision {
            return Ok(false);
        }
        if commit.revision != current.revision + 1 {
            return Err(Gap {
                local: current.revision,
                remote: commit.revision,
            });
        }
        let mut next = (*current).clone();
        next.revision = commit.revision;
        for put in commit.puts {
            next.put(put);
        }
        for key in &commit.deletes {
            next.remove(key);
        }
        for token in &commit.forgotten_tokens {
            next.forget_token(token);
        }
        next.write_records(&commit.records);
        if let Some((token, record)) = commit.token {
            next.remember_token(token, record);
        }
        self.shared.publish(Arc::new(next));
        Ok(true)
    }

    /// Replaces the whole store with `loaded` (after the follower lost track, e.g. its
    /// watch fell behind a compaction). Resources and records that did not change keep
    /// their `Arc`,
    /// so that subscribers see only the real changes.
    pub(crate) fn replace(&self, mut loaded: Snapshot) {
        let _writing = self.shared.writer.lock();
        let current = self.shared.snapshot();
        if loaded.revision < current.revision {
            tracing::warn!(
                "the shared store went back from revision {} to {}",
                current.revision,
                loaded.revision
            );
        }
        keep_unchanged(&mut loaded.resources, &current.resources);
        keep_unchanged(&mut loaded.records, &current.records);
        self.shared.publish(Arc::new(loaded));
    }
}

/// Puts back into `loaded` the `Arc` that `current` holds for each entry whose value did
/// not change, so that diffs by pointer (`Snapshot::changes_since`) see only real changes.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn keep_unchanged<K: Ord + Clone, V: PartialEq + ?Sized>(
    loaded: &mut OrdMap<K, Arc<V>>,
    current: &OrdMap<K, Arc<V>>,
) {
    let unchanged: Vec<_> = loaded
        .iter()
        .filter_map(|(key, value)| {
            current
                .get_key_value(key)
                .filter(|(_, old)| ***old == **value)
                .map(|(key, old)| (key.clone(), old.clone()))
        })
        .collect();
    loaded.extend(unchanged);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::{Follower, Gap, Shared};
    use crate::model::spec::MeshSpec;
    use crate::model::{Metadata, Resource, ResourceKey, Spec, Status, Timestamp};
    use crate::store::backend::{Backend, BackendError, Commit};
    use crate::store::{Limits, Snapshot, Store, StoreError, Write};

    fn mesh(name: &str) -> Arc<Resource> {
        let now = Timestamp::now();
        Arc::new(Resource {
            key: ResourceKey::mesh(name),
            spec: Spec::Mesh(MeshSpec::default()),
            metadata: Metadata {
                uid: format!("uid-{name}"),
                version: 1,
                created_at: now,
                last_updated_at: now,
            },
            tags: Vec::new(),
            status: Status::Active,
        })
    }

    fn commit(revision: u64, puts: Vec<Arc<Resource>>) -> Commit {
        Commit {
            revision,
            puts,
            ..Commit::default()
        }
    }

    #[test]
    fn the_follower_applies_the_next_revision_skips_old_ones_and_reports_gaps() {
        let shared = Shared::new(Snapshot::default());
        let follower = Follower::new(shared.clone());
        let mut feed = shared.subscribe();
        assert_eq!(follower.apply(commit(1, vec![mesh("a")])), Ok(true));
        assert!(feed.has_changed().unwrap());
        feed.mark_unchanged();
        assert_eq!(follower.apply(commit(1, vec![mesh("b")])), Ok(false));
        assert!(!feed.has_changed().unwrap());
        assert_eq!(
            follower.apply(commit(3, vec![mesh("c")])),
            Err(Gap {
                local: 1,
                remote: 3
            })
        );
        let snapshot = shared.snapshot();
        assert_eq!(snapshot.revision(), 1);
        assert!(snapshot.get(&ResourceKey::mesh("a")).is_some());
        assert!(snapshot.get(&ResourceKey::mesh("b")).is_none());

        // A reload keeps the Arc of an unchanged resource, so the feed sees no change to it.
        let before = snapshot.get(&ResourceKey::mesh("a")).unwrap().clone();
        let reloaded = Snapshot::restore(2, [Arc::new((*before).clone()), mesh("d")], [], []);
        follower.replace(reloaded);
        let after = shared.snapshot();
        assert!(Arc::ptr_eq(
            &before,
            after.get(&ResourceKey::mesh("a")).unwrap()
        ));
        assert_eq!(
            after.changes_since(&snapshot),
            vec![crate::store::Change::Created(ResourceKey::mesh("d"))]
        );
    }

    /// A backend shared with a simulated other replica, which commits the mesh `taken`
    /// just before this replica's first commit.
    struct Raced {
        follower: Mutex<Option<Follower>>,
    }

    impl Backend for Raced {
        fn commit(&self, commit: &Commit) -> Result<(), BackendError> {
            if let Some(follower) = self.follower.lock().take() {
                let other = commit.revision;
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    follower.apply(self::commit(other, vec![mesh("taken")]))
                });
                return Err(BackendError::Behind {
                    revision: commit.revision,
                });
            }
            Ok(())
        }
    }

    #[test]
    fn a_write_behind_another_replica_is_checked_again_once_caught_up() {
        let shared = Shared::new(Snapshot::default());
        let backend = Raced {
            follower: Mutex::new(Some(Follower::new(shared.clone()))),
        };
        let store = Store {
            shared,
            backend: Box::new(backend),
            group: Default::default(),
            limits: Limits::default(),
        };
        let create = |name: &str| Write::Create {
            key: ResourceKey::mesh(name),
            spec: Spec::Mesh(MeshSpec::default()),
            tags: Vec::new(),
        };
        assert_eq!(
            store.apply(create("taken"), None),
            Err(StoreError::AlreadyExists(ResourceKey::mesh("taken")))
        );
        assert_eq!(store.snapshot().revision(), 1);
        assert_eq!(
            store.apply(create("free"), None).unwrap().metadata.version,
            1
        );
        assert_eq!(store.snapshot().revision(), 2);
    }
}
