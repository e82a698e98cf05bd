//! meshd's own Cloud Map registry as the endpoint source (`meshd serve --cloud-map
//! local`, the default): the registry lives in the store, so each revision that changes
//! it, or a change of what the hub wants, is read again at once; there is nothing to
//! poll and nothing that can be unreachable.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::store::{RecordSpace, Snapshot, Store};

use super::{DiscoveredInstance, Endpoints, ServiceQuery};

/// How a registry is read: the healthy instances of a service, `None` when the
/// namespace or the service does not exist.
pub type RegistryReader = fn(&Snapshot, &str, &str) -> Option<Vec<DiscoveredInstance>>;

/// The instances `query` selects in `snapshot`'s registry (none for a service that
/// does not exist: a proxy gets an empty assignment until it is created).
pub fn read(
    read: RegistryReader,
    snapshot: &Snapshot,
    query: &ServiceQuery,
) -> Vec<DiscoveredInstance> {
    let mut instances = read(snapshot, &query.namespace, &query.service).unwrap_or_default();
    instances.retain(|instance| query.selects(instance));
    instances
}

/// Follows the registry in `store` for what the hub wants, until the store is gone.
pub async fn follow(store: Arc<Store>, endpoints: Arc<Endpoints>, reader: RegistryReader) {
    let mut feed = store.subscribe();
    let mut wanted = endpoints.wanted();
    let mut read_at: Option<Arc<Snapshot>> = None;
    let mut read_for = BTreeSet::new();
    loop {
        let snapshot = feed.borrow_and_update().clone();
        let queries = wanted.borrow_and_update().clone();
        let registry_changed = read_at.as_ref().is_none_or(|earlier| {
            !snapshot
                .record_changes_since(earlier, RecordSpace::CloudMap)
                .is_empty()
        });
        // Reading is a look-up in the snapshot; a report changes nothing unless the
        // instances did.
        for query in &queries {
            if registry_changed || !read_for.contains(query) {
                endpoints.report(query, read(reader, &snapshot, query));
            }
        }
        read_for = queries;
        read_at = Some(snapshot);
        tokio::select! {
            changed = feed.changed() => if changed.is_err() { return },
            changed = wanted.changed() => if changed.is_err() { return },
        }
    }
}
