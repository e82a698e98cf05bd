//! The rules of the API that its model does not express: what the real service checked
//! beyond lengths, ranges and unions, plus the defaults it filled in. All pure functions
//! of one spec; rules that need other resources live in the store.

use std::collections::BTreeSet;

use super::resource::Spec;
use super::spec::*;
use super::validate::{FieldError, Validate, check_regex};

/// Checks a spec against the API model and the service's own rules. `at` is where the
/// spec sits in the request (`spec`).
pub fn validate_spec(spec: &Spec, at: &str) -> Result<(), FieldError> {
    match spec {
        Spec::Mesh(spec) => spec.validate(at),
        Spec::VirtualNode(spec) => {
            spec.validate(at)?;
            virtual_node(spec, at)
        }
        Spec::VirtualRouter(spec) => {
            spec.validate(at)?;
            let ports = spec.listeners.iter().flatten().map(|l| l.port_mapping.port);
            unique_ports(ports, &format!("{at}.listeners"))
        }
        Spec::Route(spec) => {
            spec.validate(at)?;
            route(spec, at)
        }
        Spec::VirtualService(spec) => spec.validate(at),
        Spec::VirtualGateway(spec) => {
            spec.validate(at)?;
            virtual_gateway(spec, at)
        }
        Spec::GatewayRoute(spec) => {
            spec.validate(at)?;
            gateway_route(spec, at)
        }
    }
}

/// Fills in what the real service adds to a spec that leaves it out, so that describe
/// shows it: a mesh's egress filter (`DROP_ALL`) and a virtual node's backends (`[]`).
pub fn fill_defaults(spec: &mut Spec) {
    match spec {
        Spec::Mesh(mesh) => {
            mesh.egress_filter.get_or_insert(EgressFilter {
                r#type: EgressFilterType::DropAll,
            });
        }
        Spec::VirtualNode(node) => {
            node.backends.get_or_insert_with(Vec::new);
        }
        _ => {}
    }
}

fn unique_ports(ports: impl Iterator<Item = i64>, at: &str) -> Result<(), FieldError> {
    let mut seen = BTreeSet::new();
    for (index, port) in ports.enumerate() {
        if !seen.insert(port) {
            return Err(FieldError::new(
                format!("{at}[{index}].portMapping.port"),
                format!("port {port} is already used by another listener"),
            ));
        }
    }
    Ok(())
}

fn duration(value: &Option<Duration>, at: &str) -> Result<(), FieldError> {
    if let Some(duration) = value {
        if duration.value.is_none() {
            return Err(FieldError::new(format!("{at}.value"), "must be set"));
        }
        if duration.unit.is_none() {
            return Err(FieldError::new(format!("{at}.unit"), "must be set"));
        }
    }
    Ok(())
}

fn virtual_node(spec: &VirtualNodeSpec, at: &str) -> Result<(), FieldError> {
    let listeners = spec.listeners.as_deref().unwrap_or_default();
    unique_ports(
        listeners.iter().map(|l| l.port_mapping.port),
        &format!("{at}.listeners"),
    )?;
    for (index, listener) in listeners.iter().enumerate() {
        let at = format!("{at}.listeners[{index}]");
        let protocol = listener.port_mapping.protocol;
        if let Some(pool) = &listener.connection_pool {
            let matches = match protocol {
                PortProtocol::Http => pool.http.is_some(),
                PortProtocol::Http2 => pool.http2.is_some(),
                PortProtocol::Grpc => pool.grpc.is_some(),
                PortProtocol::Tcp => pool.tcp.is_some(),
            };
            if !matches {
                return Err(FieldError::new(
                    format!("{at}.connectionPool"),
                    format!(
                        "must be the {} connection pool of the listener's protocol",
                        protocol.as_str()
                    ),
                ));
            }
        }
        if let Some(timeout) = &listener.timeout {
            let matches = match protocol {
                PortProtocol::Http => timeout.http.is_some(),
                PortProtocol::Http2 => timeout.http2.is_some(),
                PortProtocol::Grpc => timeout.grpc.is_some(),
                PortProtocol::Tcp => timeout.tcp.is_some(),
            };
            if !matches {
                return Err(FieldError::new(
                    format!("{at}.timeout"),
                    format!(
                        "must be the {} timeout of the listener's protocol",
                        protocol.as_str()
                    ),
                ));
            }
            for (name, value) in [
                (
                    "http",
                    timeout.http.as_ref().map(|t| (&t.idle, &t.per_request)),
                ),
                (
                    "http2",
                    timeout.http2.as_ref().map(|t| (&t.idle, &t.per_request)),
                ),
                (
                    "grpc",
                    timeout.grpc.as_ref().map(|t| (&t.idle, &t.per_request)),
                ),
            ] {
                if let Some((idle, per_request)) = value {
                    duration(idle, &format!("{at}.timeout.{name}.idle"))?;
                    duration(per_request, &format!("{at}.timeout.{name}.perRequest"))?;
                }
            }
            if let Some(tcp) = &timeout.tcp {
                duration(&tcp.idle, &format!("{at}.timeout.tcp.idle"))?;
            }
        }
        if let Some(outlier) = &listener.outlier_detection {
            duration(
                &Some(outlier.interval.clone()),
                &format!("{at}.outlierDetection.interval"),
            )?;
            duration(
                &Some(outlier.base_ejection_duration.clone()),
                &format!("{at}.outlierDetection.baseEjectionDuration"),
            )?;
        }
        if let Some(health) = &listener.health_check {
            health_check_path(
                health.protocol,
                health.path.as_deref(),
                &format!("{at}.healthCheck"),
            )?;
        }
    }
    if !listeners.is_empty() && spec.service_discovery.is_none() {
        return Err(FieldError::new(
            format!("{at}.serviceDiscovery"),
            "must be set when the virtual node has a listener",
        ));
    }
    let mut seen = BTreeSet::new();
    for (index, backend) in spec.backends.iter().flatten().enumerate() {
        if let Some(service) = &backend.virtual_service {
            let path = format!("{at}.backends[{index}].virtualService.virtualServiceName");
            if !seen.insert(service.virtual_service_name.as_str()) {
                return Err(FieldError::new(
                    path,
                    format!(
                        "virtual service {} is already a backend of this virtual node",
                        service.virtual_service_name
                    ),
                ));
            }
        }
    }
    if let Some(logging) = &spec.logging
        && let Some(file) = logging
            .access_log
            .as_ref()
            .and_then(|log| log.file.as_ref())
    {
        access_log_format(
            file.format.as_ref(),
            &format!("{at}.logging.accessLog.file.format"),
        )?;
    }
    Ok(())
}

fn health_check_path(
    protocol: PortProtocol,
    path: Option<&str>,
    at: &str,
) -> Result<(), FieldError> {
    if matches!(protocol, PortProtocol::Http | PortProtocol::Http2)
        && path.is_none_or(str::is_empty)
    {
        return Err(FieldError::new(
            format!("{at}.path"),
            "must be set when the health check protocol is http or http2",
        ));
    }
    Ok(())
}

fn access_log_format(format: Option<&LoggingFormat>, at: &str) -> Result<(), FieldError> {
    if let Some(json) = format.and_then(|f| f.json.as_ref())
        && json.is_empty()
    {
        return Err(FieldError::new(
            format!("{at}.json"),
            "must contain at least 1 item(s)",
        ));
    }
    Ok(())
}

fn virtual_gateway(spec: &VirtualGatewaySpec, at: &str) -> Result<(), FieldError> {
    let listeners = &spec.listeners;
    if listeners.is_empty() {
        return Err(FieldError::new(
            format!("{at}.listeners"),
            "must contain at least 1 item(s)",
        ));
    }
    unique_ports(
        listeners.iter().map(|l| l.port_mapping.port),
        &format!("{at}.listeners"),
    )?;
    for (index, listener) in listeners.iter().enumerate() {
        let at = format!("{at}.listeners[{index}]");
        let protocol = listener.port_mapping.protocol;
        if let Some(pool) = &listener.connection_pool {
            let matches = match protocol {
                VirtualGatewayPortProtocol::Http => pool.http.is_some(),
                VirtualGatewayPortProtocol::Http2 => pool.http2.is_some(),
                VirtualGatewayPortProtocol::Grpc => pool.grpc.is_some(),
            };
            if !matches {
                return Err(FieldError::new(
                    format!("{at}.connectionPool"),
                    format!(
                        "must be the {} connection pool of the listener's protocol",
                        protocol.as_str()
                    ),
                ));
            }
        }
        if let Some(health) = &listener.health_check {
            let needs_path = matches!(
                health.protocol,
                VirtualGatewayPortProtocol::Http | VirtualGatewayPortProtocol::Http2
            );
            if needs_path && health.path.as_deref().is_none_or(str::is_empty) {
                return Err(FieldError::new(
                    format!("{at}.healthCheck.path"),
                    "must be set when the health check protocol is http or http2",
                ));
            }
        }
    }
    if let Some(logging) = &spec.logging
        && let Some(file) = logging
            .access_log
            .as_ref()
            .and_then(|log| log.file.as_ref())
        && let Some(json) = file.format.as_ref().and_then(|f| f.json.as_ref())
        && json.is_empty()
    {
        return Err(FieldError::new(
            format!("{at}.logging.accessLog.file.format.json"),
            "must contain at least 1 item(s)",
        ));
    }
    Ok(())
}

fn exactly_one_route(set: &[(bool, &str)], at: &str) -> Result<(), FieldError> {
    if set.iter().filter(|(is_set, _)| *is_set).count() == 1 {
        return Ok(());
    }
    let names: Vec<&str> = set.iter().map(|(_, name)| *name).collect();
    Err(FieldError::new(
        at,
        format!("exactly one of {} must be set", names.join(", ")),
    ))
}

fn route(spec: &RouteSpec, at: &str) -> Result<(), FieldError> {
    exactly_one_route(
        &[
            (spec.grpc_route.is_some(), "grpcRoute"),
            (spec.http2_route.is_some(), "http2Route"),
            (spec.http_route.is_some(), "httpRoute"),
            (spec.tcp_route.is_some(), "tcpRoute"),
        ],
        at,
    )?;
    for (name, http) in [
        ("httpRoute", &spec.http_route),
        ("http2Route", &spec.http2_route),
    ] {
        if let Some(http) = http {
            let at = format!("{at}.{name}");
            http_route_match(&http.r#match, &format!("{at}.match"))?;
            weighted_targets(
                &http.action.weighted_targets,
                &format!("{at}.action.weightedTargets"),
            )?;
            if let Some(retry) = &http.retry_policy {
                duration(
                    &Some(retry.per_retry_timeout.clone()),
                    &format!("{at}.retryPolicy.perRetryTimeout"),
                )?;
                if retry.http_retry_events.is_none() && retry.tcp_retry_events.is_none() {
                    return Err(FieldError::new(
                        format!("{at}.retryPolicy"),
                        "must name at least one of httpRetryEvents, tcpRetryEvents",
                    ));
                }
            }
            if let Some(timeout) = &http.timeout {
                duration(&timeout.idle, &format!("{at}.timeout.idle"))?;
                duration(&timeout.per_request, &format!("{at}.timeout.perRequest"))?;
            }
        }
    }
    if let Some(grpc) = &spec.grpc_route {
        let at = format!("{at}.grpcRoute");
        if grpc.r#match.method_name.is_some() && grpc.r#match.service_name.is_none() {
            return Err(FieldError::new(
                format!("{at}.match.serviceName"),
                "must be set when methodName is set",
            ));
        }
        for (index, metadata) in grpc.r#match.metadata.iter().flatten().enumerate() {
            if let Some(method) = &metadata.r#match {
                header_like_match(
                    method.regex.as_deref(),
                    method.range.as_ref().map(|r| (r.start, r.end)),
                    &format!("{at}.match.metadata[{index}].match"),
                )?;
            }
        }
        weighted_targets(
            &grpc.action.weighted_targets,
            &format!("{at}.action.weightedTargets"),
        )?;
        if let Some(retry) = &grpc.retry_policy {
            duration(
                &Some(retry.per_retry_timeout.clone()),
                &format!("{at}.retryPolicy.perRetryTimeout"),
            )?;
            if retry.grpc_retry_events.is_none()
                && retry.http_retry_events.is_none()
                && retry.tcp_retry_events.is_none()
            {
                return Err(FieldError::new(
                    format!("{at}.retryPolicy"),
                    "must name at least one of grpcRetryEvents, httpRetryEvents, tcpRetryEvents",
                ));
            }
        }
        if let Some(timeout) = &grpc.timeout {
            duration(&timeout.idle, &format!("{at}.timeout.idle"))?;
            duration(&timeout.per_request, &format!("{at}.timeout.perRequest"))?;
        }
    }
    if let Some(tcp) = &spec.tcp_route {
        let at = format!("{at}.tcpRoute");
        weighted_targets(
            &tcp.action.weighted_targets,
            &format!("{at}.action.weightedTargets"),
        )?;
        if let Some(timeout) = &tcp.timeout {
            duration(&timeout.idle, &format!("{at}.timeout.idle"))?;
        }
    }
    Ok(())
}

fn http_route_match(m: &HttpRouteMatch, at: &str) -> Result<(), FieldError> {
    match (&m.prefix, &m.path) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                at,
                "exactly one of prefix, path must be set",
            ));
        }
        // Neither: the route matches every path (as prefix `/`). AWS accepted this, and
        // its multiple-listeners walkthrough matches on `port` alone.
        (None, None) => {}
        (Some(prefix), None) => path_prefix(prefix, &format!("{at}.prefix"))?,
        (None, Some(path)) => path_match(path, &format!("{at}.path"))?,
    }
    for (index, header) in m.headers.iter().flatten().enumerate() {
        if let Some(method) = &header.r#match {
            header_like_match(
                method.regex.as_deref(),
                method.range.as_ref().map(|r| (r.start, r.end)),
                &format!("{at}.headers[{index}].match"),
            )?;
        }
    }
    Ok(())
}

fn path_prefix(prefix: &str, at: &str) -> Result<(), FieldError> {
    if prefix.starts_with('/') {
        Ok(())
    } else {
        Err(FieldError::new(at, "must start with /"))
    }
}

fn path_match(path: &HttpPathMatch, at: &str) -> Result<(), FieldError> {
    match (&path.exact, &path.regex) {
        (Some(exact), None) => path_prefix(exact, &format!("{at}.exact")),
        (None, Some(regex)) => check_regex(regex, &format!("{at}.regex")),
        _ => Err(FieldError::new(
            at,
            "exactly one of exact, regex must be set",
        )),
    }
}

fn header_like_match(
    regex: Option<&str>,
    range: Option<(i64, i64)>,
    at: &str,
) -> Result<(), FieldError> {
    if let Some(regex) = regex {
        check_regex(regex, &format!("{at}.regex"))?;
    }
    if let Some((start, end)) = range
        && start >= end
    {
        return Err(FieldError::new(
            format!("{at}.range"),
            format!("start ({start}) must be less than end ({end})"),
        ));
    }
    Ok(())
}

fn weighted_targets(targets: &[WeightedTarget], at: &str) -> Result<(), FieldError> {
    if targets.iter().all(|t| t.weight == 0) {
        return Err(FieldError::new(
            at,
            "the weights must add up to more than 0",
        ));
    }
    Ok(())
}

fn gateway_route(spec: &GatewayRouteSpec, at: &str) -> Result<(), FieldError> {
    exactly_one_route(
        &[
            (spec.grpc_route.is_some(), "grpcRoute"),
            (spec.http2_route.is_some(), "http2Route"),
            (spec.http_route.is_some(), "httpRoute"),
        ],
        at,
    )?;
    for (name, http) in [
        ("httpRoute", &spec.http_route),
        ("http2Route", &spec.http2_route),
    ] {
        let Some(http) = http else { continue };
        let at = format!("{at}.{name}");
        let m = &http.r#match;
        let match_at = format!("{at}.match");
        match (&m.prefix, &m.path) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    match_at,
                    "at most one of prefix, path may be set",
                ));
            }
            (Some(prefix), None) => path_prefix(prefix, &format!("{match_at}.prefix"))?,
            (None, Some(path)) => path_match(path, &format!("{match_at}.path"))?,
            // Neither: every path matches (as prefix `/`), as for routes.
            (None, None) => {}
        }
        if let Some(hostname) = &m.hostname {
            hostname_match(hostname, &format!("{match_at}.hostname"))?;
        }
        for (index, header) in m.headers.iter().flatten().enumerate() {
            if let Some(method) = &header.r#match {
                header_like_match(
                    method.regex.as_deref(),
                    method.range.as_ref().map(|r| (r.start, r.end)),
                    &format!("{match_at}.headers[{index}].match"),
                )?;
            }
        }
        if let Some(rewrite) = &http.action.rewrite {
            let rewrite_at = format!("{at}.action.rewrite");
            if let Some(prefix) = &rewrite.prefix {
                if m.prefix.is_none() {
                    return Err(FieldError::new(
                        format!("{rewrite_at}.prefix"),
                        "can only be used with a prefix match",
                    ));
                }
                match (&prefix.default_prefix, &prefix.value) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(FieldError::new(
                            format!("{rewrite_at}.prefix"),
                            "exactly one of defaultPrefix, value must be set",
                        ));
                    }
                    (None, Some(value)) => {
                        path_prefix(value, &format!("{rewrite_at}.prefix.value"))?
                    }
                    (Some(_), None) => {}
                }
            }
            if let Some(path) = &rewrite.path {
                if m.path.is_none() {
                    return Err(FieldError::new(
                        format!("{rewrite_at}.path"),
                        "can only be used with a path match",
                    ));
                }
                match &path.exact {
                    Some(exact) => path_prefix(exact, &format!("{rewrite_at}.path.exact"))?,
                    None => {
                        return Err(FieldError::new(
                            format!("{rewrite_at}.path.exact"),
                            "must be set",
                        ));
                    }
                }
            }
        }
    }
    if let Some(grpc) = &spec.grpc_route {
        let at = format!("{at}.grpcRoute");
        if let Some(hostname) = &grpc.r#match.hostname {
            hostname_match(hostname, &format!("{at}.match.hostname"))?;
        }
        for (index, metadata) in grpc.r#match.metadata.iter().flatten().enumerate() {
            if let Some(method) = &metadata.r#match {
                header_like_match(
                    method.regex.as_deref(),
                    method.range.as_ref().map(|r| (r.start, r.end)),
                    &format!("{at}.match.metadata[{index}].match"),
                )?;
            }
        }
    }
    Ok(())
}

fn hostname_match(hostname: &GatewayRouteHostnameMatch, at: &str) -> Result<(), FieldError> {
    match (&hostname.exact, &hostname.suffix) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => Err(FieldError::new(
            at,
            "exactly one of exact, suffix must be set",
        )),
    }
}

/// The ports of a virtual router's or virtual gateway's listeners, in order.
pub fn listener_ports(spec: &Spec) -> Vec<i64> {
    match spec {
        Spec::VirtualRouter(router) => router
            .listeners
            .iter()
            .flatten()
            .map(|l| l.port_mapping.port)
            .collect(),
        Spec::VirtualGateway(gateway) => gateway
            .listeners
            .iter()
            .map(|l| l.port_mapping.port)
            .collect(),
        Spec::VirtualNode(node) => node
            .listeners
            .iter()
            .flatten()
            .map(|l| l.port_mapping.port)
            .collect(),
        _ => Vec::new(),
    }
}

/// The `port` a route's or gateway route's match names, with the path of that field.
pub fn match_port(spec: &Spec) -> Option<(Option<i64>, &'static str)> {
    match spec {
        Spec::Route(route) => {
            if let Some(http) = &route.http_route {
                Some((http.r#match.port, "spec.httpRoute.match.port"))
            } else if let Some(http2) = &route.http2_route {
                Some((http2.r#match.port, "spec.http2Route.match.port"))
            } else if let Some(grpc) = &route.grpc_route {
                Some((grpc.r#match.port, "spec.grpcRoute.match.port"))
            } else {
                route.tcp_route.as_ref().map(|tcp| {
                    (
                        tcp.r#match.as_ref().and_then(|m| m.port),
                        "spec.tcpRoute.match.port",
                    )
                })
            }
        }
        Spec::GatewayRoute(route) => {
            if let Some(http) = &route.http_route {
                Some((http.r#match.port, "spec.httpRoute.match.port"))
            } else if let Some(http2) = &route.http2_route {
                Some((http2.r#match.port, "spec.http2Route.match.port"))
            } else {
                route
                    .grpc_route
                    .as_ref()
                    .map(|grpc| (grpc.r#match.port, "spec.grpcRoute.match.port"))
            }
        }
        _ => None,
    }
}

/// The virtual nodes a route sends traffic to.
pub fn route_targets(spec: &RouteSpec) -> Vec<&str> {
    let targets = [
        spec.http_route.as_ref().map(|r| &r.action.weighted_targets),
        spec.http2_route
            .as_ref()
            .map(|r| &r.action.weighted_targets),
        spec.grpc_route.as_ref().map(|r| &r.action.weighted_targets),
        spec.tcp_route.as_ref().map(|r| &r.action.weighted_targets),
    ];
    targets
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.virtual_node.as_str())
        .collect()
}

/// The virtual service a gateway route sends traffic to.
pub fn gateway_route_target(spec: &GatewayRouteSpec) -> Option<&str> {
    spec.http_route
        .as_ref()
        .map(|r| &r.action.target)
        .or(spec.http2_route.as_ref().map(|r| &r.action.target))
        .or(spec.grpc_route.as_ref().map(|r| &r.action.target))
        .map(|t| t.virtual_service.virtual_service_name.as_str())
}
