//! A commit as one etcd transaction: if the revision key still holds the revision the
//! write was checked against, put the next revision and every change; otherwise read
//! the revision key, to learn how far behind this replica is.
//!
//! Every write puts the revision key, so comparing it is comparing the whole store: a
//! transaction succeeds only if nothing at all was written since this replica's
//! snapshot, which is what the store checked the write against. That serialises writes
//! through all replicas (one write at a time, as within one meshd), so no update is lost,
//! no name is taken twice, and no delete races a create under it.

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::layout::{Keys, decode_number, token_value};
use crate::store::backend::{BackendError, Commit};
use crate::store::codec::encode_resource;

/// The transaction that records `commit`.
pub(super) fn transaction(keys: &Keys, commit: &Commit) -> Txn {
    let mut ops = vec![TxnOp::put(
        keys.revision(),
        commit.revision.to_string(),
        None,
    )];
    for resource in &commit.puts {
        ops.push(TxnOp::put(
            keys.resource(&resource.key),
            encode_resource(resource),
            None,
        ));
    }
    for key in &commit.deletes {
        ops.push(TxnOp::delete(keys.resource(key), None));
    }
    for token in &commit.forgotten_tokens {
        ops.push(TxnOp::delete(keys.token(token), None));
    }
    if let Some((token, record)) = &commit.token {
        ops.push(TxnOp::put(keys.token(token), token_value(record), None));
    }
    for (key, value) in &commit.records.puts {
        ops.push(TxnOp::put(keys.record(key), value.to_vec(), None));
    }
    for key in &commit.records.deletes {
        ops.push(TxnOp::delete(keys.record(key), None));
    }
    Txn::new()
        .when([Compare::value(
            keys.revision(),
            CompareOp::Equal,
            (commit.revision - 1).to_string(),
        )])
        .and_then(ops)
        .or_else([TxnOp::get(keys.revision(), None)])
}

/// What the answer to [`transaction`] means for the store.
pub(super) fn outcome(response: &TxnResponse) -> Result<(), BackendError> {
    if response.succeeded() {
        return Ok(());
    }
    let stored = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    match stored {
        Some(value) => decode_number("revision", &value)
            .map(|revision| BackendError::Behind { revision })
            .map_err(BackendError::Unavailable)
            .and_then(Err),
        None => Err(BackendError::Unavailable(
            "the store's revision key is missing from etcd".into(),
        )),
    }
}
