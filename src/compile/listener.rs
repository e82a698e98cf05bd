//! Listeners and their network filters: HTTP connection managers (routes over RDS),
//! TCP proxies, TLS filter chains and access logs.

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, TrafficDirection, data_source, substitution_format_string,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::listener::v3::{
    ListenerFilterChainMatchPredicate, listener_filter_chain_match_predicate,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::r#type::v3::Int32Range;
use envoy_types::pb::google::protobuf::{
    BoolValue, Duration as ProtoDuration, Struct, UInt32Value, Value, value,
};
use prost::Message;

use crate::model::spec::LoggingFormat;

use super::envoy::{ads_config_source, any, socket_address, tls_transport_socket};

/// Where an access log goes and in which format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessLogFile {
    /// The file path (`/dev/stdout` is common).
    pub path: String,
    /// Text or JSON; Envoy's default format when `None`.
    pub format: Option<LoggingFormat>,
}

/// The file access log, encoded deterministically: a JSON format's keys are written in
/// sorted order, one map entry per encoded part (protobuf merges repeated parts), so the
/// same spec always gives the same bytes.
pub fn access_log(log: &AccessLogFile) -> AccessLog {
    let mut bytes = FileAccessLog {
        path: log.path.clone(),
        access_log_format: None,
    }
    .encode_to_vec();
    if let Some(format) = &log.format {
        if let Some(text) = &format.text {
            let mut text = text.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let format = SubstitutionFormatString {
                format: Some(substitution_format_string::Format::TextFormatSource(
                    DataSource {
                        specifier: Some(data_source::Specifier::InlineString(text)),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            };
            bytes.extend(with_format(format));
        } else if let Some(json) = &format.json {
            let mut pairs: Vec<(&str, &str)> = json
                .iter()
                .map(|p| (p.key.as_str(), p.value.as_str()))
                .collect();
            pairs.sort_unstable();
            pairs.dedup_by(|a, b| a.0 == b.0);
            for (key, value) in pairs {
                let mut fields = std::collections::HashMap::new();
                fields.insert(
                    key.to_string(),
                    Value {
                        kind: Some(value::Kind::StringValue(value.to_string())),
                    },
                );
                let format = SubstitutionFormatString {
                    format: Some(substitution_format_string::Format::JsonFormat(Struct {
                        fields,
                    })),
                    ..Default::default()
                };
                bytes.extend(with_format(format));
            }
        }
    }
    AccessLog {
        name: "envoy.access_loggers.file".to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(
            envoy_types::pb::google::protobuf::Any {
                type_url: <FileAccessLog as prost::Name>::type_url(),
                value: bytes,
            },
        )),
        ..Default::default()
    }
}

fn with_format(format: SubstitutionFormatString) -> Vec<u8> {
    FileAccessLog {
        path: String::new(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
    }
    .encode_to_vec()
}

/// An HTTP connection manager taking its routes from route configuration `route_config`
/// over ADS.
pub fn http_connection_manager(
    stat_prefix: &str,
    route_config: &str,
    access_logs: &[AccessLogFile],
) -> Filter {
    let manager = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        path_with_escaped_slashes_action:
            http_connection_manager::PathWithEscapedSlashesAction::KeepUnchanged as i32,
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".to_string(),
            ..Default::default()
        }],
        access_log: access_logs.iter().map(access_log).collect(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&manager))),
    }
}

/// A TCP proxy to one cluster, or split by weight over several (zero weights dropped:
/// Envoy's TCP proxy requires weights of at least 1).
pub fn tcp_proxy(
    stat_prefix: &str,
    clusters: &[(String, u32)],
    idle_timeout: Option<ProtoDuration>,
    access_logs: &[AccessLogFile],
) -> Filter {
    let live: Vec<&(String, u32)> = clusters.iter().filter(|(_, weight)| *weight > 0).collect();
    let specifier = match live.as_slice() {
        [(cluster, _)] => tcp_proxy::ClusterSpecifier::Cluster(cluster.clone()),
        _ => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: live
                .iter()
                .map(
                    |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name: name.clone(),
                        weight: *weight,
                        ..Default::default()
                    },
                )
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(specifier),
        idle_timeout,
        access_log: access_logs.iter().map(access_log).collect(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
    }
}

/// A filter chain for connections to `port` (as iptables preserved it), optionally only
/// for TLS or only for plaintext (PERMISSIVE splits the two).
pub fn chain(
    name: String,
    port: Option<u32>,
    transport: Option<&str>,
    filter: Filter,
    tls: Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
) -> FilterChain {
    FilterChain {
        name,
        filter_chain_match: Some(FilterChainMatch {
            destination_port: port.map(|value| UInt32Value { value }),
            transport_protocol: transport.unwrap_or_default().to_string(),
            ..Default::default()
        }),
        filters: vec![filter],
        transport_socket: tls,
        ..Default::default()
    }
}

/// The downstream TLS context as a transport socket.
pub fn downstream_tls(
    context: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext,
) -> envoy_types::pb::envoy::config::core::v3::TransportSocket {
    tls_transport_socket(context)
}

/// The listener filters App Mesh used: `original_dst` (so that filter chains see the port
/// iptables redirected from) and `tls_inspector` (for TLS/plaintext and SNI matches).
pub fn listener_filters(original_dst: bool, tls_inspector: bool) -> Vec<ListenerFilter> {
    let mut filters = Vec::new();
    if original_dst {
        filters.push(ListenerFilter {
            name: "envoy.filters.listener.original_dst".to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                &OriginalDst::default(),
            ))),
            ..Default::default()
        });
    }
    if tls_inspector {
        filters.push(ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        });
    }
    filters
}

/// The outbound listener's filters: `original_dst`, and `tls_inspector` only on
/// connections to port 443, where the `*.amazonaws.com` SNI chain needs it (no other
/// outbound chain matches on TLS). The inspector waits for the client's first bytes, so on
/// any other port it would stall protocols where the server speaks first (MySQL, SMTP,
/// …) until its 15 s timeout closes the connection; App Mesh's Envoy carried them (RM#62).
pub fn egress_listener_filters() -> Vec<ListenerFilter> {
    let mut filters = listener_filters(true, true);
    let only_443 = ListenerFilterChainMatchPredicate {
        rule: Some(listener_filter_chain_match_predicate::Rule::NotMatch(
            Box::new(ListenerFilterChainMatchPredicate {
                rule: Some(
                    listener_filter_chain_match_predicate::Rule::DestinationPortRange(Int32Range {
                        start: 443,
                        end: 444,
                    }),
                ),
            }),
        )),
    };
    if let Some(inspector) = filters.last_mut() {
        inspector.filter_disabled = Some(only_443);
    }
    filters
}

/// A listener on `0.0.0.0:port` (`[::]:port` accepting IPv4 too when IPv6 is preferred).
pub fn listener(
    name: String,
    port: u32,
    ipv6: bool,
    inbound: bool,
    filter_chains: Vec<FilterChain>,
    filters: Vec<ListenerFilter>,
    default_chain: Option<FilterChain>,
) -> Listener {
    let address = if ipv6 {
        socket_address("::", port, true)
    } else {
        socket_address("0.0.0.0", port, false)
    };
    Listener {
        name,
        address: Some(address),
        filter_chains,
        default_filter_chain: default_chain,
        listener_filters: filters,
        traffic_direction: if inbound {
            TrafficDirection::Inbound as i32
        } else {
            TrafficDirection::Outbound as i32
        },
        ..Default::default()
    }
}
