//! The endpoints of a virtual node found through AWS Cloud Map: what a client's EDS
//! cluster asks the endpoint source for ([`CloudMapTarget`]), and the assignment built
//! from the instances the source found ([`assignment`]).
//!
//! Exactly as App Mesh did: the instances of the node's `namespaceName`/`serviceName`
//! that carry every one of its `attributes`; each instance's address is its
//! `AWS_INSTANCE_IPV4` or `AWS_INSTANCE_IPV6` attribute as the IP preference (the node's,
//! else the mesh's) asks, its port `AWS_INSTANCE_PORT`, else the target listener's port.
//! An instance with no address of an allowed family, or an unreadable port, is left out.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use crate::discovery::{DiscoveredInstance, ServiceQuery};
use crate::model::spec::IpPreference;

/// The attribute that holds an instance's IPv4 address.
pub const IPV4_ATTRIBUTE: &str = "AWS_INSTANCE_IPV4";
/// The attribute that holds an instance's IPv6 address.
pub const IPV6_ATTRIBUTE: &str = "AWS_INSTANCE_IPV6";
/// The attribute that holds an instance's port.
pub const PORT_ATTRIBUTE: &str = "AWS_INSTANCE_PORT";

/// What one EDS cluster's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudMapTarget {
    /// The Cloud Map service and the attributes its instances must carry.
    pub query: ServiceQuery,
    /// Which address family to use (the node's preference, else the mesh's).
    pub ip_preference: Option<IpPreference>,
    /// The target listener's port: the port of instances without `AWS_INSTANCE_PORT`.
    pub port: i64,
    /// The port the client's health check of the target listener probes, if not the
    /// endpoint's own.
    pub health_check_port: Option<u32>,
}

impl CloudMapTarget {
    /// The target for a node's Cloud Map service discovery.
    pub fn new(
        namespace: &str,
        service: &str,
        attributes: impl IntoIterator<Item = (String, String)>,
        ip_preference: Option<IpPreference>,
        port: i64,
        health_check_port: Option<u32>,
    ) -> Self {
        Self {
            query: ServiceQuery {
                namespace: namespace.to_string(),
                service: service.to_string(),
                attributes: attributes.into_iter().collect(),
            },
            ip_preference,
            port,
            health_check_port,
        }
    }
}

/// The address of `instance` that `preference` allows, IPv4 first unless IPv6 is
/// preferred; with no preference, IPv4 first.
fn address(
    attributes: &BTreeMap<String, String>,
    preference: Option<IpPreference>,
) -> Option<String> {
    let v4 = || {
        attributes
            .get(IPV4_ATTRIBUTE)
            .and_then(|value| value.parse::<Ipv4Addr>().ok())
            .map(|ip| ip.to_string())
    };
    let v6 = || {
        attributes
            .get(IPV6_ATTRIBUTE)
            .and_then(|value| value.parse::<Ipv6Addr>().ok())
            .map(|ip| ip.to_string())
    };
    match preference {
        Some(IpPreference::Ipv4Only) => v4(),
        Some(IpPreference::Ipv6Only) => v6(),
        Some(IpPreference::Ipv6Preferred) => v6().or_else(v4),
        Some(IpPreference::Ipv4Preferred) | None => v4().or_else(v6),
    }
}

/// The port of an instance: `AWS_INSTANCE_PORT` when it holds one (1–65535), the
/// listener's port when the attribute is absent, nothing when it holds anything else.
fn port(attributes: &BTreeMap<String, String>, listener_port: i64) -> Option<u32> {
    match attributes.get(PORT_ATTRIBUTE) {
        None => u32::try_from(listener_port).ok(),
        Some(value) => value
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(u32::from),
    }
}

/// The assignment of EDS cluster `cluster` for `target`, from the instances the source
/// found: one endpoint per distinct address and port, in address order (sources answer
/// in any order; the same instances always give the same bytes).
pub fn assignment(
    cluster: &str,
    target: &CloudMapTarget,
    instances: &[DiscoveredInstance],
) -> ClusterLoadAssignment {
    let mut endpoints: Vec<(String, u32)> = instances
        .iter()
        .filter(|instance| target.query.selects(instance))
        .filter_map(|instance| {
            Some((
                address(&instance.attributes, target.ip_preference)?,
                port(&instance.attributes, target.port)?,
            ))
        })
        .collect();
    endpoints.sort();
    endpoints.dedup();
    super::cluster::assignment(
        cluster,
        endpoints
            .iter()
            .map(|(address, port)| {
                super::cluster::endpoint(address, *port, target.health_check_port)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, attributes: &[(&str, &str)]) -> DiscoveredInstance {
        DiscoveredInstance {
            id: id.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn addresses(assignment: &ClusterLoadAssignment) -> Vec<String> {
        use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
        use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
        assignment
            .endpoints
            .iter()
            .flat_map(|locality| &locality.lb_endpoints)
            .map(|lb| {
                let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                    panic!("not an endpoint")
                };
                let Some(address::Address::SocketAddress(socket)) =
                    endpoint.address.as_ref().and_then(|a| a.address.as_ref())
                else {
                    panic!("not a socket address")
                };
                let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier
                else {
                    panic!("no port")
                };
                format!("{}:{port}", socket.address)
            })
            .collect()
    }

    #[test]
    fn instances_become_endpoints_by_attributes_preference_and_port() {
        let instances = [
            instance("c", &[("AWS_INSTANCE_IPV4", "10.0.0.3"), ("version", "v1")]),
            instance(
                "a",
                &[
                    ("AWS_INSTANCE_IPV4", "10.0.0.1"),
                    ("AWS_INSTANCE_IPV6", "fd00::1"),
                    ("AWS_INSTANCE_PORT", "9090"),
                    ("version", "v1"),
                ],
            ),
            instance("b", &[("AWS_INSTANCE_IPV6", "fd00::2"), ("version", "v1")]),
            instance("d", &[("AWS_INSTANCE_IPV4", "10.0.0.4"), ("version", "v2")]),
            instance(
                "e",
                &[("AWS_INSTANCE_IPV4", "not an address"), ("version", "v1")],
            ),
            instance(
                "f",
                &[
                    ("AWS_INSTANCE_IPV4", "10.0.0.6"),
                    ("AWS_INSTANCE_PORT", "0"),
                    ("version", "v1"),
                ],
            ),
        ];
        let target = |preference| {
            CloudMapTarget::new(
                "ns",
                "svc",
                [("version".to_string(), "v1".to_string())],
                preference,
                8080,
                None,
            )
        };
        assert_eq!(
            addresses(&assignment("cds", &target(None), &instances)),
            ["10.0.0.1:9090", "10.0.0.3:8080", "fd00::2:8080"]
        );
        assert_eq!(
            addresses(&assignment(
                "cds",
                &target(Some(IpPreference::Ipv4Only)),
                &instances
            )),
            ["10.0.0.1:9090", "10.0.0.3:8080"]
        );
        assert_eq!(
            addresses(&assignment(
                "cds",
                &target(Some(IpPreference::Ipv6Preferred)),
                &instances
            )),
            ["10.0.0.3:8080", "fd00::1:9090", "fd00::2:8080"]
        );
        assert_eq!(
            addresses(&assignment(
                "cds",
                &target(Some(IpPreference::Ipv6Only)),
                &instances
            )),
            ["fd00::1:9090", "fd00::2:8080"]
        );
        let mut reversed = instances.to_vec();
        reversed.reverse();
        assert_eq!(
            assignment("cds", &target(None), &reversed),
            assignment("cds", &target(None), &instances),
            "the order the source answers in does not matter"
        );
    }
}
