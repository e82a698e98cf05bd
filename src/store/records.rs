//! Records: durable state that is not an App Mesh resource but must live in the same
//! store, atomically, durably and shared by every replica: the Cloud Map registry meshd
//! serves, the certificate authority it issues from.
//!
//! A record is opaque bytes under a key in a [`RecordSpace`]; the module that owns the
//! space encodes and decodes them (JSON), and decides how its ids sort so that it can
//! read what belongs together with one prefix scan. Records are written only through
//! [`crate::store::Store::transact`], which checks and writes under the same writer lock
//! as every resource write, so a decision made on a snapshot holds when it commits.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which part of meshd a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RecordSpace {
    /// meshd's own Cloud Map registry: namespaces, services, instances, operations.
    CloudMap,
    /// Certificate authorities meshd issues from or trusts.
    Authority,
}

impl RecordSpace {
    /// Every space.
    pub const ALL: [RecordSpace; 2] = [RecordSpace::CloudMap, RecordSpace::Authority];

    /// The space's name in stored keys.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordSpace::CloudMap => "cloudMap",
            RecordSpace::Authority => "authority",
        }
    }

    /// The space a stored name stands for.
    pub fn parse(name: &str) -> Option<RecordSpace> {
        RecordSpace::ALL
            .into_iter()
            .find(|space| space.as_str() == name)
    }
}

/// Where a record lives: its space and its id within the space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// The owner.
    pub space: RecordSpace,
    /// The id the owner chose; records of a space sort by it.
    pub id: String,
}

impl RecordKey {
    /// The key of record `id` in `space`.
    pub fn new(space: RecordSpace, id: impl Into<String>) -> Self {
        Self {
            space,
            id: id.into(),
        }
    }

    /// The key as durable backends store it: `<space>/<id>`.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.space.as_str(), self.id)
    }

    /// Reads back a key written by [`RecordKey::encode`].
    pub fn decode(stored: &str) -> Result<RecordKey, UnknownRecordSpace> {
        let (space, id) = stored.split_once('/').unwrap_or((stored, ""));
        RecordSpace::parse(space)
            .map(|space| RecordKey::new(space, id))
            .ok_or_else(|| UnknownRecordSpace(stored.to_string()))
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// A stored record key whose space this meshd does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the record key {0:?} names no record space this meshd knows")]
pub struct UnknownRecordSpace(pub String);

/// A record's content.
pub type RecordValue = Arc<[u8]>;

/// What one transaction does to records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordWrite {
    /// Records created or replaced.
    pub puts: Vec<(RecordKey, RecordValue)>,
    /// Records removed.
    pub deletes: Vec<RecordKey>,
}

impl RecordWrite {
    /// Nothing at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// Adds a put of `value` under `key`.
    pub fn put(&mut self, key: RecordKey, value: impl Into<RecordValue>) -> &mut Self {
        self.puts.push((key, value.into()));
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: RecordKey) -> &mut Self {
        self.deletes.push(key);
        self
    }
}

/// Why [`crate::store::Store::transact`] committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TransactError<E> {
    /// The transaction's own decision: nothing to write, and this is why.
    #[error(transparent)]
    Refused(E),
    /// The store could not commit the write (the disk, or etcd, is unavailable; other
    /// replicas kept writing first).
    #[error(transparent)]
    Store(crate::store::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_stored_form() {
        for space in RecordSpace::ALL {
            let key = RecordKey::new(space, "instance/srv-1/i/2");
            assert_eq!(RecordKey::decode(&key.encode()), Ok(key));
        }
        assert_eq!(
            RecordKey::decode("dns/x"),
            Err(UnknownRecordSpace("dns/x".into()))
        );
    }
}
