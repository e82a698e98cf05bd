//! An immutable view of the whole store at one revision. Cloning is cheap (persistent
//! maps share structure), so every reader holds its own consistent snapshot.

use std::sync::Arc;

use imbl::{OrdMap, Vector};
use serde::{Deserialize, Serialize};

use super::records::{RecordKey, RecordSpace, RecordValue, RecordWrite};
use crate::model::{Resource, ResourceKey, ResourceKind};

/// How many client tokens are remembered; the oldest are forgotten first.
pub const MAX_REMEMBERED_TOKENS: usize = 100_000;

/// What a client token was used for, so that a retry gets the first answer back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// A digest of the operation, target and body of the request that used the token.
    pub fingerprint: String,
    /// The resource as the first request returned it.
    pub result: Arc<Resource>,
}

/// The store's content at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(super) revision: u64,
    pub(super) resources: OrdMap<ResourceKey, Arc<Resource>>,
    pub(super) tokens: OrdMap<String, IdempotencyRecord>,
    pub(super) token_order: Vector<String>,
    pub(super) records: OrdMap<RecordKey, RecordValue>,
    /// How many resources each collection (a kind in a mesh, under a parent for routes
    /// and gateway routes) holds: kept by [`Snapshot::put`] and [`Snapshot::remove`], so
    /// that checking a limit on every create does not walk the collection.
    pub(super) counts: OrdMap<Collection, usize>,
}

/// A collection of resources: `(mesh, kind, parent)`, as [`Snapshot::list`] walks it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Collection {
    mesh: String,
    kind: ResourceKind,
    parent: String,
}

impl Collection {
    fn of(key: &ResourceKey) -> Self {
        Self {
            mesh: key.mesh.clone(),
            kind: key.kind,
            parent: key.parent.clone(),
        }
    }
}

/// A resource that differs between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Present now, absent before.
    Created(ResourceKey),
    /// Present in both, different now.
    Updated(ResourceKey),
    /// Present before, absent now.
    Deleted(ResourceKey),
}

impl Change {
    /// The resource that changed.
    pub fn key(&self) -> &ResourceKey {
        match self {
            Change::Created(key) | Change::Updated(key) | Change::Deleted(key) => key,
        }
    }
}

impl Snapshot {
    /// The revision: 0 for an empty store, one more for every committed write.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The resource stored under `key`.
    pub fn get(&self, key: &ResourceKey) -> Option<&Arc<Resource>> {
        self.resources.get(key)
    }

    /// Whether this snapshot holds exactly `resource` (the same `Arc`, not an equal copy
    /// or a later version): what caches built from a resource check to stay current.
    pub fn holds(&self, resource: &Arc<Resource>) -> bool {
        self.get(&resource.key)
            .is_some_and(|now| Arc::ptr_eq(now, resource))
    }

    /// Every resource, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.resources.values()
    }

    /// How many resources the store holds.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether the store holds no resource at all.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Every mesh, by name.
    pub fn meshes(&self) -> impl Iterator<Item = &Arc<Resource>> {
        let mut next = self.resources.get_next(&ResourceKey::mesh(""));
        std::iter::from_fn(move || {
            let (key, resource) = next?;
            // The smallest mesh name after `key.mesh` is `key.mesh` + NUL; a mesh's own key
            // sorts before all of its children, so the next entry there is the next mesh.
            next = self
                .resources
                .get_next(&ResourceKey::mesh(format!("{}\0", key.mesh)));
            Some(resource)
        })
        .filter(|resource| resource.key.kind == ResourceKind::Mesh)
    }

    /// The resources of `kind` in `mesh` (under `parent` for routes and gateway routes;
    /// empty otherwise), by name, starting after the name `after`.
    pub fn list<'s, 'q>(
        &'s self,
        mesh: &'q str,
        kind: ResourceKind,
        parent: &'q str,
        after: Option<&'q str>,
    ) -> impl Iterator<Item = &'s Arc<Resource>> + use<'s, 'q> {
        let start = ResourceKey::child(kind, mesh, parent, after.unwrap_or(""));
        self.resources
            .range(start..)
            .take_while(move |(key, _)| {
                key.mesh == mesh && key.kind == kind && key.parent == parent
            })
            .filter(move |(key, _)| after.is_none_or(|after| key.name.as_str() > after))
            .map(|(_, resource)| resource)
    }

    /// How many resources of `kind` live in `mesh` (under `parent`). Looked up, not
    /// counted: as cheap with 100,000 resources as with ten.
    pub fn count(&self, mesh: &str, kind: ResourceKind, parent: &str) -> usize {
        let collection = Collection {
            mesh: mesh.to_string(),
            kind,
            parent: parent.to_string(),
        };
        self.counts.get(&collection).copied().unwrap_or(0)
    }

    /// Every resource inside `mesh`, the mesh itself excepted.
    pub fn mesh_contents<'a>(
        &'a self,
        mesh: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        let start = ResourceKey::in_mesh(ResourceKind::VirtualNode, mesh, "");
        self.resources
            .range(start..)
            .take_while(move |(key, _)| key.mesh == mesh)
            .map(|(_, resource)| resource)
    }

    /// The record stored under `key` (see [`crate::store::Store::transact`]).
    pub fn record(&self, key: &RecordKey) -> Option<&RecordValue> {
        self.records.get(key)
    }

    /// The records of `space` whose id starts with `prefix`, in id order.
    pub fn records<'s, 'q>(
        &'s self,
        space: RecordSpace,
        prefix: &'q str,
    ) -> impl Iterator<Item = (&'s str, &'s RecordValue)> + use<'s, 'q> {
        self.records
            .range(RecordKey::new(space, prefix)..)
            .take_while(move |(key, _)| key.space == space && key.id.starts_with(prefix))
            .map(|(key, value)| (key.id.as_str(), value))
    }

    /// How many records the store holds, in every space.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// The keys of the records of `space` that differ between `older` and this snapshot
    /// (created, replaced or removed), in key order.
    pub fn record_changes_since(&self, older: &Snapshot, space: RecordSpace) -> Vec<RecordKey> {
        older
            .records
            .diff(&self.records)
            .filter_map(|item| match item {
                imbl::ordmap::DiffItem::Add(key, _) | imbl::ordmap::DiffItem::Remove(key, _) => {
                    Some(key)
                }
                imbl::ordmap::DiffItem::Update { old, new } => {
                    (!Arc::ptr_eq(old.1, new.1)).then_some(new.0)
                }
            })
            .filter(|key| key.space == space)
            .cloned()
            .collect()
    }

    /// The record of client token `token`, if it was used recently.
    pub fn token(&self, token: &str) -> Option<&IdempotencyRecord> {
        self.tokens.get(token)
    }

    /// What changed from `older` to this snapshot, in key order. Cheap when little
    /// changed: unchanged subtrees shared by both snapshots are skipped.
    pub fn changes_since(&self, older: &Snapshot) -> Vec<Change> {
        older
            .resources
            .diff(&self.resources)
            .filter_map(|item| match item {
                imbl::ordmap::DiffItem::Add(key, _) => Some(Change::Created(key.clone())),
                imbl::ordmap::DiffItem::Remove(key, _) => Some(Change::Deleted(key.clone())),
                imbl::ordmap::DiffItem::Update { old, new } => {
                    (!Arc::ptr_eq(old.1, new.1)).then(|| Change::Updated(new.0.clone()))
                }
            })
            .collect()
    }

    /// A snapshot rebuilt from what a durable backend kept: the revision it had reached,
    /// every resource, and the client tokens it remembers, oldest first (the order decides
    /// which are forgotten first once more than [`MAX_REMEMBERED_TOKENS`] are in use).
    /// The caller vouches for the content; [`Snapshot::check_consistent`] checks it.
    pub fn restore(
        revision: u64,
        resources: impl IntoIterator<Item = Arc<Resource>>,
        tokens: impl IntoIterator<Item = (String, IdempotencyRecord)>,
        records: impl IntoIterator<Item = (RecordKey, RecordValue)>,
    ) -> Snapshot {
        let mut snapshot = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for resource in resources {
            snapshot.put(resource);
        }
        for (token, mut record) in tokens {
            // A token's answer read back is a copy of the resource it created or updated;
            // while that resource is unchanged, the record shares the stored one.
            if let Some(stored) = snapshot.resources.get(&record.result.key)
                && **stored == *record.result
            {
                record.result = stored.clone();
            }
            snapshot.remember_token(token, record);
        }
        snapshot.records.extend(records);
        snapshot
    }

    /// Stores `resource` under its key, replacing what was there.
    pub(super) fn put(&mut self, resource: Arc<Resource>) {
        let collection = Collection::of(&resource.key);
        if self
            .resources
            .insert(resource.key.clone(), resource)
            .is_none()
        {
            *self.counts.entry(collection).or_insert(0) += 1;
        }
    }

    /// Removes the resource stored under `key`, if any.
    pub(super) fn remove(&mut self, key: &ResourceKey) {
        if self.resources.remove(key).is_some() {
            let collection = Collection::of(key);
            match self.counts.get(&collection).copied() {
                Some(count) if count > 1 => {
                    self.counts.insert(collection, count - 1);
                }
                _ => {
                    self.counts.remove(&collection);
                }
            }
        }
    }

    /// Applies what a transaction does to records.
    pub(super) fn write_records(&mut self, write: &RecordWrite) {
        for (key, value) in &write.puts {
            self.records.insert(key.clone(), value.clone());
        }
        for key in &write.deletes {
            self.records.remove(key);
        }
    }

    /// Remembers `token`; returns the oldest tokens forgotten to make room for it.
    pub(super) fn remember_token(
        &mut self,
        token: String,
        record: IdempotencyRecord,
    ) -> Vec<String> {
        if self.tokens.insert(token.clone(), record).is_none() {
            self.token_order.push_back(token);
        }
        let mut forgotten = Vec::new();
        while self.token_order.len() > MAX_REMEMBERED_TOKENS {
            if let Some(oldest) = self.token_order.pop_front() {
                self.tokens.remove(&oldest);
                forgotten.push(oldest);
            }
        }
        forgotten
    }

    /// Forgets `token` (another replica made room for newer ones).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(super) fn forget_token(&mut self, token: &str) {
        if self.tokens.remove(token).is_some()
            && let Some(index) = self.token_order.index_of(&token.to_string())
        {
            self.token_order.remove(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{MeshSpec, VirtualNodeSpec, VirtualRouterSpec};
    use crate::model::{Metadata, Spec, Status, Timestamp};

    fn resource(key: ResourceKey) -> Arc<Resource> {
        let spec = match key.kind {
            ResourceKind::Mesh => Spec::Mesh(MeshSpec::default()),
            ResourceKind::VirtualRouter => Spec::VirtualRouter(VirtualRouterSpec::default()),
            _ => Spec::VirtualNode(VirtualNodeSpec::default()),
        };
        Arc::new(Resource {
            key,
            spec,
            metadata: Metadata {
                uid: "uid".into(),
                version: 1,
                created_at: Timestamp(0),
                last_updated_at: Timestamp(0),
            },
            tags: Vec::new(),
            status: Status::Active,
        })
    }

    /// Every collection's count, as a walk of the resources finds it.
    fn walked(snapshot: &Snapshot) -> Vec<(String, ResourceKind, String, usize)> {
        let mut counts: Vec<(String, ResourceKind, String, usize)> = Vec::new();
        for resource in snapshot.iter() {
            let key = &resource.key;
            match counts.last_mut() {
                Some((mesh, kind, parent, count))
                    if *mesh == key.mesh && *kind == key.kind && *parent == key.parent =>
                {
                    *count += 1
                }
                _ => counts.push((key.mesh.clone(), key.kind, key.parent.clone(), 1)),
            }
        }
        counts
    }

    fn check_counts(snapshot: &Snapshot) {
        let walked = walked(snapshot);
        for (mesh, kind, parent, count) in &walked {
            assert_eq!(
                snapshot.count(mesh, *kind, parent),
                *count,
                "{mesh} {kind} {parent}"
            );
            assert_eq!(snapshot.list(mesh, *kind, parent, None).count(), *count);
        }
        assert_eq!(
            snapshot.counts.len(),
            walked.len(),
            "no stale collection is kept"
        );
    }

    #[test]
    fn counts_match_a_walk_after_creates_replacements_deletes_and_a_restore() {
        let mut snapshot = Snapshot::default();
        let node =
            |mesh: &str, name: &str| ResourceKey::in_mesh(ResourceKind::VirtualNode, mesh, name);
        let route =
            |router: &str, name: &str| ResourceKey::child(ResourceKind::Route, "m", router, name);
        for mesh in ["m", "n"] {
            snapshot.put(resource(ResourceKey::mesh(mesh)));
        }
        snapshot.put(resource(ResourceKey::in_mesh(
            ResourceKind::VirtualRouter,
            "m",
            "r",
        )));
        for index in 0..50 {
            snapshot.put(resource(node("m", &format!("node-{index}"))));
            snapshot.put(resource(route(
                if index % 2 == 0 { "r" } else { "s" },
                &format!("x-{index}"),
            )));
        }
        snapshot.put(resource(node("n", "only")));
        check_counts(&snapshot);
        assert_eq!(snapshot.count("m", ResourceKind::VirtualNode, ""), 50);
        assert_eq!(snapshot.count("m", ResourceKind::Route, "r"), 25);

        let before = snapshot.clone();
        // Replacing a resource changes no count; removing one that is absent neither.
        snapshot.put(resource(node("m", "node-3")));
        snapshot.remove(&node("m", "absent"));
        check_counts(&snapshot);
        for index in 0..50 {
            if index % 3 == 0 {
                snapshot.remove(&node("m", &format!("node-{index}")));
            }
            snapshot.remove(&route(
                if index % 2 == 0 { "r" } else { "s" },
                &format!("x-{index}"),
            ));
        }
        snapshot.remove(&node("n", "only"));
        check_counts(&snapshot);
        assert_eq!(snapshot.count("m", ResourceKind::VirtualNode, ""), 33);
        assert_eq!(snapshot.count("m", ResourceKind::Route, "r"), 0);
        assert_eq!(snapshot.count("n", ResourceKind::VirtualNode, ""), 0);
        // The older snapshot keeps its own counts.
        check_counts(&before);
        assert_eq!(before.count("m", ResourceKind::VirtualNode, ""), 50);

        let restored = Snapshot::restore(
            snapshot.revision(),
            snapshot.iter().cloned().collect::<Vec<_>>(),
            Vec::new(),
            Vec::new(),
        );
        check_counts(&restored);
        assert_eq!(restored.counts, snapshot.counts);
    }
}
