//! The two sides of a virtual node's sidecar compiled apart and shared, so that a change
//! reaching thousands of distinct proxies compiles what changed once and assembles each
//! proxy from shared parts (`Arc`s, encoded once and held once).
//!
//! - The outbound side (the egress listener, its route configurations, the clusters they
//!   name) depends on a node's backends, backend defaults, IP preference and access log
//!   and on the mesh, not on the node's name: it is compiled once per pass for every
//!   node with the same of those ([`SharedEgress`]).
//! - The inbound side (the ingress listener, its route configurations, the local
//!   clusters) depends only on the node and its mesh: it is kept across passes while
//!   both resources are the same ([`SharedIngress`]); a route change does not touch it.
//!
//! A proxy takes a shared side only where compiling it in place would give the same
//! result: the inbound side first, into an empty configuration; the outbound side while
//! the proxy has said nothing yet (see
//! [`Context::egress_side`](super::context::Context::egress_side)), so its diagnostics
//! come out as they would had it compiled the side itself. A proxy's configuration never
//! depends on which other proxies were compiled with it, or before it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use parking_lot::Mutex;

use crate::model::Resource;
use crate::model::spec::{Backend, BackendDefaults};
use crate::store::Snapshot;

use super::cloud_map::CloudMapTarget;
use super::dependencies::Dependencies;
use super::listener::AccessLogFile;

/// What compiling one side of a sidecar produced.
#[derive(Debug, Default)]
pub struct CompiledSide {
    /// Its listeners.
    pub listeners: BTreeMap<String, Arc<Listener>>,
    /// Their route configurations.
    pub route_configs: BTreeMap<String, Arc<RouteConfiguration>>,
    /// The clusters they name.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// Their endpoint assignments, for EDS clusters.
    pub endpoints: BTreeMap<String, ClusterLoadAssignment>,
    /// What the Cloud Map clusters' endpoints come from.
    pub cloud_map: BTreeMap<String, CloudMapTarget>,
    /// The problems found, in the order found.
    pub diagnostics: Vec<String>,
    /// Every resource read.
    pub dependencies: Dependencies,
}

/// Everything a virtual node's outbound side is compiled from, besides the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EgressKey {
    mesh: String,
    backends: Option<Vec<Backend>>,
    defaults: Option<BackendDefaults>,
    ipv6: bool,
    logs: Vec<AccessLogFile>,
}

impl EgressKey {
    /// The key of the outbound side of a node of `mesh` with `backends` and `defaults`,
    /// listening on IPv6 or not, logging to `logs`.
    pub fn new(
        mesh: &str,
        backends: Option<&Vec<Backend>>,
        defaults: Option<&BackendDefaults>,
        ipv6: bool,
        logs: &[AccessLogFile],
    ) -> Self {
        Self {
            mesh: mesh.to_string(),
            backends: backends.cloned(),
            defaults: defaults.cloned(),
            ipv6,
            logs: logs.to_vec(),
        }
    }
}

/// The outbound sides compiled in one pass, shared between its proxies (and threads).
#[derive(Debug, Default)]
pub struct SharedEgress {
    entries: Mutex<HashMap<EgressKey, Arc<CompiledSide>>>,
}

impl SharedEgress {
    /// The outbound side compiled for `key`, if any.
    pub fn get(&self, key: &EgressKey) -> Option<Arc<CompiledSide>> {
        self.entries.lock().get(key).cloned()
    }

    /// Remembers the outbound side compiled for `key`.
    pub fn insert(&self, key: EgressKey, side: Arc<CompiledSide>) {
        self.entries.lock().insert(key, side);
    }
}

/// An inbound side with the exact node and mesh resources it was compiled from (held,
/// so that their addresses stay theirs).
#[derive(Debug)]
struct Inbound {
    node: Arc<Resource>,
    mesh: Arc<Resource>,
    side: Arc<CompiledSide>,
}

/// Virtual nodes' inbound sides, by mesh and node, kept while their inputs are current.
#[derive(Debug, Default)]
pub struct SharedIngress {
    entries: Mutex<HashMap<(String, String), Inbound>>,
}

impl SharedIngress {
    /// The inbound side of node `node` (of mesh `mesh`) compiled from these very
    /// resources, if any.
    pub fn get(&self, node: &Arc<Resource>, mesh: &Arc<Resource>) -> Option<Arc<CompiledSide>> {
        let key = (node.key.mesh.clone(), node.key.name.clone());
        self.entries
            .lock()
            .get(&key)
            .filter(|kept| Arc::ptr_eq(&kept.node, node) && Arc::ptr_eq(&kept.mesh, mesh))
            .map(|kept| kept.side.clone())
    }

    /// Remembers the inbound side compiled from `node` in `mesh`.
    pub fn insert(&self, node: &Arc<Resource>, mesh: &Arc<Resource>, side: Arc<CompiledSide>) {
        let key = (node.key.mesh.clone(), node.key.name.clone());
        self.entries.lock().insert(
            key,
            Inbound {
                node: node.clone(),
                mesh: mesh.clone(),
                side,
            },
        );
    }

    /// Forgets the inbound side of node `name` of `mesh`.
    pub fn forget(&self, mesh: &str, name: &str) {
        self.entries
            .lock()
            .remove(&(mesh.to_string(), name.to_string()));
    }

    /// Forgets inbound sides compiled from resources that `snapshot` no longer holds as
    /// they were.
    pub fn retain_current(&self, snapshot: &Snapshot) {
        self.entries
            .lock()
            .retain(|_, kept| snapshot.holds(&kept.node) && snapshot.holds(&kept.mesh));
    }
}
