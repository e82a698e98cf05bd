//! How meshd lays its data out in etcd, under one key prefix (`/meshd/` by default):
//!
//! - `<prefix>format_version` → `1` ([`FORMAT_VERSION`]), written once.
//! - `<prefix>revision` → the store revision of the last write, in decimal. Every write
//!   puts it, in a transaction that compares it with the revision the write was checked
//!   against, so writes through all replicas are serialised on it.
//! - `<prefix>resources/<key>` → each resource as JSON, under its key as JSON
//!   (`{"mesh":…,"kind":…,"parent":…,"name":…}`), as in the embedded store.
//! - `<prefix>tokens/<client token>` → the idempotency record of each remembered client
//!   token, as JSON; their order of use is their keys' etcd create revision.
//! - `<prefix>records/<space>/<id>` → each record (see `store::records`), its bytes as
//!   the owner wrote them.

use crate::model::ResourceKey;
use crate::store::codec::encode_key;
use crate::store::{IdempotencyRecord, RecordKey};

/// The version of this layout; a meshd refuses data that declares a newer one.
pub const FORMAT_VERSION: u64 = 1;

/// The keys under one prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

/// What a key under the prefix holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Entry<'a> {
    FormatVersion,
    Revision,
    /// A resource, with its key as JSON.
    Resource(&'a str),
    /// A client token's record, with the token.
    Token(&'a str),
    /// A record, with its stored key (`<space>/<id>`).
    Record(&'a str),
    /// Nothing meshd writes.
    Other,
}

impl Keys {
    /// The keys under `prefix` (a `/` is added if it does not end in one).
    pub(super) fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) fn format_version(&self) -> String {
        format!("{}format_version", self.prefix)
    }

    pub(super) fn revision(&self) -> String {
        format!("{}revision", self.prefix)
    }

    pub(super) fn resource(&self, key: &ResourceKey) -> String {
        format!("{}resources/{}", self.prefix, encode_key(key))
    }

    pub(super) fn token(&self, token: &str) -> String {
        format!("{}tokens/{token}", self.prefix)
    }

    pub(super) fn record(&self, key: &RecordKey) -> String {
        format!("{}records/{}", self.prefix, key.encode())
    }

    /// What `key` (a full etcd key) holds.
    pub(super) fn classify<'a>(&self, key: &'a [u8]) -> Entry<'a> {
        let Some(rest) = std::str::from_utf8(key)
            .ok()
            .and_then(|key| key.strip_prefix(self.prefix.as_str()))
        else {
            return Entry::Other;
        };
        match rest {
            "format_version" => Entry::FormatVersion,
            "revision" => Entry::Revision,
            _ => {
                if let Some(key) = rest.strip_prefix("resources/") {
                    Entry::Resource(key)
                } else if let Some(token) = rest.strip_prefix("tokens/") {
                    Entry::Token(token)
                } else if let Some(record) = rest.strip_prefix("records/") {
                    Entry::Record(record)
                } else {
                    Entry::Other
                }
            }
        }
    }
}

/// The value of a client token's key.
pub(super) fn token_value(record: &IdempotencyRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("idempotency records serialise")
}

/// A number stored in decimal (the format version, the revision).
pub(super) fn decode_number(what: &str, value: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            format!(
                "the {what} {:?} is not a number",
                String::from_utf8_lossy(value)
            )
        })
}

/// Reads back a record's key.
pub(super) fn decode_record_key(stored: &str) -> Result<RecordKey, String> {
    RecordKey::decode(stored).map_err(|err| err.to_string())
}

/// Reads back a client token's record.
pub(super) fn decode_token(token: &str, value: &[u8]) -> Result<IdempotencyRecord, String> {
    serde_json::from_slice(value)
        .map_err(|err| format!("the record of client token {token:?} cannot be read: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_what_they_hold() {
        let keys = Keys::new("/m");
        assert_eq!(keys.prefix(), "/m/");
        let resource = keys.resource(&ResourceKey::mesh("a"));
        let resource_json = resource.strip_prefix("/m/resources/").unwrap();
        assert_eq!(
            keys.classify(resource.as_bytes()),
            Entry::Resource(resource_json)
        );
        assert_eq!(
            crate::store::codec::decode_key(resource_json).unwrap(),
            ResourceKey::mesh("a")
        );
        assert_eq!(
            keys.classify(keys.token("t/1").as_bytes()),
            Entry::Token("t/1")
        );
        let record = crate::store::RecordKey::new(crate::store::RecordSpace::CloudMap, "a/b");
        assert_eq!(
            keys.classify(keys.record(&record).as_bytes()),
            Entry::Record("cloudMap/a/b")
        );
        assert_eq!(decode_record_key("cloudMap/a/b"), Ok(record));
        assert_eq!(keys.classify(keys.revision().as_bytes()), Entry::Revision);
        assert_eq!(
            keys.classify(keys.format_version().as_bytes()),
            Entry::FormatVersion
        );
        assert_eq!(keys.classify(b"/m/other"), Entry::Other);
        assert_eq!(keys.classify(b"/n/revision"), Entry::Other);
    }
}
