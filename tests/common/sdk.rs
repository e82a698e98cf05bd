//! The real AWS SDK for Rust's App Mesh client for a local meshd, App Mesh specs built
//! with its builders, and the calls that tests expect to succeed. It uses nothing but the
//! SDK, so the examples include it too (through `#[path]`).

use std::net::SocketAddr;

use aws_sdk_appmesh::types::*;

/// The region every client (and every test server) uses.
pub const REGION: &str = "us-east-1";

/// The real AWS SDK for Rust's App Mesh client, pointed at `addr`, with no retries so
/// that each call is one request.
pub fn sdk_client(addr: SocketAddr) -> aws_sdk_appmesh::Client {
    aws_sdk_appmesh::Client::from_conf(sdk_config(addr).build())
}

/// The configuration of [`sdk_client`], to change before building: key pair
/// `AKIDEXAMPLE`/`secret`, region [`REGION`], endpoint `addr`, no retries.
pub fn sdk_config(addr: SocketAddr) -> aws_sdk_appmesh::config::Builder {
    let credentials =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    aws_sdk_appmesh::Config::builder()
        .behavior_version(aws_sdk_appmesh::config::BehaviorVersion::latest())
        .region(aws_sdk_appmesh::config::Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(format!("http://{addr}"))
        .retry_config(aws_sdk_appmesh::config::retry::RetryConfig::disabled())
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

// Calls that a test expects to succeed: each panics, naming what it asked for, if the call
// fails or its answer lacks the resource.

/// The mesh `mesh` as DescribeMesh answers it.
pub async fn describe_mesh(client: &aws_sdk_appmesh::Client, mesh: &str) -> MeshData {
    client
        .describe_mesh()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeMesh {mesh}: {err:?}"))
        .mesh
        .expect("DescribeMesh answers with the mesh")
}

/// The virtual node `node` of `mesh` as DescribeVirtualNode answers it.
pub async fn describe_node(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    node: &str,
) -> VirtualNodeData {
    client
        .describe_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(node)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeVirtualNode {mesh}/{node}: {err:?}"))
        .virtual_node
        .expect("DescribeVirtualNode answers with the node")
}

/// The virtual router `router` of `mesh` as DescribeVirtualRouter answers it.
pub async fn describe_router(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    router: &str,
) -> VirtualRouterData {
    client
        .describe_virtual_router()
        .mesh_name(mesh)
        .virtual_router_name(router)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeVirtualRouter {mesh}/{router}: {err:?}"))
        .virtual_router
        .expect("DescribeVirtualRouter answers with the router")
}

/// The route `route` of `router` in `mesh` as DescribeRoute answers it.
pub async fn describe_route(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    router: &str,
    route: &str,
) -> RouteData {
    client
        .describe_route()
        .mesh_name(mesh)
        .virtual_router_name(router)
        .route_name(route)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeRoute {mesh}/{router}/{route}: {err:?}"))
        .route
        .expect("DescribeRoute answers with the route")
}

/// The virtual service `service` of `mesh` as DescribeVirtualService answers it.
pub async fn describe_service(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    service: &str,
) -> VirtualServiceData {
    client
        .describe_virtual_service()
        .mesh_name(mesh)
        .virtual_service_name(service)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeVirtualService {mesh}/{service}: {err:?}"))
        .virtual_service
        .expect("DescribeVirtualService answers with the service")
}

/// The virtual gateway `gateway` of `mesh` as DescribeVirtualGateway answers it.
pub async fn describe_gateway(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    gateway: &str,
) -> VirtualGatewayData {
    client
        .describe_virtual_gateway()
        .mesh_name(mesh)
        .virtual_gateway_name(gateway)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeVirtualGateway {mesh}/{gateway}: {err:?}"))
        .virtual_gateway
        .expect("DescribeVirtualGateway answers with the gateway")
}

/// The gateway route `route` of `gateway` in `mesh` as DescribeGatewayRoute answers it.
pub async fn describe_gateway_route(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    gateway: &str,
    route: &str,
) -> GatewayRouteData {
    client
        .describe_gateway_route()
        .mesh_name(mesh)
        .virtual_gateway_name(gateway)
        .gateway_route_name(route)
        .send()
        .await
        .unwrap_or_else(|err| panic!("DescribeGatewayRoute {mesh}/{gateway}/{route}: {err:?}"))
        .gateway_route
        .expect("DescribeGatewayRoute answers with the gateway route")
}

/// Creates the route `route` of `router` in `mesh` with `spec`.
pub async fn create_route(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    router: &str,
    route: &str,
    spec: RouteSpec,
) -> RouteData {
    client
        .create_route()
        .mesh_name(mesh)
        .virtual_router_name(router)
        .route_name(route)
        .spec(spec)
        .send()
        .await
        .unwrap_or_else(|err| panic!("CreateRoute {mesh}/{router}/{route}: {err:?}"))
        .route
        .expect("CreateRoute answers with the route")
}

/// Creates the virtual service `service` in `mesh` with `spec`.
pub async fn create_service(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    service: &str,
    spec: VirtualServiceSpec,
) -> VirtualServiceData {
    client
        .create_virtual_service()
        .mesh_name(mesh)
        .virtual_service_name(service)
        .spec(spec)
        .send()
        .await
        .unwrap_or_else(|err| panic!("CreateVirtualService {mesh}/{service}: {err:?}"))
        .virtual_service
        .expect("CreateVirtualService answers with the service")
}

/// Creates the virtual gateway `gateway` in `mesh` with `spec`.
pub async fn create_gateway(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    gateway: &str,
    spec: VirtualGatewaySpec,
) -> VirtualGatewayData {
    client
        .create_virtual_gateway()
        .mesh_name(mesh)
        .virtual_gateway_name(gateway)
        .spec(spec)
        .send()
        .await
        .unwrap_or_else(|err| panic!("CreateVirtualGateway {mesh}/{gateway}: {err:?}"))
        .virtual_gateway
        .expect("CreateVirtualGateway answers with the gateway")
}

/// Creates the gateway route `route` of `gateway` in `mesh` with `spec`.
pub async fn create_gateway_route(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    gateway: &str,
    route: &str,
    spec: GatewayRouteSpec,
) -> GatewayRouteData {
    client
        .create_gateway_route()
        .mesh_name(mesh)
        .virtual_gateway_name(gateway)
        .gateway_route_name(route)
        .spec(spec)
        .send()
        .await
        .unwrap_or_else(|err| panic!("CreateGatewayRoute {mesh}/{gateway}/{route}: {err:?}"))
        .gateway_route
        .expect("CreateGatewayRoute answers with the gateway route")
}

/// Updates the virtual node `node` of `mesh` to `spec`.
pub async fn update_node(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    node: &str,
    spec: VirtualNodeSpec,
) -> VirtualNodeData {
    client
        .update_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(node)
        .spec(spec)
        .send()
        .await
        .unwrap_or_else(|err| panic!("UpdateVirtualNode {mesh}/{node}: {err:?}"))
        .virtual_node
        .expect("UpdateVirtualNode answers with the node")
}

/// Tags the resource `arn` with `tags`.
pub async fn tag_resource(client: &aws_sdk_appmesh::Client, arn: &str, tags: Vec<TagRef>) {
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap_or_else(|err| panic!("TagResource {arn}: {err:?}"));
}

/// The names of the meshes in one ListMeshes answer, in order.
pub async fn mesh_names(client: &aws_sdk_appmesh::Client) -> Vec<String> {
    let out = client
        .list_meshes()
        .send()
        .await
        .unwrap_or_else(|err| panic!("ListMeshes: {err:?}"));
    out.meshes().iter().map(|m| m.mesh_name.clone()).collect()
}

/// The names of the virtual nodes of `mesh` in one ListVirtualNodes answer, in order.
pub async fn node_names(client: &aws_sdk_appmesh::Client, mesh: &str) -> Vec<String> {
    let out = client
        .list_virtual_nodes()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap_or_else(|err| panic!("ListVirtualNodes {mesh}: {err:?}"));
    out.virtual_nodes()
        .iter()
        .map(|n| n.virtual_node_name.clone())
        .collect()
}

/// The names of all the virtual nodes of `mesh`, in order, following the next tokens of
/// ListVirtualNodes pages of at most `limit` (the service's default if none).
pub async fn all_node_names(
    client: &aws_sdk_appmesh::Client,
    mesh: &str,
    limit: Option<i32>,
) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_virtual_nodes()
            .mesh_name(mesh)
            .set_limit(limit)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|err| panic!("ListVirtualNodes {mesh}: {err:?}"));
        names.extend(
            page.virtual_nodes()
                .iter()
                .map(|node| node.virtual_node_name.clone()),
        );
        token = page.next_token;
        if token.is_none() {
            return names;
        }
    }
}

/// Listener TLS in `mode` with certificate files that do not exist on this host (Envoy
/// rejects it unless the mode is DISABLED).
pub fn tls_with_missing_files(mode: ListenerTlsMode) -> ListenerTls {
    ListenerTls::builder()
        .mode(mode)
        .certificate(ListenerTlsCertificate::File(
            ListenerTlsFileCertificate::builder()
                .certificate_chain("/nonexistent/meshd-test/cert.pem")
                .private_key("/nonexistent/meshd-test/key.pem")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap()
}
