//! The reference check that the xDS hub runs on every proxy's configuration before it
//! publishes it (one that fails is never sent): every cluster that a route or
//! a TCP proxy names exists, every route configuration that an HTTP connection manager
//! names exists, and every EDS cluster has its endpoint assignment.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::config::route::v3::{route, route_action::ClusterSpecifier};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use prost::{Message, Name};

use super::output::ProxyConfig;

/// A name that one resource uses and no resource of the configuration defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{user} refers to {kind} {name}, which the configuration does not define")]
pub struct DanglingReference {
    /// The resource that refers.
    pub user: String,
    /// What kind of resource it refers to.
    pub kind: &'static str,
    /// The missing name.
    pub name: String,
}

/// Clusters that are defined by the Envoy bootstrap, not by the control plane.
const BOOTSTRAP_CLUSTERS: [&str; 1] = [super::names::SDS_CLUSTER];

/// Checks every reference inside `config`; returns all that dangle.
pub fn check_references(config: &ProxyConfig) -> Result<(), Vec<DanglingReference>> {
    let mut dangling = Vec::new();
    let need_cluster = |user: &str, name: &str, dangling: &mut Vec<DanglingReference>| {
        if !config.clusters.contains_key(name) && !BOOTSTRAP_CLUSTERS.contains(&name) {
            dangling.push(DanglingReference {
                user: user.to_string(),
                kind: "cluster",
                name: name.to_string(),
            });
        }
    };
    for (name, listener) in &config.listeners {
        let chains: Vec<&FilterChain> = listener
            .filter_chains
            .iter()
            .chain(&listener.default_filter_chain)
            .collect();
        for chain in chains {
            for filter in &chain.filters {
                let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
                    continue;
                };
                if any.type_url == HttpConnectionManager::type_url() {
                    let manager = HttpConnectionManager::decode(any.value.as_slice())
                        .expect("meshd encodes valid HCMs");
                    if let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier
                        && !config.route_configs.contains_key(&rds.route_config_name)
                    {
                        dangling.push(DanglingReference {
                            user: format!("listener {name}"),
                            kind: "route configuration",
                            name: rds.route_config_name.clone(),
                        });
                    }
                } else if any.type_url == TcpProxy::type_url() {
                    let proxy = TcpProxy::decode(any.value.as_slice())
                        .expect("meshd encodes valid TCP proxies");
                    match &proxy.cluster_specifier {
                        Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) => {
                            need_cluster(&format!("listener {name}"), cluster, &mut dangling)
                        }
                        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(weighted)) => {
                            for cluster in &weighted.clusters {
                                need_cluster(
                                    &format!("listener {name}"),
                                    &cluster.name,
                                    &mut dangling,
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }
    for (name, route_config) in &config.route_configs {
        for host in &route_config.virtual_hosts {
            for envoy_route in &host.routes {
                let Some(route::Action::Route(action)) = &envoy_route.action else {
                    continue;
                };
                let user = format!("route configuration {name}");
                match &action.cluster_specifier {
                    Some(ClusterSpecifier::Cluster(cluster)) => {
                        need_cluster(&user, cluster, &mut dangling)
                    }
                    Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                        for cluster in &weighted.clusters {
                            need_cluster(&user, &cluster.name, &mut dangling);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for (name, cluster) in &config.clusters {
        if cluster.cluster_discovery_type
            == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        {
            let service = cluster
                .eds_cluster_config
                .as_ref()
                .map(|eds| eds.service_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| name.clone());
            if !config.endpoints.contains_key(&service) {
                dangling.push(DanglingReference {
                    user: format!("cluster {name}"),
                    kind: "endpoint assignment",
                    name: service,
                });
            }
        }
    }
    if dangling.is_empty() {
        Ok(())
    } else {
        Err(dangling)
    }
}
