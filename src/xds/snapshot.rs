//! What a proxy is served: its compiled configuration, encoded once into xDS resources
//! whose bytes are shared (by `Arc`) with every stream, and every other proxy, that
//! gets the same resource.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use parking_lot::Mutex;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use crate::compile::{EncodedResource, ProxyConfig, ResourceType, set_version};

/// One encoded xDS resource.
#[derive(Debug, PartialEq, Eq)]
pub struct XdsResource {
    /// The resource's name.
    pub name: String,
    /// Its content version (a hash of its bytes).
    pub version: String,
    /// The protobuf encoding of the resource message.
    pub bytes: Vec<u8>,
}

/// The resources of one type that a proxy is served, by name.
#[derive(Debug, Clone, Default)]
pub struct TypeSnapshot {
    /// Resources by name.
    pub resources: BTreeMap<String, Arc<XdsResource>>,
    /// The version of all the resources, worked out once: every stream of the proxy
    /// asks for it at every push, and most select every resource.
    version_of_all: OnceLock<String>,
}

impl PartialEq for TypeSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.resources == other.resources
    }
}

impl Eq for TypeSnapshot {}

impl TypeSnapshot {
    /// The resources `resources`.
    pub fn new(resources: BTreeMap<String, Arc<XdsResource>>) -> Self {
        Self {
            resources,
            version_of_all: OnceLock::new(),
        }
    }

    /// The version of the resources `selected` (some of this snapshot's, distinct, in
    /// name order): a hash of their names and versions, so equal content has an equal
    /// version in every process.
    pub fn version_of<'a>(
        &'a self,
        selected: impl ExactSizeIterator<Item = &'a Arc<XdsResource>>,
    ) -> String {
        if selected.len() == self.resources.len() {
            // Distinct resources of this snapshot, as many as it holds: all of them.
            return self
                .version_of_all
                .get_or_init(|| hash_versions(self.resources.values()))
                .clone();
        }
        hash_versions(selected)
    }
}

fn hash_versions<'a>(resources: impl Iterator<Item = &'a Arc<XdsResource>>) -> String {
    set_version(resources.map(|r| (r.name.as_str(), r.version.as_str())))
}

/// Everything one proxy is served, by type.
#[derive(Debug, Clone, Default)]
pub struct ProxySnapshot {
    /// Clusters, endpoints, listeners and route configurations.
    pub types: BTreeMap<ResourceType, TypeSnapshot>,
    /// What the compiler left out, and why.
    pub diagnostics: Vec<String>,
    /// Whether the proxy's resource exists; nothing is sent while it does not.
    pub exists: bool,
    /// The expiry (seconds since the epoch) of each secret served, by name.
    pub secret_expiry: BTreeMap<String, i64>,
    /// When the store change that produced this snapshot was seen (none for a proxy's
    /// first compilation): where the push and ACK latencies are measured from. Not part
    /// of the content: snapshots that differ only here are equal.
    pub changed_at: Option<Instant>,
}

impl PartialEq for ProxySnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.types == other.types
            && self.diagnostics == other.diagnostics
            && self.exists == other.exists
            && self.secret_expiry == other.secret_expiry
    }
}

impl Eq for ProxySnapshot {}

impl ProxySnapshot {
    /// This snapshot without its secrets, saying why, for a stream whose peer has not
    /// proved it is the proxy (key material never goes to such a peer).
    pub fn without_secrets(&self) -> ProxySnapshot {
        let mut withheld = self.clone();
        if let Some(secrets) = withheld.types.remove(&ResourceType::Secret)
            && !secrets.resources.is_empty()
        {
            withheld.diagnostics.push(format!(
                "{} secret(s) withheld: this stream's peer did not prove it is this proxy (a client certificate or token) and is not on this host",
                secrets.resources.len()
            ));
        }
        withheld.secret_expiry.clear();
        withheld
    }

    /// The resources of `kind`.
    pub fn of(&self, kind: ResourceType) -> &TypeSnapshot {
        static EMPTY: std::sync::OnceLock<TypeSnapshot> = std::sync::OnceLock::new();
        self.types
            .get(&kind)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeSnapshot::default))
    }
}

/// Shares encoded resources: a resource with the same type, name and version is held
/// once, however many proxies are served it. Clusters, listeners and route
/// configurations, which the compiler shares between proxies as `Arc`s where they are
/// the same, are also encoded once per `Arc` rather than once per proxy.
#[derive(Debug, Default)]
pub struct Interner {
    resources: Mutex<HashMap<(ResourceType, String, String), Weak<XdsResource>>>,
    clusters: Mutex<Encodings<Cluster>>,
    listeners: Mutex<Encodings<Listener>>,
    route_configs: Mutex<Encodings<RouteConfiguration>>,
}

/// Encoded messages by the address of the compiled message. The `Weak` keeps that
/// allocation, so the address cannot be reused by another message while the entry lives.
#[derive(Debug)]
struct Encodings<M> {
    entries: HashMap<usize, (Weak<M>, Arc<XdsResource>)>,
    /// Entries of dropped messages are pruned when the map reaches this size.
    prune_at: usize,
}

impl<M> Default for Encodings<M> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            prune_at: 0,
        }
    }
}

impl<M> Encodings<M> {
    /// The encoding of `message` (named `name`), made by `encode` if not held yet.
    fn get_or_encode(
        &mut self,
        name: &str,
        message: &Arc<M>,
        encode: impl FnOnce() -> Arc<XdsResource>,
    ) -> Arc<XdsResource> {
        let address = Arc::as_ptr(message) as usize;
        if let Some((weak, encoded)) = self.entries.get(&address)
            && Weak::as_ptr(weak) == Arc::as_ptr(message)
            && encoded.name == name
        {
            return encoded.clone();
        }
        let encoded = encode();
        self.entries
            .insert(address, (Arc::downgrade(message), encoded.clone()));
        if self.entries.len() >= self.prune_at {
            self.entries.retain(|_, (weak, _)| weak.strong_count() > 0);
            self.prune_at = (self.entries.len() * 2).max(1024);
        }
        encoded
    }
}

/// Each of `messages`, encoded.
fn encode_each<M: prost::Message>(messages: &BTreeMap<String, M>) -> Vec<EncodedResource> {
    messages
        .iter()
        .map(|(name, message)| EncodedResource::of(name, message))
        .collect()
}

/// The one `Arc` held for `encoded` (of type `kind`), made if there is none.
fn intern(
    held: &mut HashMap<(ResourceType, String, String), Weak<XdsResource>>,
    kind: ResourceType,
    encoded: EncodedResource,
) -> Arc<XdsResource> {
    let key = (kind, encoded.name, encoded.version);
    if let Some(shared) = held.get(&key).and_then(Weak::upgrade) {
        return shared;
    }
    let fresh = Arc::new(XdsResource {
        name: key.1.clone(),
        version: key.2.clone(),
        bytes: encoded.bytes,
    });
    held.insert(key, Arc::downgrade(&fresh));
    fresh
}

/// `encoded` (of type `kind`) by name, each the one `Arc` held for it.
fn intern_all(
    held: &mut HashMap<(ResourceType, String, String), Weak<XdsResource>>,
    kind: ResourceType,
    encoded: Vec<EncodedResource>,
) -> BTreeMap<String, Arc<XdsResource>> {
    encoded
        .into_iter()
        .map(|encoded| (encoded.name.clone(), intern(held, kind, encoded)))
        .collect()
}

/// `messages` (of type `kind`) by name, each encoded once per `Arc` and interned.
fn encode_shared<M: prost::Message>(
    held: &mut HashMap<(ResourceType, String, String), Weak<XdsResource>>,
    encodings: &mut Encodings<M>,
    kind: ResourceType,
    messages: &BTreeMap<String, Arc<M>>,
) -> BTreeMap<String, Arc<XdsResource>> {
    messages
        .iter()
        .map(|(name, message)| {
            let encoded = encodings.get_or_encode(name, message, || {
                intern(held, kind, EncodedResource::of(name, message.as_ref()))
            });
            (name.clone(), encoded)
        })
        .collect()
}

impl Interner {
    /// Encodes `config` into a snapshot, reusing resources already held.
    pub fn snapshot(&self, config: &ProxyConfig) -> ProxySnapshot {
        self.snapshot_filled(config, &config.endpoints, &BTreeMap::new())
    }

    /// [`Interner::snapshot`], with `endpoints` as the endpoint assignments (the
    /// compiled ones, with the endpoints the hub found for Cloud Map clusters) and
    /// `secrets` the secrets the hub got from the certificate source.
    pub fn snapshot_filled(
        &self,
        config: &ProxyConfig,
        endpoints: &BTreeMap<String, ClusterLoadAssignment>,
        secrets: &BTreeMap<String, Secret>,
    ) -> ProxySnapshot {
        let mut types = BTreeMap::new();
        let mut held = self.resources.lock();
        let mut clusters = self.clusters.lock();
        let mut listeners = self.listeners.lock();
        let mut route_configs = self.route_configs.lock();
        for kind in ResourceType::ALL {
            let resources = match kind {
                ResourceType::Cluster => {
                    encode_shared(&mut held, &mut clusters, kind, &config.clusters)
                }
                ResourceType::Endpoint => intern_all(&mut held, kind, encode_each(endpoints)),
                ResourceType::Secret => intern_all(&mut held, kind, encode_each(secrets)),
                ResourceType::Listener => {
                    encode_shared(&mut held, &mut listeners, kind, &config.listeners)
                }
                ResourceType::RouteConfiguration => {
                    encode_shared(&mut held, &mut route_configs, kind, &config.route_configs)
                }
            };
            types.insert(kind, TypeSnapshot::new(resources));
        }
        if held.len() > 1024 && held.len().is_multiple_of(1024) {
            held.retain(|_, weak| weak.strong_count() > 0);
        }
        ProxySnapshot {
            types,
            diagnostics: config.diagnostics.clone(),
            exists: config.exists,
            secret_expiry: BTreeMap::new(),
            changed_at: None,
        }
    }

    /// `assignments` encoded as an EDS snapshot, reusing resources already held.
    pub fn endpoints(&self, assignments: &BTreeMap<String, ClusterLoadAssignment>) -> TypeSnapshot {
        let mut held = self.resources.lock();
        TypeSnapshot::new(intern_all(
            &mut held,
            ResourceType::Endpoint,
            encode_each(assignments),
        ))
    }

    /// How many distinct resources are held.
    pub fn len(&self) -> usize {
        let mut held = self.resources.lock();
        held.retain(|_, weak| weak.strong_count() > 0);
        held.len()
    }

    /// Whether no resource is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::content_version;
    use prost::Message;

    fn config_with(clusters: &[(&str, &Arc<Cluster>)]) -> ProxyConfig {
        ProxyConfig {
            clusters: clusters
                .iter()
                .map(|(name, cluster)| (name.to_string(), Arc::clone(cluster)))
                .collect(),
            exists: true,
            ..Default::default()
        }
    }

    fn cluster(name: &str, port: u32) -> Arc<Cluster> {
        Arc::new(Cluster {
            name: name.into(),
            per_connection_buffer_limit_bytes: Some(
                envoy_types::pb::google::protobuf::UInt32Value { value: port },
            ),
            ..Default::default()
        })
    }

    fn resource(name: &str, version: &str) -> Arc<XdsResource> {
        Arc::new(XdsResource {
            name: name.into(),
            version: version.into(),
            bytes: Vec::new(),
        })
    }

    #[test]
    fn the_remembered_version_of_all_resources_is_the_hash_of_all_of_them() {
        let make = || {
            TypeSnapshot::new(
                [("a", "1"), ("b", "2"), ("c", "3")]
                    .into_iter()
                    .map(|(name, version)| (name.to_string(), resource(name, version)))
                    .collect(),
            )
        };
        let snapshot = make();
        let all = snapshot.version_of(snapshot.resources.values());
        assert_eq!(all, hash_versions(snapshot.resources.values()));
        // Asked again (now remembered), and as a selection of every name.
        let every: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|name| &snapshot.resources[*name])
            .collect();
        assert_eq!(snapshot.version_of(every.iter().copied()), all);
        // A selection of some is not the version of all.
        let some: Vec<_> = ["a", "c"]
            .iter()
            .map(|name| &snapshot.resources[*name])
            .collect();
        let of_some = snapshot.version_of(some.iter().copied());
        assert_ne!(of_some, all);
        assert_eq!(of_some, hash_versions(some.iter().copied()));
        // Whether the version was worked out yet does not make two snapshots differ.
        assert_eq!(snapshot, make());
        // Other content, another version.
        let other = TypeSnapshot::new(
            [("a", "1"), ("b", "2"), ("c", "4")]
                .into_iter()
                .map(|(name, version)| (name.to_string(), resource(name, version)))
                .collect(),
        );
        assert_ne!(other.version_of(other.resources.values()), all);
    }

    #[test]
    fn a_cluster_shared_between_proxies_is_encoded_once_and_exactly() {
        let interner = Interner::default();
        let shared = cluster("c", 1);
        let a = interner.snapshot(&config_with(&[("c", &shared)]));
        let b = interner.snapshot(&config_with(&[("c", &shared)]));
        let (from_a, from_b) = (
            &a.of(ResourceType::Cluster).resources["c"],
            &b.of(ResourceType::Cluster).resources["c"],
        );
        assert!(Arc::ptr_eq(from_a, from_b));
        assert_eq!(from_a.bytes, shared.encode_to_vec());
        assert_eq!(from_a.version, content_version(&shared.encode_to_vec()));

        // Another cluster of the same name but other content has its own encoding; an
        // equal one built separately shares the interned bytes.
        let changed = cluster("c", 2);
        let c = interner.snapshot(&config_with(&[("c", &changed)]));
        let from_c = &c.of(ResourceType::Cluster).resources["c"];
        assert_eq!(from_c.bytes, changed.encode_to_vec());
        assert_ne!(from_c.version, from_a.version);
        let equal = cluster("c", 1);
        let d = interner.snapshot(&config_with(&[("c", &equal)]));
        assert!(Arc::ptr_eq(
            &d.of(ResourceType::Cluster).resources["c"],
            from_a
        ));
    }

    #[test]
    fn a_dropped_cluster_is_never_mistaken_for_a_new_one() {
        let interner = Interner::default();
        for port in 0..3000 {
            // Each cluster is dropped before the next is made, so allocations would be
            // reused if the cache did not hold them.
            let fresh = cluster("c", port);
            let snapshot = interner.snapshot(&config_with(&[("c", &fresh)]));
            assert_eq!(
                snapshot.of(ResourceType::Cluster).resources["c"].bytes,
                fresh.encode_to_vec(),
                "port {port}"
            );
        }
    }
}
