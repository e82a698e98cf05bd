//! The real AWS SDK for Rust's App Mesh client for a local meshd, and App Mesh specs built
//! with its builders. It uses nothing but the SDK, so the examples include it too
//! (through `#[path]`).

use std::net::SocketAddr;

use aws_sdk_appmesh::types::*;

/// The region every client (and every test server) uses.
pub const REGION: &str = "us-east-1";

/// The real AWS SDK for Rust's App Mesh client, pointed at `addr`, with no retries so
/// that each call is one request.
pub fn sdk_client(addr: SocketAddr) -> aws_sdk_appmesh::Client {
    let credentials =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let config = aws_sdk_appmesh::Config::builder()
        .behavior_version(aws_sdk_appmesh::config::BehaviorVersion::latest())
        .region(aws_sdk_appmesh::config::Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(format!("http://{addr}"))
        .retry_config(aws_sdk_appmesh::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_appmesh::Client::from_conf(config)
}

pub fn port_mapping(port: i32, protocol: PortProtocol) -> PortMapping {
    PortMapping::builder()
        .port(port)
        .protocol(protocol)
        .build()
        .unwrap()
}

pub fn dns(hostname: &str) -> ServiceDiscovery {
    ServiceDiscovery::Dns(
        DnsServiceDiscovery::builder()
            .hostname(hostname)
            .build()
            .unwrap(),
    )
}

pub fn backend(service: &str) -> Backend {
    Backend::VirtualService(
        VirtualServiceBackend::builder()
            .virtual_service_name(service)
            .build()
            .unwrap(),
    )
}

/// A virtual node with one http listener on `port`, DNS discovery and `backends`.
pub fn node_spec(port: i32, hostname: &str, backends: &[&str]) -> VirtualNodeSpec {
    VirtualNodeSpec::builder()
        .listeners(
            Listener::builder()
                .port_mapping(port_mapping(port, PortProtocol::Http))
                .build(),
        )
        .service_discovery(dns(hostname))
        .set_backends(Some(backends.iter().map(|name| backend(name)).collect()))
        .build()
}

/// A virtual router with one http listener on each of `ports`.
pub fn router_spec(ports: &[i32]) -> VirtualRouterSpec {
    let listeners = ports
        .iter()
        .map(|port| {
            VirtualRouterListener::builder()
                .port_mapping(port_mapping(*port, PortProtocol::Http))
                .build()
        })
        .collect();
    VirtualRouterSpec::builder()
        .set_listeners(Some(listeners))
        .build()
}

pub fn target(node: &str, weight: i32) -> WeightedTarget {
    WeightedTarget::builder()
        .virtual_node(node)
        .weight(weight)
        .build()
        .unwrap()
}

/// An http route on `prefix` to weighted `targets`, matching `port` if given.
pub fn http_route_spec(prefix: &str, targets: &[(&str, i32)], port: Option<i32>) -> RouteSpec {
    let action = HttpRouteAction::builder()
        .set_weighted_targets(Some(
            targets
                .iter()
                .map(|(node, weight)| target(node, *weight))
                .collect(),
        ))
        .build()
        .unwrap();
    RouteSpec::builder()
        .http_route(
            HttpRoute::builder()
                .r#match(
                    HttpRouteMatch::builder()
                        .prefix(prefix)
                        .set_port(port)
                        .build(),
                )
                .action(action)
                .build(),
        )
        .build()
}

pub fn node_provided(node: &str) -> VirtualServiceSpec {
    VirtualServiceSpec::builder()
        .provider(VirtualServiceProvider::VirtualNode(
            VirtualNodeServiceProvider::builder()
                .virtual_node_name(node)
                .build()
                .unwrap(),
        ))
        .build()
}

pub fn router_provided(router: &str) -> VirtualServiceSpec {
    VirtualServiceSpec::builder()
        .provider(VirtualServiceProvider::VirtualRouter(
            VirtualRouterServiceProvider::builder()
                .virtual_router_name(router)
                .build()
                .unwrap(),
        ))
        .build()
}

/// A virtual gateway with one listener per port, of `protocol`.
pub fn gateway_spec(ports: &[i32], protocol: VirtualGatewayPortProtocol) -> VirtualGatewaySpec {
    let listeners = ports
        .iter()
        .map(|port| {
            VirtualGatewayListener::builder()
                .port_mapping(
                    VirtualGatewayPortMapping::builder()
                        .port(*port)
                        .protocol(protocol.clone())
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    VirtualGatewaySpec::builder()
        .set_listeners(Some(listeners))
        .build()
        .unwrap()
}

pub fn gateway_target(service: &str) -> GatewayRouteTarget {
    GatewayRouteTarget::builder()
        .virtual_service(
            GatewayRouteVirtualService::builder()
                .virtual_service_name(service)
                .build()
                .unwrap(),
        )
        .build()
}

/// An http gateway route on `prefix` to virtual service `service`, matching `port` if given.
pub fn gateway_route_spec(prefix: &str, service: &str, port: Option<i32>) -> GatewayRouteSpec {
    GatewayRouteSpec::builder()
        .http_route(
            HttpGatewayRoute::builder()
                .r#match(
                    HttpGatewayRouteMatch::builder()
                        .prefix(prefix)
                        .set_port(port)
                        .build(),
                )
                .action(
                    HttpGatewayRouteAction::builder()
                        .target(gateway_target(service))
                        .build(),
                )
                .build(),
        )
        .build()
}

pub fn tag(key: &str, value: &str) -> TagRef {
    TagRef::builder().key(key).value(value).build().unwrap()
}
