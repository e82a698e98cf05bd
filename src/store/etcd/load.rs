//! Reading everything under the prefix back into a [`Snapshot`], or refusing it: a
//! linearizable read of the first page, then the next pages at that page's etcd
//! revision, so the snapshot is etcd's content at one revision.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, Txn, TxnOp};

use super::layout::{Entry, FORMAT_VERSION, Keys, decode_number, decode_record_key, decode_token};
use super::members::Members;
use crate::store::Snapshot;
use crate::store::codec::decode_resource;

/// Why the store could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(super) enum LoadError {
    /// etcd did not answer, or refused the request.
    #[error("{0}")]
    Unavailable(String),
    /// The data cannot be read back as meshd writes it.
    #[error("{0}")]
    Data(String),
}

impl From<etcd_client::Error> for LoadError {
    fn from(err: etcd_client::Error) -> Self {
        LoadError::Unavailable(err.to_string())
    }
}

impl From<String> for LoadError {
    fn from(detail: String) -> Self {
        LoadError::Data(detail)
    }
}

/// Makes the prefix meshd's by writing the format version and revision 0, unless a
/// revision is there already.
pub(super) async fn initialise(members: &Members, keys: &Keys) -> Result<(), LoadError> {
    let txn = Txn::new()
        .when([Compare::version(keys.revision(), CompareOp::Equal, 0)])
        .and_then([
            TxnOp::put(keys.format_version(), FORMAT_VERSION.to_string(), None),
            TxnOp::put(keys.revision(), "0", None),
        ]);
    members
        .call(|mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await?;
    Ok(())
}

/// How many keys one page of the load reads (etcd's answers stay far below the gRPC
/// message size limit).
const PAGE: i64 = 500;

/// Reads every key under the prefix, page by page at one etcd revision: the snapshot,
/// and the etcd revision it was read at (to watch from the next one).
pub(super) async fn load(members: &Members, keys: &Keys) -> Result<(Snapshot, i64), LoadError> {
    let end = range_end(keys.prefix());
    let mut from = keys.prefix().as_bytes().to_vec();
    let mut at = None;
    let mut kvs = Vec::new();
    loop {
        let mut response = members
            .call(|mut client| {
                let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
                if let Some(at) = at {
                    options = options.with_revision(at);
                }
                let from = from.clone();
                async move { client.get(from, Some(options)).await }
            })
            .await?;
        if at.is_none() {
            at = Some(
                response
                    .header()
                    .map(|header| header.revision())
                    .ok_or_else(|| LoadError::Unavailable("etcd's answer has no header".into()))?,
            );
        }
        let more = response.more();
        let page = response.take_kvs();
        if let Some(last) = page.last() {
            from = last.key().to_vec();
            from.push(0);
        }
        kvs.extend(page);
        if !more {
            break;
        }
    }
    decode(keys, &kvs, at.expect("the first page was read"))
}

/// The end of the range of keys that start with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn decode(keys: &Keys, kvs: &[KeyValue], at: i64) -> Result<(Snapshot, i64), LoadError> {
    let mut format_version = None;
    let mut revision = None;
    let mut resources = Vec::new();
    let mut tokens = Vec::new();
    let mut records = Vec::new();
    for kv in kvs {
        match keys.classify(kv.key()) {
            Entry::FormatVersion => {
                format_version = Some(decode_number("format version", kv.value())?)
            }
            Entry::Revision => revision = Some(decode_number("revision", kv.value())?),
            Entry::Resource(key) => resources.push(Arc::new(decode_resource(key, kv.value())?)),
            Entry::Token(token) => tokens.push((
                kv.create_revision(),
                token.to_string(),
                decode_token(token, kv.value())?,
            )),
            Entry::Record(key) => records.push((decode_record_key(key)?, kv.value().into())),
            Entry::Other => {
                tracing::warn!(key = %String::from_utf8_lossy(kv.key()), "ignoring a key meshd did not write under its etcd prefix");
            }
        }
    }
    let format_version =
        format_version.ok_or_else(|| LoadError::Data("there is no format version".into()))?;
    if format_version > FORMAT_VERSION || format_version == 0 {
        return Err(LoadError::Data(format!(
            "it declares data format version {format_version}; this meshd reads version {FORMAT_VERSION}"
        )));
    }
    let revision = revision.ok_or_else(|| LoadError::Data("there is no revision".into()))?;
    // Tokens were used in the order their keys were created.
    tokens.sort_by_key(|(created, _, _)| *created);
    let snapshot = Snapshot::restore(
        revision,
        resources,
        tokens.into_iter().map(|(_, token, record)| (token, record)),
        records,
    );
    snapshot
        .check_consistent()
        .map_err(|inconsistency| LoadError::Data(inconsistency.to_string()))?;
    Ok((snapshot, at))
}
