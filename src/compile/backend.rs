//! A virtual service as its clients reach it: for each port its provider listens on,
//! the routes (HTTP family) or the weighted clusters (TCP) that serve it.

use envoy_types::pb::envoy::config::route::v3::{Route, RouteMatch};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

use crate::model::spec::*;

use super::context::Context;
use super::envoy::duration;
use super::route::{self, ResolvedTarget};

/// How one port of a virtual service is served.
#[derive(Debug, Clone)]
pub enum PortService {
    /// HTTP, HTTP/2 or gRPC: Envoy routes in match order.
    Http(Vec<Route>),
    /// TCP: clusters with weights, and the idle timeout.
    Tcp(Vec<(String, u32)>, Option<ProtoDuration>),
}

/// One port of a virtual service.
#[derive(Debug, Clone)]
pub struct ServicePort {
    /// The port clients connect to (the router's or provider node's listener port).
    pub port: i64,
    /// The listener protocol on that port.
    pub protocol: PortProtocol,
    /// How it is served.
    pub service: PortService,
}

/// App Mesh's retry policy for routes that set none: two retries on 503, connection
/// failures, refused streams and resets (and gRPC `unavailable`).
pub fn default_retry(grpc: bool) -> envoy_types::pb::envoy::config::route::v3::RetryPolicy {
    let policy = GrpcRetryPolicy {
        grpc_retry_events: grpc.then(|| vec![GrpcRetryPolicyEvent::Unavailable]),
        http_retry_events: None,
        max_retries: 2,
        per_retry_timeout: Duration {
            unit: Some(DurationUnit::S),
            value: Some(15),
        },
        tcp_retry_events: Some(vec![TcpRetryPolicyEvent::ConnectionError]),
    };
    let mut retry = route::grpc_retry(&policy);
    retry.per_try_timeout = None;
    let mut conditions: Vec<&str> = retry
        .retry_on
        .split(',')
        .filter(|c| !c.is_empty())
        .collect();
    conditions.extend(["refused-stream", "reset", "retriable-status-codes"]);
    conditions.sort_unstable();
    conditions.dedup();
    retry.retry_on = conditions.join(",");
    retry.retriable_status_codes = vec![503];
    retry
}

/// Orders routes as Envoy must try them: App Mesh priority first (routes without one
/// after all that have one), then the more specific match first (exact path, then regex,
/// then longer prefix), then by name.
pub fn route_order(
    priority: Option<i64>,
    path_exact: bool,
    path_regex: bool,
    prefix: Option<&str>,
    name: &str,
) -> (i64, u8, usize, String) {
    let specificity = if path_exact {
        0
    } else if path_regex {
        1
    } else if prefix.is_some() {
        2
    } else {
        3
    };
    let longer_first = usize::MAX - prefix.map_or(0, str::len);
    (
        priority.unwrap_or(i64::MAX),
        specificity,
        longer_first,
        name.to_string(),
    )
}

fn http_route_order(
    name: &str,
    priority: Option<i64>,
    m: &HttpRouteMatch,
) -> (i64, u8, usize, String) {
    let exact = m.path.as_ref().is_some_and(|p| p.exact.is_some());
    let regex = m.path.as_ref().is_some_and(|p| p.regex.is_some());
    route_order(priority, exact, regex, m.prefix.as_deref(), name)
}

fn grpc_route_order(
    name: &str,
    priority: Option<i64>,
    m: &GrpcRouteMatch,
) -> (i64, u8, usize, String) {
    let exact = m.method_name.is_some();
    let prefix = m.service_name.as_ref().map(|s| format!("/{s}/"));
    route_order(priority, exact, false, prefix.as_deref(), name)
}

fn resolve_targets(
    ctx: &mut Context<'_>,
    service: &str,
    route_name: &str,
    targets: &[WeightedTarget],
    policy: Option<&ClientPolicy>,
) -> Option<Vec<ResolvedTarget>> {
    let mut resolved = Vec::new();
    for target in targets {
        if let Some((cluster, _)) = ctx.egress_cluster(&target.virtual_node, target.port, policy) {
            resolved.push(ResolvedTarget {
                cluster,
                weight: target.weight.clamp(0, 100) as u32,
            });
        }
    }
    if resolved.iter().all(|t| t.weight == 0) {
        ctx.diagnose(format!(
            "route {route_name} of virtual service {service} has no reachable target with a weight; it is left out"
        ));
        return None;
    }
    Some(resolved)
}

/// The ports of virtual service `name` as a client with client policy `policy` reaches
/// them; only `port` when given. Empty (with a diagnostic) when the service or its
/// provider does not exist. Compiled once per pass for all clients that reach it alike.
pub fn service_ports(
    ctx: &mut Context<'_>,
    name: &str,
    policy: Option<&ClientPolicy>,
    port: Option<i64>,
) -> Vec<ServicePort> {
    ctx.service(name, policy, port, |child| {
        build_service_ports(child, name, policy, port)
    })
}

fn build_service_ports(
    ctx: &mut Context<'_>,
    name: &str,
    policy: Option<&ClientPolicy>,
    port: Option<i64>,
) -> Vec<ServicePort> {
    let Some(service) = ctx.virtual_service(name) else {
        ctx.diagnose(format!(
            "virtual service {name} does not exist; it is left out"
        ));
        return Vec::new();
    };
    let Some(provider) = service.provider.as_ref() else {
        ctx.diagnose(format!(
            "virtual service {name} has no provider; it is left out"
        ));
        return Vec::new();
    };
    if let Some(node) = &provider.virtual_node {
        return node_provided(ctx, name, &node.virtual_node_name, policy, port);
    }
    if let Some(router) = &provider.virtual_router {
        return router_provided(ctx, name, &router.virtual_router_name, policy, port);
    }
    Vec::new()
}

fn node_provided(
    ctx: &mut Context<'_>,
    service: &str,
    node_name: &str,
    policy: Option<&ClientPolicy>,
    only: Option<i64>,
) -> Vec<ServicePort> {
    let Some(node) = ctx.virtual_node(node_name) else {
        ctx.diagnose(format!(
            "virtual node {node_name}, provider of {service}, does not exist; it is left out"
        ));
        return Vec::new();
    };
    let mut ports = Vec::new();
    for listener in node.listeners.iter().flatten() {
        let port = listener.port_mapping.port;
        if only.is_some_and(|only| only != port) {
            continue;
        }
        let Some((cluster, protocol)) = ctx.egress_cluster(node_name, Some(port), policy) else {
            continue;
        };
        let timeout = listener.timeout.as_ref();
        let service_kind = match protocol {
            PortProtocol::Tcp => PortService::Tcp(
                vec![(cluster, 100)],
                timeout
                    .and_then(|t| t.tcp.as_ref())
                    .and_then(|t| t.idle.as_ref())
                    .and_then(duration),
            ),
            _ => {
                let http_timeout = timeout.and_then(|t| match protocol {
                    PortProtocol::Http => t.http.clone(),
                    PortProtocol::Http2 => t.http2.clone(),
                    _ => t.grpc.as_ref().map(route::grpc_timeout),
                });
                let route = route::weighted_route(
                    service,
                    RouteMatch {
                        path_specifier: Some(
                            envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix("/".into()),
                        ),
                        ..Default::default()
                    },
                    &[ResolvedTarget { cluster, weight: 100 }],
                    http_timeout.as_ref(),
                    Some(default_retry(protocol == PortProtocol::Grpc)),
                );
                PortService::Http(vec![route])
            }
        };
        ports.push(ServicePort {
            port,
            protocol,
            service: service_kind,
        });
    }
    ports
}

fn router_provided(
    ctx: &mut Context<'_>,
    service: &str,
    router_name: &str,
    policy: Option<&ClientPolicy>,
    only: Option<i64>,
) -> Vec<ServicePort> {
    let Some(router) = ctx.virtual_router(router_name) else {
        ctx.diagnose(format!(
            "virtual router {router_name}, provider of {service}, does not exist; it is left out"
        ));
        return Vec::new();
    };
    let routes = ctx.routes(router_name);
    let mut ports = Vec::new();
    for listener in router.listeners.iter().flatten() {
        let port = listener.port_mapping.port;
        if only.is_some_and(|only| only != port) {
            continue;
        }
        let protocol = listener.port_mapping.protocol;
        let on_port = |p: Option<i64>| p.is_none_or(|p| p == port);
        let service_kind = match protocol {
            PortProtocol::Http | PortProtocol::Http2 => {
                let mut matching: Vec<(&str, &RouteSpec, &HttpRoute)> = routes
                    .iter()
                    .filter_map(|(name, spec)| {
                        let http = if protocol == PortProtocol::Http {
                            &spec.http_route
                        } else {
                            &spec.http2_route
                        };
                        http.as_ref().map(|http| (*name, *spec, http))
                    })
                    .filter(|(_, _, http)| on_port(http.r#match.port))
                    .collect();
                matching.sort_by_key(|(name, spec, http)| {
                    http_route_order(name, spec.priority, &http.r#match)
                });
                let mut envoy_routes = Vec::new();
                for (name, _, http) in matching {
                    if let Some(targets) =
                        resolve_targets(ctx, service, name, &http.action.weighted_targets, policy)
                    {
                        let retry = http
                            .retry_policy
                            .as_ref()
                            .map(route::http_retry)
                            .unwrap_or_else(|| default_retry(false));
                        envoy_routes.push(route::weighted_route(
                            name,
                            route::http_match(&http.r#match),
                            &targets,
                            http.timeout.as_ref(),
                            Some(retry),
                        ));
                    }
                }
                PortService::Http(envoy_routes)
            }
            PortProtocol::Grpc => {
                let mut matching: Vec<(&str, &RouteSpec, &GrpcRoute)> = routes
                    .iter()
                    .filter_map(|(name, spec)| {
                        spec.grpc_route.as_ref().map(|grpc| (*name, *spec, grpc))
                    })
                    .filter(|(_, _, grpc)| on_port(grpc.r#match.port))
                    .collect();
                matching.sort_by_key(|(name, spec, grpc)| {
                    grpc_route_order(name, spec.priority, &grpc.r#match)
                });
                let mut envoy_routes = Vec::new();
                for (name, _, grpc) in matching {
                    if let Some(targets) =
                        resolve_targets(ctx, service, name, &grpc.action.weighted_targets, policy)
                    {
                        let retry = grpc
                            .retry_policy
                            .as_ref()
                            .map(route::grpc_retry)
                            .unwrap_or_else(|| default_retry(true));
                        let timeout = grpc.timeout.as_ref().map(route::grpc_timeout);
                        envoy_routes.push(route::weighted_route(
                            name,
                            route::grpc_match(&grpc.r#match),
                            &targets,
                            timeout.as_ref(),
                            Some(retry),
                        ));
                    }
                }
                PortService::Http(envoy_routes)
            }
            PortProtocol::Tcp => {
                let mut matching: Vec<(&str, &RouteSpec, &TcpRoute)> = routes
                    .iter()
                    .filter_map(|(name, spec)| {
                        spec.tcp_route.as_ref().map(|tcp| (*name, *spec, tcp))
                    })
                    .filter(|(_, _, tcp)| on_port(tcp.r#match.as_ref().and_then(|m| m.port)))
                    .collect();
                matching.sort_by_key(|(name, spec, _)| {
                    route_order(spec.priority, false, false, None, name)
                });
                if matching.len() > 1 {
                    ctx.diagnose(format!(
                        "virtual router {router_name} has {} TCP routes on port {port}; only {} is used (a TCP port carries one route)",
                        matching.len(),
                        matching[0].0
                    ));
                }
                let Some((name, _, tcp)) = matching.first() else {
                    continue;
                };
                let Some(targets) =
                    resolve_targets(ctx, service, name, &tcp.action.weighted_targets, policy)
                else {
                    continue;
                };
                PortService::Tcp(
                    targets.into_iter().map(|t| (t.cluster, t.weight)).collect(),
                    tcp.timeout
                        .as_ref()
                        .and_then(|t| t.idle.as_ref())
                        .and_then(duration),
                )
            }
        };
        ports.push(ServicePort {
            port,
            protocol,
            service: service_kind,
        });
    }
    ports
}
