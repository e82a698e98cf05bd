//! Clusters: the local application behind each listener, each target virtual node's
//! listener as its clients see it, the pass-through clusters, and a gateway's
//! self-redirect cluster.

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlierDetection,
    circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    HealthCheck, Http2ProtocolOptions, RoutingPriority, TransportSocket, health_check,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, endpoint::HealthCheckConfig,
    lb_endpoint::HostIdentifier,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::envoy::r#type::v3::CodecClientType;
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::model::spec::{
    AwsCloudMapServiceDiscovery, DnsResponseType, HealthCheckPolicy, IpPreference,
    OutlierDetection, PortProtocol,
};

use super::envoy::{ads_config_source, any, duration, millis, seconds, socket_address};

/// App Mesh's circuit-breaker default: effectively unlimited.
pub const UNLIMITED: u32 = 2_147_483_647;

/// Connection limits for a cluster's circuit breakers; `None` means App Mesh's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most connections.
    pub max_connections: Option<i64>,
    /// Most requests waiting for a connection.
    pub max_pending_requests: Option<i64>,
    /// Most concurrent requests (HTTP/2 and gRPC).
    pub max_requests: Option<i64>,
}

fn limit(value: Option<i64>) -> Option<UInt32Value> {
    let value = value.map_or(UNLIMITED, |v| v.clamp(1, UNLIMITED as i64) as u32);
    Some(UInt32Value { value })
}

/// Circuit breakers at `limits`, App Mesh's 2147483647 elsewhere.
pub fn circuit_breakers(limits: PoolLimits) -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![Thresholds {
            priority: RoutingPriority::Default as i32,
            max_connections: limit(limits.max_connections),
            max_pending_requests: limit(limits.max_pending_requests),
            max_requests: limit(limits.max_requests),
            max_retries: limit(None),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Whether a listener protocol speaks HTTP/2 to its upstream.
pub fn is_http2(protocol: PortProtocol) -> bool {
    matches!(protocol, PortProtocol::Http2 | PortProtocol::Grpc)
}

fn http2_options(cluster: &mut Cluster) {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    cluster.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        any(&options),
    );
}

pub(super) fn endpoint(address: &str, port: u32, health_check_port: Option<u32>) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(address, port, false)),
            health_check_config: health_check_port.map(|port_value| HealthCheckConfig {
                port_value,
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(super) fn assignment(name: &str, endpoints: Vec<LbEndpoint>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Whether the IP preference wants IPv6 first.
pub fn prefers_ipv6(preference: Option<IpPreference>) -> bool {
    matches!(
        preference,
        Some(IpPreference::Ipv6Only | IpPreference::Ipv6Preferred)
    )
}

/// The local application behind a virtual node's listener: STATIC on loopback (`::1` when
/// IPv6 is preferred), 0.25 s to connect, the listener's connection pool as circuit breakers.
pub fn local(
    name: &str,
    port: i64,
    protocol: PortProtocol,
    limits: PoolLimits,
    ip: Option<IpPreference>,
) -> Cluster {
    let loopback = if prefers_ipv6(ip) { "::1" } else { "127.0.0.1" };
    static_loopback(name, loopback, port as u32, is_http2(protocol), limits)
}

/// A STATIC cluster of one loopback endpoint, 0.25 s to connect, `limits` as circuit
/// breakers, speaking HTTP/2 upstream when `http2`.
fn static_loopback(name: &str, host: &str, port: u32, http2: bool, limits: PoolLimits) -> Cluster {
    let mut cluster = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(millis(250)),
        load_assignment: Some(assignment(name, vec![endpoint(host, port, None)])),
        circuit_breakers: Some(circuit_breakers(limits)),
        ..Default::default()
    };
    if http2 {
        http2_options(&mut cluster);
    }
    cluster
}

/// How a target virtual node is found.
#[derive(Debug, Clone)]
pub enum Discovery<'a> {
    /// By DNS name.
    Dns {
        /// The hostname.
        hostname: &'a str,
        /// LOADBALANCER (one address, LOGICAL_DNS) or ENDPOINTS (every address, STRICT_DNS).
        response_type: Option<DnsResponseType>,
    },
    /// Through AWS Cloud Map: endpoints arrive by EDS.
    CloudMap(&'a AwsCloudMapServiceDiscovery),
}

/// Everything that shapes a client's cluster for one target listener.
#[derive(Debug, Clone)]
pub struct EgressTarget<'a> {
    /// The cluster's name.
    pub name: String,
    /// How the target is discovered.
    pub discovery: Discovery<'a>,
    /// The target listener's port.
    pub port: i64,
    /// The target listener's protocol.
    pub protocol: PortProtocol,
    /// The IP preference (the node's over the mesh's).
    pub ip_preference: Option<IpPreference>,
    /// The target listener's health check, run by the client.
    pub health_check: Option<&'a HealthCheckPolicy>,
    /// The target listener's outlier detection, applied by the client.
    pub outlier_detection: Option<&'a OutlierDetection>,
    /// TLS origination from the client policy.
    pub transport_socket: Option<TransportSocket>,
}

fn dns_lookup_family(preference: Option<IpPreference>) -> cluster::DnsLookupFamily {
    match preference {
        None | Some(IpPreference::Ipv6Preferred) => cluster::DnsLookupFamily::Auto,
        Some(IpPreference::Ipv4Preferred) => cluster::DnsLookupFamily::V4Preferred,
        Some(IpPreference::Ipv4Only) => cluster::DnsLookupFamily::V4Only,
        Some(IpPreference::Ipv6Only) => cluster::DnsLookupFamily::V6Only,
    }
}

fn health_check(policy: &HealthCheckPolicy) -> HealthCheck {
    let checker = match policy.protocol {
        PortProtocol::Http | PortProtocol::Http2 => {
            health_check::HealthChecker::HttpHealthCheck(health_check::HttpHealthCheck {
                path: policy.path.clone().unwrap_or_else(|| "/".into()),
                codec_client_type: if policy.protocol == PortProtocol::Http2 {
                    CodecClientType::Http2 as i32
                } else {
                    CodecClientType::Http1 as i32
                },
                ..Default::default()
            })
        }
        PortProtocol::Grpc => health_check::HealthChecker::GrpcHealthCheck(Default::default()),
        PortProtocol::Tcp => health_check::HealthChecker::TcpHealthCheck(Default::default()),
    };
    HealthCheck {
        timeout: Some(millis(policy.timeout_millis)),
        interval: Some(millis(policy.interval_millis)),
        unhealthy_threshold: Some(UInt32Value {
            value: policy.unhealthy_threshold as u32,
        }),
        healthy_threshold: Some(UInt32Value {
            value: policy.healthy_threshold as u32,
        }),
        health_checker: Some(checker),
        ..Default::default()
    }
}

fn is_positive(duration: &envoy_types::pb::google::protobuf::Duration) -> bool {
    duration.seconds > 0 || duration.nanos > 0
}

fn outlier_detection(policy: &OutlierDetection) -> EnvoyOutlierDetection {
    EnvoyOutlierDetection {
        consecutive_5xx: Some(UInt32Value {
            value: policy.max_server_errors.clamp(0, u32::MAX as i64) as u32,
        }),
        // Envoy requires both to be more than 0; a 0 leaves Envoy's default (10 s, 30 s).
        interval: duration(&policy.interval).filter(is_positive),
        base_ejection_time: duration(&policy.base_ejection_duration).filter(is_positive),
        max_ejection_percent: Some(UInt32Value {
            value: policy.max_ejection_percent as u32,
        }),
        ..Default::default()
    }
}

/// A client's cluster for a target listener. Cloud Map targets are EDS clusters; their
/// assignment is compiled separately ([`cloud_map_assignment`]).
pub fn egress(target: &EgressTarget<'_>) -> Cluster {
    let health_check_port = target
        .health_check
        .and_then(|check| check.port)
        .map(|port| port as u32);
    let mut cluster = Cluster {
        name: target.name.clone(),
        connect_timeout: Some(seconds(1)),
        circuit_breakers: Some(circuit_breakers(PoolLimits::default())),
        health_checks: target.health_check.map(health_check).into_iter().collect(),
        outlier_detection: target.outlier_detection.map(outlier_detection),
        transport_socket: target.transport_socket.clone(),
        ..Default::default()
    };
    match &target.discovery {
        Discovery::Dns {
            hostname,
            response_type,
        } => {
            let kind = match response_type {
                Some(DnsResponseType::Endpoints) => cluster::DiscoveryType::StrictDns,
                _ => cluster::DiscoveryType::LogicalDns,
            };
            cluster.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
            cluster.dns_lookup_family = dns_lookup_family(target.ip_preference) as i32;
            cluster.load_assignment = Some(assignment(
                &target.name,
                vec![endpoint(hostname, target.port as u32, health_check_port)],
            ));
        }
        Discovery::CloudMap(_) => {
            cluster.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            ));
            cluster.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(ads_config_source()),
                service_name: target.name.clone(),
            });
        }
    }
    if is_http2(target.protocol) {
        http2_options(&mut cluster);
    }
    cluster
}

/// The endpoints of a Cloud Map cluster as compiled: none. The hub fills them from the
/// endpoint source ([`super::cloud_map::assignment`]).
pub fn cloud_map_assignment(name: &str) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        ..Default::default()
    }
}

/// A pass-through cluster to the connection's original destination.
pub fn original_destination(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        connect_timeout: Some(seconds(1)),
        circuit_breakers: Some(circuit_breakers(PoolLimits::default())),
        ..Default::default()
    }
}

/// A gateway's route back into its own egress listener (127.0.0.1:15001).
pub fn self_redirect(name: &str, http2: bool, limits: PoolLimits) -> Cluster {
    static_loopback(name, "127.0.0.1", super::names::EGRESS_PORT, http2, limits)
}
