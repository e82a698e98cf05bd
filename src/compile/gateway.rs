//! A virtual gateway: one listener per gateway listener whose routes (the gateway routes)
//! send requests back into the gateway's own outbound listener (the self-redirect), with
//! the Host rewritten to the target virtual service; the outbound listener on 15001 then
//! routes by Host to the services, as a sidecar's does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};

use crate::model::spec::*;

use super::backend::{PortService, route_order, service_ports};
use super::cluster::{self, PoolLimits};
use super::context::Context;
use super::listener;
use super::names;
use super::node::{access_logs, tls_chains, virtual_host};
use super::route::{self, GatewayTarget};

fn protocol(protocol: VirtualGatewayPortProtocol) -> PortProtocol {
    match protocol {
        VirtualGatewayPortProtocol::Http => PortProtocol::Http,
        VirtualGatewayPortProtocol::Http2 => PortProtocol::Http2,
        VirtualGatewayPortProtocol::Grpc => PortProtocol::Grpc,
    }
}

fn pool_limits(pool: Option<&VirtualGatewayConnectionPool>) -> PoolLimits {
    let Some(pool) = pool else {
        return PoolLimits::default();
    };
    PoolLimits {
        max_connections: pool.http.as_ref().map(|h| h.max_connections),
        max_pending_requests: pool.http.as_ref().and_then(|h| h.max_pending_requests),
        max_requests: pool
            .http2
            .as_ref()
            .map(|h| h.max_requests)
            .or(pool.grpc.as_ref().map(|g| g.max_requests)),
    }
}

/// A gateway route's target: its virtual service, the service port it names, and
/// whether the Host is rewritten (otherwise a header carries the service's name).
struct Target<'a> {
    service: &'a str,
    port: Option<i64>,
    host_rewrite: bool,
}

fn target_of(spec: &GatewayRouteSpec) -> Option<Target<'_>> {
    let disabled = |h: Option<&GatewayRouteHostnameRewrite>| {
        h.and_then(|h| h.default_target_hostname) == Some(DefaultGatewayRouteRewrite::Disabled)
    };
    if let Some(http) = spec.http_route.as_ref().or(spec.http2_route.as_ref()) {
        return Some(Target {
            service: &http.action.target.virtual_service.virtual_service_name,
            port: http.action.target.port,
            host_rewrite: !disabled(
                http.action
                    .rewrite
                    .as_ref()
                    .and_then(|r| r.hostname.as_ref()),
            ),
        });
    }
    spec.grpc_route.as_ref().map(|grpc| Target {
        service: &grpc.action.target.virtual_service.virtual_service_name,
        port: grpc.action.target.port,
        host_rewrite: !disabled(
            grpc.action
                .rewrite
                .as_ref()
                .and_then(|r| r.hostname.as_ref()),
        ),
    })
}

fn gateway_route_order(name: &str, spec: &GatewayRouteSpec) -> (i64, u8, usize, String) {
    if let Some(http) = spec.http_route.as_ref().or(spec.http2_route.as_ref()) {
        let m = &http.r#match;
        let exact = m.path.as_ref().is_some_and(|p| p.exact.is_some());
        let regex = m.path.as_ref().is_some_and(|p| p.regex.is_some());
        return route_order(spec.priority, exact, regex, m.prefix.as_deref(), name);
    }
    let prefix = spec
        .grpc_route
        .as_ref()
        .and_then(|g| g.r#match.service_name.as_ref())
        .map(|s| format!("/{s}/"));
    route_order(spec.priority, false, false, prefix.as_deref(), name)
}

/// Compiles virtual gateway `name`.
pub fn compile(ctx: &mut Context<'_>, name: &str) {
    let Some(gateway) = ctx.virtual_gateway(name) else {
        ctx.diagnose(format!(
            "virtual gateway {name} does not exist in mesh {}",
            ctx.mesh
        ));
        return;
    };
    let ipv6 = cluster::prefers_ipv6(ctx.ip_preference(None));
    let file = gateway
        .logging
        .as_ref()
        .and_then(|l| l.access_log.as_ref())
        .and_then(|a| a.file.as_ref());
    let logs = access_logs(
        file.map(|f| f.path.as_str()),
        file.and_then(|f| f.format.as_ref()),
    );
    let mut routes = ctx.gateway_routes(name);
    routes.sort_by_key(|(route_name, spec)| gateway_route_order(route_name, spec));
    let labels = egress(ctx, gateway, &routes, ipv6, &logs);
    let several = gateway.listeners.len() > 1;
    for listener in &gateway.listeners {
        let port = listener.port_mapping.port;
        let proto = protocol(listener.port_mapping.protocol);
        if port == names::EGRESS_PORT as i64 {
            ctx.diagnose(format!(
                "virtual gateway {name}'s listener on port {port} collides with the gateway's own outbound listener ({}); it is left out",
                names::egress_listener()
            ));
            continue;
        }
        let redirect =
            names::self_redirect_cluster(ctx.mesh, name, proto.as_str(), several.then_some(port));
        ctx.out.clusters.insert(
            redirect.clone(),
            Arc::new(cluster::self_redirect(
                &redirect,
                cluster::is_http2(proto),
                pool_limits(listener.connection_pool.as_ref()),
            )),
        );
        let mut envoy_routes: Vec<Route> = Vec::new();
        for (route_name, spec) in &routes {
            let Some(target) = target_of(spec) else {
                continue;
            };
            let applies = match proto {
                PortProtocol::Http => spec.http_route.as_ref().map(|r| r.r#match.port),
                PortProtocol::Http2 => spec.http2_route.as_ref().map(|r| r.r#match.port),
                _ => spec.grpc_route.as_ref().map(|r| r.r#match.port),
            };
            let Some(match_port) = applies else { continue };
            if match_port.is_some_and(|p| p != port) {
                continue;
            }
            if ctx.virtual_service(target.service).is_none() {
                ctx.diagnose(format!(
                    "gateway route {route_name} targets virtual service {}, which does not exist; it is left out",
                    target.service
                ));
                continue;
            }
            let virtual_service =
                match labels.get(&(target.service.to_string(), target.port, target.host_rewrite)) {
                    // Its egress side was left out (a diagnostic says why).
                    Some(None) => continue,
                    Some(Some(label)) => label.clone(),
                    None => target.service.to_string(),
                };
            let gateway_target = GatewayTarget {
                cluster: redirect.clone(),
                virtual_service,
            };
            let envoy_route = match (&spec.http_route, &spec.http2_route, &spec.grpc_route) {
                (Some(http), _, _) if proto == PortProtocol::Http => {
                    route::http_gateway_route(route_name, http, &gateway_target)
                }
                (_, Some(http2), _) if proto == PortProtocol::Http2 => {
                    route::http_gateway_route(route_name, http2, &gateway_target)
                }
                (_, _, Some(grpc)) => route::grpc_gateway_route(route_name, grpc, &gateway_target),
                _ => continue,
            };
            envoy_routes.push(envoy_route);
        }
        let route_config = names::ingress_route_config(proto.as_str(), port);
        ctx.out.route_configs.insert(
            route_config.clone(),
            Arc::new(RouteConfiguration {
                name: route_config.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: "self_redirect".into(),
                    domains: vec!["*".into()],
                    routes: envoy_routes,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        let filter = listener::http_connection_manager("ingress", &route_config, &logs);
        let tls: Option<ListenerTls> = listener.tls.as_ref().map(Into::into);
        let inspect_tls = tls
            .as_ref()
            .is_some_and(|t| t.mode == ListenerTlsMode::Permissive);
        let chains = tls_chains(ctx, "ingress", port as u32, filter, tls.as_ref());
        let listener_name = names::ingress_listener(port as u32);
        if chains.is_empty() {
            // Envoy rejects a listener without filter chains.
            ctx.diagnose(format!(
                "virtual gateway {name}'s listener on port {port} cannot be served; {listener_name} is left out"
            ));
            continue;
        }
        ctx.out.listeners.insert(
            listener_name.clone(),
            Arc::new(listener::listener(
                listener_name,
                port as u32,
                ipv6,
                true,
                chains,
                listener::listener_filters(false, inspect_tls),
                None,
            )),
        );
    }
}

/// A gateway route target: virtual service, the port it names, whether Host is rewritten.
type TargetKey = (String, Option<i64>, bool);

/// The gateway's outbound listener on 15001, which the self-redirect clusters reach.
/// Returns, for each target, the name the ingress side hands requests over with (the
/// Host it rewrites to, or the `x-app-mesh-virtual-service` value): the service's name
/// for the first port of a service reached, `<service>:<port>` for any other port of it,
/// so that requests for different ports of one service are told apart; `None` for a
/// target whose egress side is left out.
fn egress(
    ctx: &mut Context<'_>,
    gateway: &VirtualGatewaySpec,
    routes: &[(&str, &GatewayRouteSpec)],
    ipv6: bool,
    logs: &[listener::AccessLogFile],
) -> BTreeMap<TargetKey, Option<String>> {
    let policy: Option<ClientPolicy> = gateway
        .backend_defaults
        .as_ref()
        .and_then(|d| d.client_policy.as_ref())
        .map(Into::into);
    let mut seen = BTreeSet::new();
    let mut targets: Vec<(String, Option<i64>, bool)> = routes
        .iter()
        .filter_map(|(_, spec)| target_of(spec))
        .map(|t| (t.service.to_string(), t.port, t.host_rewrite))
        .collect();
    targets.sort();
    let mut hosts = Vec::new();
    let mut header_routes = Vec::new();
    let mut labels = BTreeMap::new();
    // The first port each service is reached on, by hand-over kind, and the labels made.
    let mut first_port: BTreeMap<(String, bool), i64> = BTreeMap::new();
    let mut made = BTreeSet::new();
    for (service, port, host_rewrite) in targets {
        if !seen.insert((service.clone(), port, host_rewrite)) {
            continue;
        }
        let ports = service_ports(ctx, &service, policy.as_ref(), port);
        let http: Vec<(i64, Vec<Route>)> = ports
            .into_iter()
            .filter_map(|p| match p.service {
                PortService::Http(routes) => Some((p.port, routes)),
                PortService::Tcp(..) => None,
            })
            .collect();
        if http.len() > 1 {
            ctx.diagnose(format!(
                "virtual service {service} listens on several ports and its gateway routes name none; port {} is used",
                http[0].0
            ));
        }
        let Some((service_port, service_routes)) = http.into_iter().next() else {
            continue;
        };
        let first = *first_port
            .entry((service.clone(), host_rewrite))
            .or_insert(service_port);
        let label = if first == service_port {
            service.clone()
        } else {
            format!("{service}:{service_port}")
        };
        let key = (service.clone(), port, host_rewrite);
        labels.insert(key.clone(), Some(label.clone()));
        if !made.insert((label.clone(), host_rewrite)) {
            continue;
        }
        if host_rewrite {
            let mut host = if label == service {
                let mut host = virtual_host(&service, service_port, service_routes);
                host.domains
                    .push(format!("{service}:{}", names::EGRESS_PORT));
                host
            } else {
                VirtualHost {
                    name: label.clone(),
                    domains: vec![label.clone()],
                    routes: service_routes,
                    ..Default::default()
                }
            };
            host.domains.sort();
            host.domains.dedup();
            let taken: BTreeSet<&String> = hosts
                .iter()
                .flat_map(|h: &VirtualHost| &h.domains)
                .collect();
            if host.domains.iter().any(|d| taken.contains(d)) {
                ctx.diagnose(format!(
                    "gateway routes reach virtual service {service} on port {service_port}, whose Host {label} the gateway already uses for another port; they are left out"
                ));
                labels.insert(key, None);
                continue;
            }
            hosts.push(host);
        } else {
            header_routes.extend(
                service_routes
                    .into_iter()
                    .map(|r| route::require_header(r, names::VIRTUAL_SERVICE_HEADER, &label)),
            );
        }
    }
    if !header_routes.is_empty() {
        hosts.push(VirtualHost {
            name: "default_backend".into(),
            domains: vec!["*".into()],
            routes: header_routes,
            ..Default::default()
        });
    }
    let route_config = names::egress_route_config("http", names::EGRESS_PORT as i64);
    ctx.out.route_configs.insert(
        route_config.clone(),
        Arc::new(RouteConfiguration {
            name: route_config.clone(),
            virtual_hosts: hosts,
            ..Default::default()
        }),
    );
    let filter = listener::http_connection_manager("egress", &route_config, logs);
    let chain = listener::chain("egress".into(), None, None, filter, None);
    let name = names::egress_listener();
    ctx.out.listeners.insert(
        name.clone(),
        Arc::new(listener::listener(
            name,
            names::EGRESS_PORT,
            ipv6,
            false,
            vec![chain],
            Vec::new(),
            None,
        )),
    );
    labels
}
