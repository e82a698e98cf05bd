//! Virtual services compiled once per compilation pass and replayed into every proxy
//! that reaches them the same way. Of 1,000 proxies with 10 backends each, most reach
//! the same few hundred services with the same (usually no) client policy: compiling a
//! service's routes and resolving its targets once, instead of once per client, is
//! most of the work of compiling a large mesh.
//!
//! Every proxy compiles a service into a fresh child context and then absorbs the
//! result ([`Context::service`](super::context::Context::service)), whether or not a
//! pass shares services, so a proxy's configuration never depends on which other
//! proxies were compiled with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use parking_lot::Mutex;

use crate::model::ResourceKey;
use crate::model::spec::ClientPolicy;

use super::backend::ServicePort;

/// A virtual service as one kind of client reaches it: which mesh and service, the port
/// asked for (all when `None`) and the client policy that applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    mesh: String,
    service: String,
    port: Option<i64>,
    policy: Option<ClientPolicy>,
}

impl ServiceKey {
    /// The key of `service` in `mesh`, on `port`, for clients with `policy`.
    pub fn new(
        mesh: &str,
        service: &str,
        port: Option<i64>,
        policy: Option<&ClientPolicy>,
    ) -> Self {
        Self {
            mesh: mesh.to_string(),
            service: service.to_string(),
            port,
            policy: policy.cloned(),
        }
    }
}

/// An egress cluster that compiling a service used, with the target it reaches.
#[derive(Debug, Clone)]
pub struct UsedCluster {
    /// The cluster (shared between proxies).
    pub cluster: Arc<Cluster>,
    /// Its endpoint assignment, for EDS clusters.
    pub endpoints: Option<ClusterLoadAssignment>,
    /// What its endpoints come from, for Cloud Map clusters.
    pub cloud_map: Option<super::cloud_map::CloudMapTarget>,
    /// The target virtual node.
    pub target: String,
    /// The target listener's port.
    pub port: i64,
}

/// What compiling one virtual service for one kind of client produced.
#[derive(Debug, Clone, Default)]
pub struct CompiledService {
    /// The service's ports: routes or TCP targets.
    pub ports: Vec<ServicePort>,
    /// The egress clusters the ports name, by cluster name.
    pub clusters: BTreeMap<String, UsedCluster>,
    /// The problems found, in the order found.
    pub diagnostics: Vec<String>,
    /// Every resource read.
    pub dependencies: Arc<BTreeSet<ResourceKey>>,
}

/// The services compiled in one pass, shared between the pass's proxies (and threads).
#[derive(Debug, Default)]
pub struct SharedServices {
    entries: Mutex<HashMap<ServiceKey, Arc<CompiledService>>>,
}

impl SharedServices {
    /// The service compiled for `key`, if any.
    pub fn get(&self, key: &ServiceKey) -> Option<Arc<CompiledService>> {
        self.entries.lock().get(key).cloned()
    }

    /// Remembers the service compiled for `key`.
    pub fn insert(&self, key: ServiceKey, service: Arc<CompiledService>) {
        self.entries.lock().insert(key, service);
    }
}
