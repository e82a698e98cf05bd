//! Following etcd: every replica watches the prefix from the etcd revision it loaded
//! at, turns each etcd revision's events back into a [`Commit`] and applies it to the
//! store (writes of its own are already there and skipped). When the watch cannot go on
//! from where it was (compacted away, a write that does not follow, data it cannot
//! read), the replica reloads everything and watches from there. While etcd is
//! unreachable it retries, and the store keeps serving what it has.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use super::layout::{Entry, Keys, decode_number, decode_record_key, decode_token};
use super::load::{LoadError, load};
use super::members::Members;
use crate::store::backend::Commit;
use crate::store::codec::{decode_key, decode_resource};
use crate::store::shared::Follower;

/// How long to wait before watching again after etcd went away.
const RETRY: Duration = Duration::from_millis(250);

/// Why one watch stream ended.
enum Ended {
    /// It cannot be resumed from where it was: reload everything.
    Reload(String),
    /// The connection failed: watch again from the next revision.
    Disconnected(String),
}

/// Follows etcd from etcd revision `loaded_at` + 1, forever.
pub(super) async fn follow(members: Arc<Members>, keys: Keys, follower: Follower, loaded_at: i64) {
    let mut next = loaded_at + 1;
    let mut failing = false;
    loop {
        match watch(&members, &keys, &follower, &mut next, &mut failing).await {
            Ended::Disconnected(detail) => {
                if !failing {
                    tracing::warn!("lost the watch on etcd ({detail}); retrying");
                    failing = true;
                }
                members.skip_current();
                tokio::time::sleep(RETRY).await;
            }
            Ended::Reload(reason) => {
                tracing::warn!("reloading the store from etcd: {reason}");
                match load(&members, &keys).await {
                    Ok((snapshot, at)) => {
                        let follower = follower.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || follower.replace(snapshot)).await;
                        next = at + 1;
                    }
                    Err(err) => {
                        if let LoadError::Data(_) = err {
                            tracing::error!("cannot reload the store from etcd: {err}");
                        }
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        }
    }
}

/// Watches from `next` until the stream ends, applying every complete etcd revision
/// and advancing `next` past it.
async fn watch(
    members: &Members,
    keys: &Keys,
    follower: &Follower,
    next: &mut i64,
    failing: &mut bool,
) -> Ended {
    let options = WatchOptions::new().with_prefix().with_start_revision(*next);
    let mut client = match members.current().await {
        Ok(client) => client,
        Err(err) => return Ended::Disconnected(err.to_string()),
    };
    let mut stream = match client.watch(keys.prefix(), Some(options)).await {
        Ok(stream) => stream,
        Err(err) => return Ended::Disconnected(err.to_string()),
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return Ended::Disconnected("the watch stream ended".into()),
            Err(err) => return Ended::Disconnected(err.to_string()),
        };
        if response.compact_revision() > 0 {
            return Ended::Reload(format!(
                "etcd compacted its history past revision {}",
                response.compact_revision()
            ));
        }
        if response.canceled() {
            return Ended::Disconnected(format!(
                "etcd cancelled the watch: {}",
                response.cancel_reason()
            ));
        }
        if response.created() {
            if *failing {
                tracing::info!("watching etcd again from revision {next}");
                *failing = false;
            }
            tracing::debug!(from = *next, "watching etcd");
        }
        // A response holds whole etcd revisions, in order; one meshd write is one.
        let events = response.events();
        let mut start = 0;
        while start < events.len() {
            let revision = events[start].kv().map_or(0, |kv| kv.mod_revision());
            let end = events[start..]
                .iter()
                .position(|event| event.kv().map_or(0, |kv| kv.mod_revision()) != revision)
                .map_or(events.len(), |offset| start + offset);
            let commit = match decode(keys, &events[start..end]) {
                Ok(Some(commit)) => commit,
                Ok(None) => {
                    start = end;
                    *next = revision + 1;
                    continue;
                }
                Err(reason) => return Ended::Reload(reason),
            };
            let follower = follower.clone();
            match tokio::task::spawn_blocking(move || follower.apply(commit)).await {
                Ok(Ok(_)) => {}
                Ok(Err(gap)) => return Ended::Reload(gap.to_string()),
                Err(err) => return Ended::Reload(format!("applying a write failed: {err}")),
            }
            start = end;
            *next = revision + 1;
        }
    }
}

/// One etcd revision's events as the commit that made them; `None` for one that changes
/// nothing meshd reads (the format version written at initialisation).
fn decode(keys: &Keys, events: &[etcd_client::Event]) -> Result<Option<Commit>, String> {
    let mut revision = None;
    let mut commit = Commit::default();
    let mut relevant = false;
    for event in events {
        let Some(kv) = event.kv() else { continue };
        let put = event.event_type() == EventType::Put;
        match (keys.classify(kv.key()), put) {
            (Entry::Revision, true) => revision = Some(decode_number("revision", kv.value())?),
            (Entry::Resource(key), true) => {
                relevant = true;
                commit
                    .puts
                    .push(Arc::new(decode_resource(key, kv.value())?));
            }
            (Entry::Resource(key), false) => {
                relevant = true;
                commit.deletes.push(decode_key(key)?);
            }
            (Entry::Token(token), true) => {
                relevant = true;
                commit.token = Some((token.to_string(), decode_token(token, kv.value())?));
            }
            (Entry::Token(token), false) => {
                relevant = true;
                commit.forgotten_tokens.push(token.to_string());
            }
            (Entry::Record(key), true) => {
                relevant = true;
                commit
                    .records
                    .puts
                    .push((decode_record_key(key)?, kv.value().into()));
            }
            (Entry::Record(key), false) => {
                relevant = true;
                commit.records.deletes.push(decode_record_key(key)?);
            }
            (Entry::FormatVersion, true) => {}
            (entry, _) => {
                return Err(format!(
                    "an unexpected change under the prefix: {} {:?} ({entry:?})",
                    if put { "put" } else { "delete" },
                    String::from_utf8_lossy(kv.key())
                ));
            }
        }
    }
    match revision {
        Some(revision) => {
            commit.revision = revision;
            Ok(Some(commit))
        }
        None if relevant => Err("a write under the prefix did not advance the revision".into()),
        None => Ok(None),
    }
}
