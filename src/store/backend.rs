//! The seam for a durable backend: every committed write passes through it before
//! it becomes visible.

use std::sync::Arc;

use crate::model::{Resource, ResourceKey};

use super::records::RecordWrite;
use super::snapshot::IdempotencyRecord;

/// One atomic write, as a durable backend must record it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// The store revision this write creates.
    pub revision: u64,
    /// Resources created or replaced.
    pub puts: Vec<Arc<Resource>>,
    /// Resources removed.
    pub deletes: Vec<ResourceKey>,
    /// The idempotency record the write leaves, if its request carried a client token.
    pub token: Option<(String, IdempotencyRecord)>,
    /// The oldest client tokens forgotten to make room for `token`.
    pub forgotten_tokens: Vec<String>,
    /// Records put and deleted ([`crate::store::Store::transact`]).
    pub records: RecordWrite,
}

/// Where commits are made durable. A commit that returns `Ok` must survive a crash.
///
/// A backend shared by several meshd replicas (etcd) also follows the writes of the
/// others and feeds them to the store; see [`BackendError::Behind`].
pub trait Backend: Send + Sync {
    /// Records `commit`, which was checked against the store at revision
    /// `commit.revision - 1`, or explains why it could not. Nothing is recorded on `Err`.
    fn commit(&self, commit: &Commit) -> Result<(), BackendError>;

    /// Whether [`Backend::commit_group`] records several commits atomically, so that the
    /// store may group concurrent writes into one commit (see `store/group.rs`). A
    /// backend shared by replicas, whose commits are each checked against the shared
    /// revision, says no.
    fn groups_commits(&self) -> bool {
        false
    }

    /// Records `commits` (consecutive revisions, the first checked against the store at
    /// `revision - 1`), all of them or none. Called with several only when
    /// [`Backend::groups_commits`]; the default records them one by one.
    fn commit_group(&self, commits: &[&Commit]) -> Result<(), BackendError> {
        commits.iter().try_for_each(|commit| self.commit(commit))
    }
}

/// Why a backend did not record a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot take writes now (its disk failed, or etcd is unreachable). The
    /// write may be retried later.
    #[error("{0}")]
    Unavailable(String),
    /// Another replica committed first: the shared store is at `revision`, ahead of the
    /// revision the commit was checked against. The store waits until it has caught up
    /// with `revision`, checks the write again and retries it.
    #[error("another replica has written revision {revision} first")]
    Behind {
        /// The revision the shared store is at.
        revision: u64,
    },
}

/// Keeps nothing: the store lives and dies with the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryBackend;

impl Backend for MemoryBackend {
    fn commit(&self, _commit: &Commit) -> Result<(), BackendError> {
        Ok(())
    }

    fn groups_commits(&self) -> bool {
        true
    }

    fn commit_group(&self, _commits: &[&Commit]) -> Result<(), BackendError> {
        Ok(())
    }
}
