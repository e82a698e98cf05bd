//! The seam for a durable backend: every committed write passes through it before
//! it becomes visible.

use std::sync::Arc;

use crate::model::{Resource, ResourceKey};

use super::snapshot::IdempotencyRecord;

/// One atomic write, as a durable backend must record it.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The store revision this write creates.
    pub revision: u64,
    /// Resources created or replaced.
    pub puts: Vec<Arc<Resource>>,
    /// Resources removed.
    pub deletes: Vec<ResourceKey>,
    /// The idempotency record the write leaves, if its request carried a client token.
    pub token: Option<(String, IdempotencyRecord)>,
}

/// Where commits are made durable. A commit that returns `Ok` must survive a crash.
pub trait Backend: Send + Sync {
    /// Records `commit`, or explains why it could not.
    fn commit(&self, commit: &Commit) -> Result<(), BackendError>;
}

/// A failure of the durable backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Keeps nothing: the store lives and dies with the process.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryBackend;

impl Backend for MemoryBackend {
    fn commit(&self, _commit: &Commit) -> Result<(), BackendError> {
        Ok(())
    }
}
