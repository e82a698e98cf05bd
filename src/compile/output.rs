//! What compiling one proxy produces: its Envoy resources by type and name, plus the
//! problems found on the way (a resource that names a missing one, a feature that
//! cannot work outside AWS). Problems never stop compilation; they leave out what
//! they concern and are reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::Message;
use sha2::{Digest, Sha256};

use super::cloud_map::CloudMapTarget;
use super::proxy::ProxyId;
use crate::certificates::SecretQuery;

/// One Envoy proxy's complete configuration, each map sorted by resource name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    /// Listeners (LDS); a virtual node's outbound listener is shared between proxies.
    pub listeners: BTreeMap<String, Arc<Listener>>,
    /// Clusters (CDS); egress clusters are shared between proxies.
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// Route configurations (RDS); a virtual node's outbound ones are shared between
    /// proxies.
    pub route_configs: BTreeMap<String, Arc<RouteConfiguration>>,
    /// Endpoint assignments of EDS clusters: for Cloud Map clusters, an empty one that
    /// the hub fills from the endpoint source (see `cloud_map`).
    pub endpoints: BTreeMap<String, ClusterLoadAssignment>,
    /// The EDS clusters whose endpoints come from Cloud Map, and what they ask for.
    pub cloud_map: BTreeMap<String, CloudMapTarget>,
    /// The SDS secrets over ADS that listeners and clusters name (ACM certificates and
    /// trust), by secret name: the hub serves them from the certificate source.
    pub secrets: BTreeMap<String, SecretQuery>,
    /// What was left out, and why.
    pub diagnostics: Vec<String>,
    /// Whether the proxy's mesh and virtual node (or gateway) exist. A proxy whose
    /// resource does not exist is sent nothing: it keeps what it has until it does.
    pub exists: bool,
}

/// The xDS resource types, in the order Envoy wants them applied (make before break:
/// clusters and endpoints before the listeners and routes that use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// CDS.
    Cluster,
    /// EDS.
    Endpoint,
    /// SDS (secrets over ADS: ACM certificates and trust).
    Secret,
    /// LDS.
    Listener,
    /// RDS.
    RouteConfiguration,
}

impl ResourceType {
    /// Every type, in make-before-break order.
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Secret,
        ResourceType::Listener,
        ResourceType::RouteConfiguration,
    ];

    /// The type URL of the resource's message.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
        }
    }
}

/// One encoded resource with its content version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedResource {
    /// The resource's name.
    pub name: String,
    /// The protobuf encoding.
    pub bytes: Vec<u8>,
    /// A hash of the bytes: equal content, equal version, whatever the process or time.
    pub version: String,
}

impl EncodedResource {
    /// `message`, named `name`, encoded with its content version.
    pub fn of(name: &str, message: &impl Message) -> Self {
        let bytes = message.encode_to_vec();
        EncodedResource {
            name: name.to_string(),
            version: content_version(&bytes),
            bytes,
        }
    }
}

/// The content version of encoded bytes: the first 16 hex digits of their SHA-256.
pub fn content_version(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The version of a set of resources, from their names and content versions in order:
/// equal sets have equal versions in every process.
pub fn set_version<'a>(resources: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (name, version) in resources {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(version.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..8])
}

fn encode<'a, M: Message + 'a>(
    map: impl Iterator<Item = (&'a String, &'a M)>,
) -> Vec<EncodedResource> {
    map.map(|(name, message)| EncodedResource::of(name, message))
        .collect()
}

impl ProxyConfig {
    /// The resources of `kind`, encoded, sorted by name.
    pub fn encoded(&self, kind: ResourceType) -> Vec<EncodedResource> {
        match kind {
            ResourceType::Cluster => encode(self.clusters.iter().map(|(n, c)| (n, c.as_ref()))),
            ResourceType::Endpoint => encode(self.endpoints.iter()),
            // Secrets are not compiled: the hub serves them from the certificate source.
            ResourceType::Secret => Vec::new(),
            ResourceType::Listener => encode(self.listeners.iter().map(|(n, l)| (n, l.as_ref()))),
            ResourceType::RouteConfiguration => {
                encode(self.route_configs.iter().map(|(n, r)| (n, r.as_ref())))
            }
        }
    }

    /// A version for a whole resource type: the hash of its resources' names and versions.
    pub fn type_version(&self, kind: ResourceType) -> String {
        let encoded = self.encoded(kind);
        set_version(
            encoded
                .iter()
                .map(|r| (r.name.as_str(), r.version.as_str())),
        )
    }
}

/// A proxy and the configuration compiled for it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledProxy {
    /// Who the configuration is for.
    pub proxy: ProxyId,
    /// The configuration.
    pub config: ProxyConfig,
}
