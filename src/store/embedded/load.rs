//! Reading the whole data file back into a [`Snapshot`], or refusing it. Everything is
//! read and checked before anything is used, so a file is loaded entirely or not at all.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};

use super::layout::{
    FORMAT_VERSION, FORMAT_VERSION_KEY, META, RECORDS, RESOURCES, REVISION_KEY, TOKENS,
    decode_token,
};
use crate::store::codec::decode_resource;
use crate::store::{OpenError, RecordKey, Snapshot};

/// Makes a new file a meshd data file by recording the format version and revision 0;
/// in a file that already holds tables, adds the records table if it is missing (a file
/// written before records existed) and leaves the rest alone.
pub(super) fn initialise(db: &Database, path: &Path) -> Result<(), OpenError> {
    write_initial(db).map_err(|err| corrupt(path, err.to_string()))
}

fn write_initial(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    let names: Vec<String> = txn
        .list_tables()?
        .map(|table| table.name().to_string())
        .collect();
    if names.iter().any(|name| name == RECORDS.name()) {
        txn.abort()?;
        return Ok(());
    }
    txn.set_two_phase_commit(true);
    if names.is_empty() {
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
            meta.insert(REVISION_KEY, 0)?;
        }
        txn.open_table(RESOURCES)?;
        txn.open_table(TOKENS)?;
    }
    txn.open_table(RECORDS)?;
    txn.commit()?;
    Ok(())
}

/// Reads every resource and remembered token, checks the format version and the
/// snapshot's consistency, and returns the snapshot the file describes.
pub(super) fn load(db: &Database, path: &Path) -> Result<Snapshot, OpenError> {
    read(db).map_err(|failure| match failure {
        Failure::Newer(found) => OpenError::NewerFormat {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        },
        Failure::Corrupt(detail) => corrupt(path, detail),
    })
}

enum Failure {
    Newer(u64),
    Corrupt(String),
}

impl From<redb::Error> for Failure {
    fn from(err: redb::Error) -> Self {
        Failure::Corrupt(err.to_string())
    }
}

impl From<String> for Failure {
    fn from(detail: String) -> Self {
        Failure::Corrupt(detail)
    }
}

fn read(db: &Database) -> Result<Snapshot, Failure> {
    let missing = |what: &str| Failure::Corrupt(format!("it has no {what}"));
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let meta = txn
        .open_table(META)
        .map_err(|_| missing("format version (it is not a meshd data file)"))?;
    let version = meta
        .get(FORMAT_VERSION_KEY)
        .map_err(redb::Error::from)?
        .map(|entry| entry.value())
        .ok_or_else(|| missing("format version (it is not a meshd data file)"))?;
    if version > FORMAT_VERSION {
        return Err(Failure::Newer(version));
    }
    if version == 0 {
        return Err(Failure::Corrupt("it declares format version 0".into()));
    }
    let revision = meta
        .get(REVISION_KEY)
        .map_err(redb::Error::from)?
        .map(|entry| entry.value())
        .ok_or_else(|| missing("revision"))?;

    let resources_table = txn
        .open_table(RESOURCES)
        .map_err(|_| missing("resources table"))?;
    let mut resources =
        Vec::with_capacity(resources_table.len().map_err(redb::Error::from)? as usize);
    for entry in resources_table.iter().map_err(redb::Error::from)? {
        let (key, value) = entry.map_err(redb::Error::from)?;
        resources.push(Arc::new(decode_resource(key.value(), value.value())?));
    }

    let tokens_table = txn
        .open_table(TOKENS)
        .map_err(|_| missing("tokens table"))?;
    let mut tokens = Vec::new();
    for entry in tokens_table.iter().map_err(redb::Error::from)? {
        let (used_at, value) = entry.map_err(redb::Error::from)?;
        let used_at = used_at.value();
        if used_at > revision {
            return Err(Failure::Corrupt(format!(
                "a client token is recorded at revision {used_at}, after the last revision {revision}"
            )));
        }
        tokens.push(decode_token(used_at, value.value())?);
    }

    let records_table = txn
        .open_table(RECORDS)
        .map_err(|_| missing("records table"))?;
    let mut records = Vec::new();
    for entry in records_table.iter().map_err(redb::Error::from)? {
        let (key, value) = entry.map_err(redb::Error::from)?;
        let key = RecordKey::decode(key.value()).map_err(|err| err.to_string())?;
        records.push((key, value.value().into()));
    }

    let snapshot = Snapshot::restore(revision, resources, tokens, records);
    snapshot
        .check_consistent()
        .map_err(|inconsistency| Failure::Corrupt(inconsistency.to_string()))?;
    Ok(snapshot)
}

/// The error for a file that cannot be read back.
pub(super) fn corrupt(path: &Path, detail: String) -> OpenError {
    OpenError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}
