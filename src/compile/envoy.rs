//! Small builders for Envoy's protobuf shapes that every part of the compiler uses:
//! typed `Any`s, durations, addresses, transport sockets and config sources.

use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, GrpcService,
    SocketAddress, TransportSocket, address, config_source, socket_address, transport_socket,
};
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};
use prost::{Message, Name};

use crate::model::spec::{Duration, DurationUnit};

use super::names::SDS_CLUSTER;

/// Packs `message` into an `Any` with its type URL.
pub fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// A protobuf duration of `millis` milliseconds.
pub fn millis(millis: i64) -> ProtoDuration {
    ProtoDuration {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf duration of `seconds` seconds.
pub fn seconds(seconds: i64) -> ProtoDuration {
    millis(seconds * 1000)
}

/// An App Mesh duration (`{value, unit}`) in milliseconds; `None` when it is incomplete.
pub fn duration_millis(duration: &Duration) -> Option<i64> {
    let value = duration.value?;
    Some(match duration.unit? {
        DurationUnit::S => value.saturating_mul(1000),
        DurationUnit::Ms => value,
    })
}

/// An App Mesh duration as a protobuf duration.
pub fn duration(duration: &Duration) -> Option<ProtoDuration> {
    duration_millis(duration).map(millis)
}

/// A TCP socket address.
pub fn socket_address(ip: &str, port: u32, ipv4_compat: bool) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            protocol: socket_address::Protocol::Tcp as i32,
            address: ip.to_string(),
            ipv4_compat,
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// Config over the ADS stream the resource itself arrived on.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// Config from the SDS server behind the bootstrap's Unix-socket cluster (as App Mesh's
/// Envoy image defines it when `APPMESH_SDS_SOCKET_PATH` is set).
pub fn sds_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
            ApiConfigSource {
                api_type: envoy_types::pb::envoy::config::core::v3::api_config_source::ApiType::Grpc
                    as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                        cluster_name: SDS_CLUSTER.to_string(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// A transport socket named `envoy.transport_sockets.tls` with `context`.
pub fn tls_transport_socket<M: Message + Name>(context: &M) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(context))),
    }
}
