//! Egress clusters shared between proxies. Every client of a target virtual node's
//! listener gets the same cluster (for the same client TLS), so it is built once per
//! compilation pass, or once per change of its inputs in incremental compilation, and
//! handed to every proxy as an `Arc`.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use parking_lot::Mutex;

use super::cloud_map::CloudMapTarget;
use crate::model::Resource;
use crate::store::Snapshot;

/// What a shared cluster was built from: its name, the exact target node and mesh
/// resources (by identity: a new version of either is a new key), and the client TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedKey {
    name: String,
    target: usize,
    mesh: usize,
    tls: Option<Vec<u8>>,
}

impl SharedKey {
    /// The key of cluster `name` built from `target` in `mesh` with client TLS `tls`
    /// (the encoded transport socket).
    pub fn new(
        name: &str,
        target: &Arc<Resource>,
        mesh: &Arc<Resource>,
        tls: Option<Vec<u8>>,
    ) -> Self {
        Self {
            name: name.to_string(),
            target: Arc::as_ptr(target) as usize,
            mesh: Arc::as_ptr(mesh) as usize,
            tls,
        }
    }
}

/// A built cluster with what came with it.
#[derive(Debug, Clone)]
pub struct SharedCluster {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// Its endpoint assignment, for EDS clusters.
    pub endpoints: Option<ClusterLoadAssignment>,
    /// What its endpoints come from, for Cloud Map clusters.
    pub cloud_map: Option<CloudMapTarget>,
    /// The diagnostics building it produced.
    pub diagnostics: Vec<String>,
    /// The inputs, held so that their addresses (the key) stay theirs.
    target: Arc<Resource>,
    mesh: Arc<Resource>,
}

impl SharedCluster {
    /// A cluster built from `target` in `mesh`.
    pub fn new(
        cluster: Arc<Cluster>,
        endpoints: Option<ClusterLoadAssignment>,
        cloud_map: Option<CloudMapTarget>,
        diagnostics: Vec<String>,
        target: Arc<Resource>,
        mesh: Arc<Resource>,
    ) -> Self {
        Self {
            cluster,
            endpoints,
            cloud_map,
            diagnostics,
            target,
            mesh,
        }
    }
}

/// The shared clusters of one compilation pass or of an incremental compiler.
#[derive(Debug, Default)]
pub struct SharedClusters {
    entries: Mutex<HashMap<SharedKey, SharedCluster>>,
}

impl SharedClusters {
    /// The cluster built for `key`, if any.
    pub fn get(&self, key: &SharedKey) -> Option<SharedCluster> {
        self.entries.lock().get(key).cloned()
    }

    /// Remembers the cluster built for `key`.
    pub fn insert(&self, key: SharedKey, cluster: SharedCluster) {
        self.entries.lock().insert(key, cluster);
    }

    /// Forgets clusters built from resources that `snapshot` no longer holds as they were.
    pub fn retain_current(&self, snapshot: &Snapshot) {
        self.entries
            .lock()
            .retain(|_, entry| snapshot.holds(&entry.target) && snapshot.holds(&entry.mesh));
    }
}
