//! How the embedded store lays meshd's data out in its file: three tables, and the
//! encoding of their keys and values.
//!
//! - `meta` (`&str` → `u64`): `format_version` ([`FORMAT_VERSION`]) and `revision`, the
//!   store revision of the last commit.
//! - `resources` (`&str` → bytes): each resource as JSON, under its key as JSON
//!   (`{"mesh":…,"kind":…,"parent":…,"name":…}`).
//! - `tokens` (`u64` → bytes): each remembered client token under the revision of the
//!   commit that used it (so that the table's order is the order of use), as the JSON
//!   pair `[token, record]`.
//! - `records` (`&str` → bytes): each record (see `store::records`) under
//!   `<space>/<id>`, its bytes as the owner wrote them. A file written before records
//!   existed has no such table; it is created when the file is opened.
//!
//! Resources and records are JSON because their spec types are serde types made to
//! round-trip exactly (optional members skipped when unset, unknown members refused),
//! which makes a stray byte far more likely to be noticed than in a compact binary
//! encoding, and the data can be inspected with any redb tool.

use redb::TableDefinition;

use crate::store::IdempotencyRecord;

/// The version of this layout. A meshd refuses a file that declares a newer one; a
/// change to the layout or to what a stored value means increments it.
pub const FORMAT_VERSION: u64 = 1;

/// The name of the data file inside the data directory.
pub const DATA_FILE: &str = "meshd.redb";

/// Format version and revision.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The `meta` entry that holds the format version.
pub(super) const FORMAT_VERSION_KEY: &str = "format_version";
/// The `meta` entry that holds the revision of the last commit.
pub(super) const REVISION_KEY: &str = "revision";
/// Every resource, by key.
pub(super) const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");
/// Records, by their stored key.
pub(super) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// Remembered client tokens, by the revision that used them.
pub(super) const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("tokens");

/// The `tokens` value of `token` and its record.
pub(super) fn token_value(token: &str, record: &IdempotencyRecord) -> Vec<u8> {
    serde_json::to_vec(&(token, record)).expect("idempotency records serialise")
}

/// Reads back a `tokens` entry: the token and its record.
pub(super) fn decode_token(
    revision: u64,
    value: &[u8],
) -> Result<(String, IdempotencyRecord), String> {
    serde_json::from_slice(value)
        .map_err(|err| format!("the client token of revision {revision} cannot be read: {err}"))
}
