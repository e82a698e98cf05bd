//! The embedded durable backend: meshd's state in one file in a local data directory.
//!
//! # Why redb, not a write-ahead log of our own
//!
//! The store needs exactly what an embedded transactional key-value store provides: each
//! [`Commit`] (resources put and deleted, the client token's record, the new revision) is
//! one atomic transaction, durable when `commit` returns; after a crash a file holds every
//! commit that returned or none of the one in flight; it is read back whole at start. A
//! hand-written log would also need snapshots and compaction (or it grows without end
//! and replays ever more slowly), torn-tail handling, and checksums, all of which are
//! where such logs go wrong. [redb](https://docs.rs/redb) is pure Rust (no C toolchain,
//! no service: `cargo run -- serve` works on a fresh machine), stable in file format,
//! maintained, and does these things with copy-on-write B-trees, checksummed pages and
//! page reuse, so the file stays as large as the data.
//!
//! It is used so that an acknowledged write is never lost and a damaged file is never
//! half-loaded:
//! - every commit is a write transaction with [`Durability::Immediate`] (fsync before
//!   `commit` returns) and **two-phase commit**: the new tree is fsynced before the header
//!   switches to it. After a crash the header therefore never points at a commit whose
//!   pages are missing, so the file never needs rolling back, and a header that points at
//!   pages failing their checksums is reported as corruption (with one-phase commit, redb
//!   would take it for a torn commit and fall back to the previous one, silently losing
//!   an acknowledged write).
//! - the file is opened with an integrity check (every page's checksum is verified), and
//!   then everything is decoded and checked (format version, each resource, referential
//!   integrity, see [`Snapshot::check_consistent`]) before meshd serves anything.
//! - redb locks the file, so a second meshd on the same directory is refused.
//!
//! The cost is two fsyncs per commit. Concurrent writes share a commit (the store's
//! group commit, `store/group.rs`), so under load it is two fsyncs per group of writes;
//! `examples/write_latency.rs` measures it.

mod layout;
mod load;

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use redb::{
    Database, DatabaseError, Durability, ReadableTable, ReadableTableMetadata, StorageError,
};

use super::backend::{Backend, BackendError, Commit};
use super::{MAX_REMEMBERED_TOKENS, OpenError, Snapshot};

pub use layout::{DATA_FILE, FORMAT_VERSION};
use layout::{META, RECORDS, RESOURCES, REVISION_KEY, TOKENS, token_value};

use super::codec::{encode_key, encode_resource};

/// The page cache redb may use. The store serves from memory, so the file is read
/// once at start and then only written.
const CACHE_BYTES: usize = 16 << 20;

/// A store kept in `<data dir>/meshd.redb`.
pub struct EmbeddedBackend {
    /// The open file; `None` after a write failed on I/O (redb then refuses every
    /// later write with "Previous I/O error"), until the next commit opens it again.
    db: Mutex<Option<Database>>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBackend {
    /// Opens the store in `data_dir` (creating the directory and an empty store if there
    /// is none) and reads it back: the backend to commit to, and the snapshot to start
    /// from. A file written by a newer meshd, damaged, or in use is refused.
    pub fn open(data_dir: &Path) -> Result<(EmbeddedBackend, Snapshot), OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::Io {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATA_FILE);
        // redb would take an empty file for a new database; meshd never leaves one (the
        // file is initialised before anything is served), so it is a damaged file.
        if std::fs::metadata(&path).is_ok_and(|metadata| metadata.len() == 0) {
            return Err(load::corrupt(&path, "it is empty".into()));
        }
        let db = redb::Builder::new()
            .set_check_integrity_on_open(true)
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|err| open_error(data_dir, &path, err))?;
        load::initialise(&db, &path)?;
        let snapshot = load::load(&db, &path)?;
        Ok((
            EmbeddedBackend {
                db: Mutex::new(Some(db)),
                path,
            },
            snapshot,
        ))
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `commits` (consecutive revisions) in one transaction: one atomic,
    /// durable commit however many writes it holds.
    fn write(db: &Database, commits: &[&Commit]) -> Result<(), redb::Error> {
        let (Some(first), Some(last)) = (commits.first(), commits.last()) else {
            return Ok(());
        };
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_two_phase_commit(true);
        {
            let mut meta = txn.open_table(META)?;
            let stored = meta.get(REVISION_KEY)?.map(|entry| entry.value());
            if stored != Some(first.revision - 1) {
                // Only after a failed commit whose outcome is unknown: memory and file
                // may disagree, and only reading the file back settles it.
                return Err(redb::Error::Corrupted(format!(
                    "the file is at revision {stored:?}, not {}; restart meshd to reload it",
                    first.revision - 1
                )));
            }
            meta.insert(REVISION_KEY, last.revision)?;
        }
        let mut resources = txn.open_table(RESOURCES)?;
        let mut records = txn.open_table(RECORDS)?;
        let mut tokens = txn.open_table(TOKENS)?;
        for commit in commits {
            for resource in &commit.puts {
                resources.insert(
                    encode_key(&resource.key).as_str(),
                    encode_resource(resource).as_slice(),
                )?;
            }
            for key in &commit.deletes {
                resources.remove(encode_key(key).as_str())?;
            }
            for (key, value) in &commit.records.puts {
                records.insert(key.encode().as_str(), &**value)?;
            }
            for key in &commit.records.deletes {
                records.remove(key.encode().as_str())?;
            }
            if let Some((token, record)) = &commit.token {
                tokens.insert(commit.revision, token_value(token, record).as_slice())?;
                while tokens.len()? > MAX_REMEMBERED_TOKENS as u64 {
                    tokens.pop_first()?;
                }
            }
        }
        drop((resources, records, tokens));
        txn.commit()?;
        Ok(())
    }
}

/// Whether `err` leaves the open database unusable (redb answers every later write
/// with "Previous I/O error"), so that it must be opened again.
fn poisons(err: &redb::Error) -> bool {
    matches!(
        err,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::TransactionPoisoned
    )
}

impl Backend for EmbeddedBackend {
    /// Commits `commit` alone (see [`Backend::commit_group`]).
    fn commit(&self, commit: &Commit) -> Result<(), BackendError> {
        self.commit_group(&[commit])
    }

    fn groups_commits(&self) -> bool {
        true
    }

    /// Commits `commits` as one transaction. After a write that failed on I/O (a full
    /// disk), the file is closed and opened again on the next commit, so that writes
    /// work again once the cause is gone, without a restart; the failed write was not
    /// committed (redb's two-phase commit), so the file is still at the revision before it.
    fn commit_group(&self, commits: &[&Commit]) -> Result<(), BackendError> {
        let unavailable = |err: &dyn std::fmt::Display| {
            tracing::error!(path = %self.path.display(), "a write to the data file failed: {err}");
            BackendError::Unavailable(format!("cannot write {}: {err}", self.path.display()))
        };
        let mut db = self.db.lock();
        if db.is_none() {
            let reopened = redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(&self.path)
                .map_err(|err| unavailable(&err))?;
            tracing::info!(path = %self.path.display(), "opened the data file again after a failed write");
            *db = Some(reopened);
        }
        let open = db.as_ref().expect("opened above");
        Self::write(open, commits).map_err(|err| {
            if poisons(&err) {
                *db = None;
            }
            unavailable(&err)
        })
    }
}

fn open_error(dir: &Path, path: &Path, err: DatabaseError) -> OpenError {
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            OpenError::InUse {
                path: path.to_path_buf(),
            }
        }
        // redb reports a file that is not a redb database as invalid data.
        DatabaseError::Storage(StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            load::corrupt(path, source.to_string())
        }
        DatabaseError::Storage(StorageError::Io(source)) => OpenError::Io {
            dir: dir.to_path_buf(),
            source,
        },
        other => load::corrupt(path, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::spec::{MeshSpec, TagRef};
    use crate::model::{ResourceKey, Spec};
    use crate::store::{
        Idempotency, Limits, RecordKey, RecordSpace, RecordWrite, Store, StoreConfig, Write,
    };

    fn open(dir: &std::path::Path) -> Store {
        let config = StoreConfig::Embedded {
            data_dir: dir.to_path_buf(),
        };
        Store::open(&config, Limits::default()).unwrap()
    }

    fn create(store: &Store, mesh: &str, token: Option<&str>) {
        let write = Write::Create {
            key: ResourceKey::mesh(mesh),
            spec: Spec::Mesh(MeshSpec::default()),
            tags: vec![TagRef {
                key: "k".into(),
                value: mesh.into(),
            }],
        };
        let idempotency = token.map(|token| Idempotency {
            token: token.into(),
            fingerprint: format!("create {mesh}"),
        });
        store.apply(write, idempotency).unwrap();
    }

    #[test]
    fn a_reopened_store_has_the_same_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for (index, mesh) in ["c", "a", "d", "b"].into_iter().enumerate() {
            // Tokens in an order that is neither alphabetical nor the meshes'.
            create(&store, mesh, Some(&format!("token-{}", 9 - index)));
        }
        create(&store, "e", None);
        let put = |id: &str, value: &str| {
            let mut write = RecordWrite::none();
            write.put(RecordKey::new(RecordSpace::CloudMap, id), value.as_bytes());
            store
                .transact(|_| Ok::<_, ()>((write.clone(), ())))
                .unwrap();
        };
        put("instance/srv-1/a", "1");
        put("instance/srv-1/b", "2");
        put("instance/srv-2/a", "3");
        let mut removal = RecordWrite::none();
        removal.delete(RecordKey::new(RecordSpace::CloudMap, "instance/srv-1/a"));
        store
            .transact(|_| Ok::<_, ()>((removal.clone(), ())))
            .unwrap();
        store
            .apply(
                Write::Delete {
                    key: ResourceKey::mesh("d"),
                },
                None,
            )
            .unwrap();
        let before = store.snapshot();
        drop(store);

        let after = open(dir.path()).snapshot();
        assert_eq!(after.revision, before.revision);
        assert_eq!(after.resources, before.resources);
        assert_eq!(after.tokens, before.tokens);
        assert_eq!(after.token_order, before.token_order);
        assert_eq!(after.records, before.records);
        let instances: Vec<_> = after
            .records(RecordSpace::CloudMap, "instance/srv-1/")
            .map(|(id, value)| (id.to_string(), value.to_vec()))
            .collect();
        assert_eq!(instances, [("instance/srv-1/b".to_string(), b"2".to_vec())]);
        assert_eq!(
            after.token_order.iter().collect::<Vec<_>>(),
            ["token-9", "token-8", "token-7", "token-6"]
        );
    }
}
