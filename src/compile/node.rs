//! A virtual node's sidecar: the inbound listener (port 15000) in front of the local
//! application, and the outbound listener (port 15001) to its backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};

use crate::model::spec::*;

use super::backend::{PortService, service_ports};
use super::cluster::{self, PoolLimits};
use super::context::Context;
use super::envoy::duration;
use super::listener::{self, AccessLogFile};
use super::names;
use super::route;
use super::shared_sides::EgressKey;
use super::tls;

/// Access logs of a virtual node or gateway spec's `logging`.
pub fn access_logs(path: Option<&str>, format: Option<&LoggingFormat>) -> Vec<AccessLogFile> {
    path.map(|path| AccessLogFile {
        path: path.to_string(),
        format: format.cloned(),
    })
    .into_iter()
    .collect()
}

/// The filter chains of one inbound listener port under its TLS mode: STRICT gives one
/// TLS chain, PERMISSIVE a TLS chain and a plaintext chain told apart by the TLS
/// inspector, DISABLED (or no TLS) one plaintext chain.
pub fn tls_chains(
    ctx: &mut Context<'_>,
    what: &str,
    port: u32,
    filter: Filter,
    tls: Option<&ListenerTls>,
) -> Vec<FilterChain> {
    let plain = |name: String, transport: Option<&str>, filter: Filter| {
        listener::chain(name, Some(port), transport, filter, None)
    };
    let Some(tls_spec) = tls.filter(|t| t.mode != ListenerTlsMode::Disabled) else {
        return vec![plain(format!("{what}_{port}"), None, filter)];
    };
    let context = match tls::downstream(&tls_spec.certificate, tls_spec.validation.as_ref()) {
        Ok(context) => context,
        Err(err) => {
            ctx.diagnose(format!("listener TLS on port {port}: {err}"));
            return match tls_spec.mode {
                ListenerTlsMode::Permissive => vec![plain(
                    format!("{what}_{port}_plaintext"),
                    Some("raw_buffer"),
                    filter,
                )],
                _ => {
                    ctx.diagnose(format!("port {port} has STRICT TLS that cannot be served; its filter chain is left out"));
                    Vec::new()
                }
            };
        }
    };
    let socket = listener::downstream_tls(&context);
    match tls_spec.mode {
        ListenerTlsMode::Permissive => vec![
            listener::chain(
                format!("{what}_{port}_tls"),
                Some(port),
                Some("tls"),
                filter.clone(),
                Some(socket),
            ),
            plain(
                format!("{what}_{port}_plaintext"),
                Some("raw_buffer"),
                filter,
            ),
        ],
        _ => vec![listener::chain(
            format!("{what}_{port}"),
            Some(port),
            None,
            filter,
            Some(socket),
        )],
    }
}

fn pool_limits(pool: Option<&VirtualNodeConnectionPool>) -> PoolLimits {
    let Some(pool) = pool else {
        return PoolLimits::default();
    };
    PoolLimits {
        max_connections: pool
            .tcp
            .as_ref()
            .map(|t| t.max_connections)
            .or(pool.http.as_ref().map(|h| h.max_connections)),
        max_pending_requests: pool.http.as_ref().and_then(|h| h.max_pending_requests),
        max_requests: pool
            .http2
            .as_ref()
            .map(|h| h.max_requests)
            .or(pool.grpc.as_ref().map(|g| g.max_requests)),
    }
}

fn listener_http_timeout(listener: &Listener) -> Option<HttpTimeout> {
    let timeout = listener.timeout.as_ref()?;
    match listener.port_mapping.protocol {
        PortProtocol::Http => timeout.http.clone(),
        PortProtocol::Http2 => timeout.http2.clone(),
        PortProtocol::Grpc => timeout.grpc.as_ref().map(route::grpc_timeout),
        PortProtocol::Tcp => None,
    }
}

/// Compiles virtual node `name`'s sidecar.
pub fn compile(ctx: &mut Context<'_>, name: &str) {
    let Some(node) = ctx.virtual_node(name) else {
        ctx.diagnose(format!(
            "virtual node {name} does not exist in mesh {}",
            ctx.mesh
        ));
        return;
    };
    let ip = ctx.ip_preference(Some(node));
    let ipv6 = cluster::prefers_ipv6(ip);
    let file = node
        .logging
        .as_ref()
        .and_then(|l| l.access_log.as_ref())
        .and_then(|a| a.file.as_ref());
    let logs = access_logs(
        file.map(|f| f.path.as_str()),
        file.and_then(|f| f.format.as_ref()),
    );
    ctx.ingress_side(name, |ctx| ingress(ctx, name, node, ip, ipv6, &logs));
    let mesh = ctx.mesh;
    ctx.egress_side(
        || {
            EgressKey::new(
                mesh,
                node.backends.as_ref(),
                node.backend_defaults.as_ref(),
                ipv6,
                &logs,
            )
        },
        |ctx| egress(ctx, node, ipv6, &logs),
    );
}

fn ingress(
    ctx: &mut Context<'_>,
    name: &str,
    node: &VirtualNodeSpec,
    ip: Option<IpPreference>,
    ipv6: bool,
    logs: &[AccessLogFile],
) {
    let listeners = node.listeners.as_deref().unwrap_or_default();
    if listeners.is_empty() {
        return;
    }
    let mut chains = Vec::new();
    let mut inspect_tls = false;
    for listener in listeners {
        let port = listener.port_mapping.port;
        let protocol = listener.port_mapping.protocol;
        let local = names::local_cluster(ctx.mesh, name, protocol.as_str(), port);
        ctx.out.clusters.insert(
            local.clone(),
            Arc::new(cluster::local(
                &local,
                port,
                protocol,
                pool_limits(listener.connection_pool.as_ref()),
                ip,
            )),
        );
        let stat_prefix = if listeners.len() > 1 {
            format!("ingress.{}.{port}", protocol.as_str())
        } else {
            "ingress".to_string()
        };
        let filter = if protocol == PortProtocol::Tcp {
            let idle = listener
                .timeout
                .as_ref()
                .and_then(|t| t.tcp.as_ref())
                .and_then(|t| t.idle.as_ref())
                .and_then(duration);
            listener::tcp_proxy(&stat_prefix, &[(local, 100)], idle, logs)
        } else {
            let route_config = names::ingress_route_config(protocol.as_str(), port);
            let timeout = listener_http_timeout(listener);
            let routes = vec![route::catch_all(name, &local, timeout.as_ref())];
            ctx.out.route_configs.insert(
                route_config.clone(),
                Arc::new(RouteConfiguration {
                    name: route_config.clone(),
                    virtual_hosts: vec![VirtualHost {
                        name: name.to_string(),
                        domains: vec!["*".into()],
                        routes,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            );
            listener::http_connection_manager(&stat_prefix, &route_config, logs)
        };
        inspect_tls |= listener
            .tls
            .as_ref()
            .is_some_and(|t| t.mode == ListenerTlsMode::Permissive);
        chains.extend(tls_chains(
            ctx,
            "ingress",
            port as u32,
            filter,
            listener.tls.as_ref(),
        ));
    }
    let listener_name = names::ingress_listener(names::INGRESS_PORT);
    if chains.is_empty() {
        // Envoy rejects a listener without filter chains.
        ctx.diagnose(format!(
            "no listener of virtual node {name} can be served; {listener_name} is left out"
        ));
        return;
    }
    ctx.out.listeners.insert(
        listener_name.clone(),
        Arc::new(listener::listener(
            listener_name,
            names::INGRESS_PORT,
            ipv6,
            true,
            chains,
            listener::listener_filters(true, inspect_tls),
            None,
        )),
    );
}

/// What one outbound port serves, gathered over all backends.
enum EgressPort {
    Http {
        protocol: PortProtocol,
        hosts: Vec<VirtualHost>,
    },
    Tcp {
        service: String,
        clusters: Vec<(String, u32)>,
        idle: Option<envoy_types::pb::google::protobuf::Duration>,
    },
}

fn client_policy<'a>(
    node: &'a VirtualNodeSpec,
    backend: &'a VirtualServiceBackend,
) -> Option<&'a ClientPolicy> {
    backend.client_policy.as_ref().or(node
        .backend_defaults
        .as_ref()
        .and_then(|d| d.client_policy.as_ref()))
}

fn egress(ctx: &mut Context<'_>, node: &VirtualNodeSpec, ipv6: bool, logs: &[AccessLogFile]) {
    let mut backends: Vec<&VirtualServiceBackend> = node
        .backends
        .iter()
        .flatten()
        .filter_map(|b| b.virtual_service.as_ref())
        .collect();
    backends.sort_by(|a, b| a.virtual_service_name.cmp(&b.virtual_service_name));
    backends.dedup_by(|a, b| a.virtual_service_name == b.virtual_service_name);
    let mut ports: BTreeMap<i64, EgressPort> = BTreeMap::new();
    for backend in backends {
        let service = backend.virtual_service_name.as_str();
        for port in service_ports(ctx, service, client_policy(node, backend), None) {
            match (ports.get_mut(&port.port), port.service) {
                (None, PortService::Http(routes)) => {
                    ports.insert(port.port, EgressPort::Http { protocol: port.protocol, hosts: vec![virtual_host(service, port.port, routes)] });
                }
                (Some(EgressPort::Http { hosts, .. }), PortService::Http(routes)) => hosts.push(virtual_host(service, port.port, routes)),
                (None, PortService::Tcp(clusters, idle)) => {
                    ports.insert(port.port, EgressPort::Tcp { service: service.to_string(), clusters, idle });
                }
                (Some(_), _) => ctx.diagnose(format!(
                    "port {} already carries another backend of a different protocol; virtual service {service} is left out on it",
                    port.port
                )),
            }
        }
    }
    let mut chains = Vec::new();
    for (port, egress_port) in ports {
        let filter = match egress_port {
            EgressPort::Http { protocol, hosts } => {
                let route_config = names::egress_route_config(protocol.as_str(), port);
                ctx.out.route_configs.insert(
                    route_config.clone(),
                    Arc::new(RouteConfiguration {
                        name: route_config.clone(),
                        virtual_hosts: hosts,
                        ..Default::default()
                    }),
                );
                listener::http_connection_manager("egress", &route_config, logs)
            }
            EgressPort::Tcp {
                service,
                clusters,
                idle,
            } => {
                if clusters.iter().all(|(_, weight)| *weight == 0) {
                    ctx.diagnose(format!(
                        "virtual service {service} has no TCP target with a weight on port {port}"
                    ));
                    continue;
                }
                listener::tcp_proxy("egress", &clusters, idle, logs)
            }
        };
        chains.push(listener::chain(
            format!("egress_{port}"),
            Some(port as u32),
            None,
            filter,
            None,
        ));
    }
    let amazonaws = names::amazonaws_cluster(ctx.mesh);
    ctx.out.clusters.insert(
        amazonaws.clone(),
        Arc::new(cluster::original_destination(&amazonaws)),
    );
    chains.push(FilterChain {
        name: "egress_amazonaws".into(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 443 }),
            server_names: vec!["*.amazonaws.com".into()],
            ..Default::default()
        }),
        filters: vec![listener::tcp_proxy(
            "egress",
            &[(amazonaws, 100)],
            None,
            logs,
        )],
        ..Default::default()
    });
    let allow_all = ctx
        .mesh_spec()
        .and_then(|m| m.egress_filter.as_ref())
        .is_some_and(|f| f.r#type == EgressFilterType::AllowAll);
    let default_chain = allow_all.then(|| {
        let passthrough = names::allow_all_cluster(ctx.mesh);
        ctx.out.clusters.insert(
            passthrough.clone(),
            Arc::new(cluster::original_destination(&passthrough)),
        );
        FilterChain {
            name: "egress_allow_all".into(),
            filters: vec![listener::tcp_proxy(
                "egress",
                &[(passthrough, 100)],
                None,
                logs,
            )],
            ..Default::default()
        }
    });
    let name = names::egress_listener();
    ctx.out.listeners.insert(
        name.clone(),
        Arc::new(listener::listener(
            name,
            names::EGRESS_PORT,
            ipv6,
            false,
            chains,
            listener::egress_listener_filters(),
            default_chain,
        )),
    );
}

/// The virtual host of a virtual service on an outbound port: `name` and `name:port`.
pub fn virtual_host(
    service: &str,
    port: i64,
    routes: Vec<envoy_types::pb::envoy::config::route::v3::Route>,
) -> VirtualHost {
    VirtualHost {
        name: service.to_string(),
        domains: vec![service.to_string(), format!("{service}:{port}")],
        routes,
        ..Default::default()
    }
}
