//! The mesh most Envoy tests run, created through the AWS SDK: `demo`, where the proxy
//! `front` calls the virtual service `api.demo.local`, which the router `api-router`
//! splits between the virtual nodes `blue` and `green`.

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::types::{
    Backend, DnsServiceDiscovery, Listener, ListenerTls, PortMapping, PortProtocol, RouteSpec,
    ServiceDiscovery, VirtualNodeSpec, VirtualRouterListener, VirtualRouterServiceProvider,
    VirtualRouterSpec, VirtualServiceBackend, VirtualServiceProvider, VirtualServiceSpec,
};

/// The mesh.
pub const MESH: &str = "demo";
/// The proxy every test runs.
pub const FRONT: &str = "mesh/demo/virtualNode/front";
/// The virtual service `front` calls.
pub const SERVICE: &str = "api.demo.local";

pub fn http_port(port: i32) -> PortMapping {
    PortMapping::builder()
        .port(port)
        .protocol(PortProtocol::Http)
        .build()
        .unwrap()
}

pub fn node_spec(
    port: i32,
    hostname: &str,
    backend: Option<&str>,
    tls: Option<ListenerTls>,
) -> VirtualNodeSpec {
    let mut listener = Listener::builder().port_mapping(http_port(port));
    if let Some(tls) = tls {
        listener = listener.tls(tls);
    }
    let mut spec = VirtualNodeSpec::builder()
        .listeners(listener.build())
        .service_discovery(ServiceDiscovery::Dns(
            DnsServiceDiscovery::builder()
                .hostname(hostname)
                .build()
                .unwrap(),
        ));
    if let Some(service) = backend {
        spec = spec.backends(Backend::VirtualService(
            VirtualServiceBackend::builder()
                .virtual_service_name(service)
                .build()
                .unwrap(),
        ));
    }
    spec.build()
}

/// `front`'s spec: listener 8080 (with `tls`, if any), backend `api.demo.local`.
pub fn front_spec(tls: Option<ListenerTls>) -> VirtualNodeSpec {
    node_spec(8080, "front.demo.local", Some(SERVICE), tls)
}

/// The route of `api-router`: `/` to blue and green with these weights.
pub fn route_spec(blue: i32, green: i32) -> RouteSpec {
    super::sdk::http_route_spec("/", &[("blue", blue), ("green", green)], None)
}

/// The mesh `demo`: nodes `blue` and `green` (http 9080), router `api-router` with the
/// route `api-route` (blue 90, green 10), the service `api.demo.local` on the router,
/// and last (so that the proxy `front` sees its whole configuration at once) `front`, its
/// listener with `front_tls`.
pub async fn create_demo(client: &Client, front_tls: Option<ListenerTls>) {
    client.create_mesh().mesh_name(MESH).send().await.unwrap();
    for (name, hostname) in [("blue", "blue.demo.local"), ("green", "green.demo.local")] {
        client
            .create_virtual_node()
            .mesh_name(MESH)
            .virtual_node_name(name)
            .spec(node_spec(9080, hostname, None, None))
            .send()
            .await
            .unwrap();
    }
    client
        .create_virtual_router()
        .mesh_name(MESH)
        .virtual_router_name("api-router")
        .spec(
            VirtualRouterSpec::builder()
                .listeners(
                    VirtualRouterListener::builder()
                        .port_mapping(http_port(9080))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .create_route()
        .mesh_name(MESH)
        .virtual_router_name("api-router")
        .route_name("api-route")
        .spec(route_spec(90, 10))
        .send()
        .await
        .unwrap();
    client
        .create_virtual_service()
        .mesh_name(MESH)
        .virtual_service_name(SERVICE)
        .spec(
            VirtualServiceSpec::builder()
                .provider(VirtualServiceProvider::VirtualRouter(
                    VirtualRouterServiceProvider::builder()
                        .virtual_router_name("api-router")
                        .build()
                        .unwrap(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    update_front(client, front_tls, true).await;
}

pub async fn update_front(client: &Client, tls: Option<ListenerTls>, create: bool) {
    if create {
        client
            .create_virtual_node()
            .mesh_name(MESH)
            .virtual_node_name("front")
            .spec(front_spec(tls))
            .send()
            .await
            .unwrap();
    } else {
        client
            .update_virtual_node()
            .mesh_name(MESH)
            .virtual_node_name("front")
            .spec(front_spec(tls))
            .send()
            .await
            .unwrap();
    }
}

/// Sets the weights of `api-route` for blue and green.
pub async fn set_weights(client: &Client, blue: i32, green: i32) {
    client
        .update_route()
        .mesh_name(MESH)
        .virtual_router_name("api-router")
        .route_name("api-route")
        .spec(route_spec(blue, green))
        .send()
        .await
        .unwrap();
}
