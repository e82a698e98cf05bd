//! The App Mesh API as a user of the real AWS SDK for Rust sees it: all 38 operations,
//! every error type with its HTTP status, pagination, idempotency, the multiple-listener
//! rule and names that need percent-encoding.

mod common;

use std::collections::BTreeSet;
use std::fmt::Debug;

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::config::http::HttpResponse;
use aws_sdk_appmesh::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_appmesh::types::*;
use meshd::store::Limits;

use common::sdk::*;
use common::{ACCOUNT_ID, arn};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Asserts that `result` failed with the exception `code` sent as HTTP `status` (both in
/// the status line and the `x-amzn-ErrorType` header, with a non-empty message) and
/// returns the operation's service error for the `is_xxx_exception` checks.
#[track_caller]
fn expect_error<T: Debug, E: ProvideErrorMetadata + Debug>(
    result: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: &str,
) -> E {
    let err = match result {
        Ok(value) => panic!("expected {code} ({status}), but the call succeeded: {value:?}"),
        Err(err) => err,
    };
    let raw = err
        .raw_response()
        .unwrap_or_else(|| panic!("expected {code} ({status}) from the server, got {err:?}"));
    assert_eq!(
        raw.status().as_u16(),
        status,
        "HTTP status of {code}: {err:?}"
    );
    assert_eq!(
        raw.headers().get("x-amzn-errortype"),
        Some(code),
        "x-amzn-ErrorType header: {err:?}"
    );
    assert!(
        raw.headers()
            .get("x-amzn-requestid")
            .is_some_and(|id| !id.is_empty()),
        "errors carry x-amzn-RequestId: {err:?}"
    );
    let service = match err {
        SdkError::ServiceError(context) => context.into_err(),
        other => panic!("expected a service error {code}, got {other:?}"),
    };
    assert_eq!(service.code(), Some(code), "{service:?}");
    assert!(
        service.message().is_some_and(|message| !message.is_empty()),
        "an error has a message: {service:?}"
    );
    service
}

/// `expect_error` for one App Mesh exception, by kind, plus the check that the SDK parsed
/// the error as that exception (`is_xxx_exception`, which each operation's own error type
/// has, hence a macro); gives the service error back.
macro_rules! expect_exception {
    (NotFound, $result:expr) => {
        expect_exception!($result, 404, "NotFoundException", is_not_found_exception)
    };
    (Conflict, $result:expr) => {
        expect_exception!($result, 409, "ConflictException", is_conflict_exception)
    };
    (InUse, $result:expr) => {
        expect_exception!(
            $result,
            409,
            "ResourceInUseException",
            is_resource_in_use_exception
        )
    };
    (BadRequest, $result:expr) => {
        expect_exception!(
            $result,
            400,
            "BadRequestException",
            is_bad_request_exception
        )
    };
    (LimitExceeded, $result:expr) => {
        expect_exception!(
            $result,
            400,
            "LimitExceededException",
            is_limit_exceeded_exception
        )
    };
    (TooManyTags, $result:expr) => {
        expect_exception!(
            $result,
            400,
            "TooManyTagsException",
            is_too_many_tags_exception
        )
    };
    ($result:expr, $status:literal, $code:literal, $is:ident) => {{
        let err = expect_error($result, $status, $code);
        assert!(err.$is(), "{err:?}");
        err
    }};
}

/// The message of a service error.
fn message(err: &impl ProvideErrorMetadata) -> String {
    err.message().unwrap_or_default().to_string()
}

/// Checks the metadata every resource carries.
#[track_caller]
fn check_metadata(
    metadata: Option<&ResourceMetadata>,
    resource: &str,
    version: i64,
) -> ResourceMetadata {
    let metadata = metadata.expect("metadata is returned").clone();
    assert_eq!(metadata.arn, arn(resource));
    assert_eq!(metadata.version, version, "version of {resource}");
    assert_eq!(metadata.mesh_owner, ACCOUNT_ID);
    assert_eq!(metadata.resource_owner, ACCOUNT_ID);
    let uid = uuid::Uuid::parse_str(&metadata.uid)
        .unwrap_or_else(|_| panic!("uid {:?} is a UUID", metadata.uid));
    assert_eq!(
        uid.hyphenated().to_string(),
        metadata.uid,
        "uid is a lowercase hyphenated UUID"
    );
    assert!(
        metadata.created_at.as_secs_f64() > 1_600_000_000.0,
        "createdAt is a real time"
    );
    assert!(metadata.created_at <= metadata.last_updated_at);
    metadata
}

async fn create_mesh(client: &Client, mesh: &str) {
    client.create_mesh().mesh_name(mesh).send().await.unwrap();
}

async fn create_node(client: &Client, mesh: &str, node: &str) {
    // A name may hold characters a DNS name may not (`node:1`).
    let hostname = node.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
    client
        .create_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(node)
        .spec(node_spec(8080, &format!("{hostname}.local"), &[]))
        .send()
        .await
        .unwrap();
}

async fn create_router(client: &Client, mesh: &str, router: &str, ports: &[i32]) {
    client
        .create_virtual_router()
        .mesh_name(mesh)
        .virtual_router_name(router)
        .spec(router_spec(ports))
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// The operations, resource kind by resource kind
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn mesh_create_describe_update_list_delete() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);

    let created = client.create_mesh().mesh_name("m").send().await.unwrap();
    let mesh = created.mesh.expect("CreateMesh returns the mesh");
    assert_eq!(mesh.mesh_name, "m");
    let first = check_metadata(mesh.metadata.as_ref(), "mesh/m", 1);
    assert_eq!(
        first.created_at, first.last_updated_at,
        "a new mesh was never updated"
    );
    assert_eq!(mesh.status.unwrap().status, Some(MeshStatusCode::Active));
    let spec = mesh.spec.expect("the mesh has a spec");
    assert_eq!(
        spec.egress_filter,
        Some(
            EgressFilter::builder()
                .r#type(EgressFilterType::DropAll)
                .build()
                .unwrap()
        ),
        "the egress filter defaults to DROP_ALL"
    );

    let described = describe_mesh(&client, "m").await;
    assert_eq!(described.metadata.as_ref(), Some(&first));
    assert_eq!(described.spec.as_ref(), Some(&spec));
    let owned = client
        .describe_mesh()
        .mesh_name("m")
        .mesh_owner(ACCOUNT_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(owned.mesh.unwrap().mesh_name, "m");
    let other_owner = client
        .describe_mesh()
        .mesh_name("m")
        .mesh_owner("444455556666")
        .send()
        .await;
    expect_exception!(NotFound, other_owner);

    let new_spec = MeshSpec::builder()
        .egress_filter(
            EgressFilter::builder()
                .r#type(EgressFilterType::AllowAll)
                .build()
                .unwrap(),
        )
        .service_discovery(
            MeshServiceDiscovery::builder()
                .ip_preference(IpPreference::IPv4Preferred)
                .build(),
        )
        .build();
    let updated = client
        .update_mesh()
        .mesh_name("m")
        .spec(new_spec.clone())
        .send()
        .await
        .unwrap()
        .mesh
        .unwrap();
    assert_eq!(
        updated.spec.as_ref(),
        Some(&new_spec),
        "the spec reads back as sent"
    );
    let second = check_metadata(updated.metadata.as_ref(), "mesh/m", 2);
    assert_eq!(second.uid, first.uid, "the uid survives an update");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.last_updated_at >= first.last_updated_at);
    let described = describe_mesh(&client, "m").await;
    assert_eq!(described.spec, Some(new_spec.clone()));
    assert_eq!(described.metadata.unwrap().version, 2);

    create_mesh(&client, "another").await;
    let listed = client.list_meshes().send().await.unwrap();
    assert_eq!(listed.next_token(), None);
    let names: Vec<&str> = listed
        .meshes()
        .iter()
        .map(|m| m.mesh_name.as_str())
        .collect();
    assert_eq!(names, ["another", "m"]);
    let item = &listed.meshes()[1];
    assert_eq!(item.arn, arn("mesh/m"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);
    assert_eq!(item.created_at, second.created_at);
    assert_eq!(item.last_updated_at, second.last_updated_at);

    let deleted = client
        .delete_mesh()
        .mesh_name("m")
        .send()
        .await
        .unwrap()
        .mesh
        .unwrap();
    assert_eq!(deleted.mesh_name, "m");
    assert_eq!(
        deleted.status.unwrap().status,
        Some(MeshStatusCode::Deleted)
    );
    assert_eq!(deleted.spec, Some(new_spec));
    check_metadata(deleted.metadata.as_ref(), "mesh/m", 2);

    let gone = client.describe_mesh().mesh_name("m").send().await;
    let err = expect_exception!(NotFound, gone);
    assert!(message(&err).contains("m"), "{err:?}");
    let again = client.delete_mesh().mesh_name("m").send().await;
    expect_exception!(NotFound, again);
    assert_eq!(mesh_names(&client).await, ["another"]);
}

#[tokio::test]
async fn virtual_node_create_describe_update_list_delete() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;

    let health = HealthCheckPolicy::builder()
        .protocol(PortProtocol::Http)
        .path("/ping")
        .healthy_threshold(2)
        .unhealthy_threshold(3)
        .interval_millis(5000)
        .timeout_millis(2000)
        .build()
        .unwrap();
    let spec = VirtualNodeSpec::builder()
        .listeners(
            Listener::builder()
                .port_mapping(port_mapping(8080, PortProtocol::Http))
                .health_check(health)
                .build(),
        )
        .service_discovery(ServiceDiscovery::Dns(
            DnsServiceDiscovery::builder()
                .hostname("n.m.local")
                .response_type(DnsResponseType::Endpoints)
                .build()
                .unwrap(),
        ))
        .backends(backend("a.local"))
        .backends(backend("b.local"))
        .logging(
            Logging::builder()
                .access_log(AccessLog::File(
                    FileAccessLog::builder()
                        .path("/dev/stdout")
                        .build()
                        .unwrap(),
                ))
                .build(),
        )
        .build();
    let created = client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .spec(spec.clone())
        .send()
        .await
        .unwrap()
        .virtual_node
        .unwrap();
    assert_eq!(created.mesh_name, "m");
    assert_eq!(created.virtual_node_name, "n");
    assert_eq!(
        created.spec.as_ref(),
        Some(&spec),
        "the spec reads back as sent"
    );
    assert_eq!(
        created.status.unwrap().status,
        VirtualNodeStatusCode::Active
    );
    let first = check_metadata(created.metadata.as_ref(), "mesh/m/virtualNode/n", 1);

    let described = describe_node(&client, "m", "n").await;
    assert_eq!(described.spec.as_ref(), Some(&spec));
    assert_eq!(described.metadata.as_ref(), Some(&first));

    // A spec without backends reads back with an empty list, as App Mesh fills it in.
    let bare = VirtualNodeSpec::builder().build();
    let updated = update_node(&client, "m", "n", bare).await;
    assert_eq!(
        updated.spec,
        Some(
            VirtualNodeSpec::builder()
                .set_backends(Some(vec![]))
                .build()
        )
    );
    let second = check_metadata(updated.metadata.as_ref(), "mesh/m/virtualNode/n", 2);
    assert_eq!(second.uid, first.uid);
    assert_eq!(second.created_at, first.created_at);

    let new_spec = node_spec(9090, "n2.m.local", &["c.local"]);
    let updated = update_node(&client, "m", "n", new_spec.clone()).await;
    assert_eq!(updated.spec.as_ref(), Some(&new_spec));
    assert_eq!(updated.metadata.unwrap().version, 3);

    create_node(&client, "m", "another").await;
    let listed = client
        .list_virtual_nodes()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.next_token(), None);
    let names: Vec<&str> = listed
        .virtual_nodes()
        .iter()
        .map(|n| n.virtual_node_name.as_str())
        .collect();
    assert_eq!(names, ["another", "n"]);
    let item = &listed.virtual_nodes()[1];
    assert_eq!(item.mesh_name, "m");
    assert_eq!(item.arn, arn("mesh/m/virtualNode/n"));
    assert_eq!(item.version, 3);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);
    assert_eq!(item.created_at, first.created_at);

    let deleted = client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .send()
        .await
        .unwrap()
        .virtual_node
        .unwrap();
    assert_eq!(deleted.virtual_node_name, "n");
    assert_eq!(
        deleted.status.unwrap().status,
        VirtualNodeStatusCode::Deleted
    );
    assert_eq!(deleted.spec, Some(new_spec));
    check_metadata(deleted.metadata.as_ref(), "mesh/m/virtualNode/n", 3);
    let gone = client
        .describe_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .send()
        .await;
    expect_exception!(NotFound, gone);
    assert_eq!(node_names(&client, "m").await, ["another"]);

    // The name is free again: a new node, with a new uid, starting over at version 1.
    let again = client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .spec(spec.clone())
        .send()
        .await
        .unwrap()
        .virtual_node
        .unwrap();
    let again = check_metadata(again.metadata.as_ref(), "mesh/m/virtualNode/n", 1);
    assert_ne!(again.uid, first.uid);
}

#[tokio::test]
async fn virtual_router_and_route_create_describe_update_list_delete() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "blue").await;
    create_node(&client, "m", "green").await;

    let router = client
        .create_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .spec(router_spec(&[8080]))
        .send()
        .await
        .unwrap()
        .virtual_router
        .unwrap();
    assert_eq!(router.mesh_name, "m");
    assert_eq!(router.virtual_router_name, "r");
    assert_eq!(router.spec, Some(router_spec(&[8080])));
    assert_eq!(
        router.status.unwrap().status,
        VirtualRouterStatusCode::Active
    );
    let router_meta = check_metadata(router.metadata.as_ref(), "mesh/m/virtualRouter/r", 1);

    let described = describe_router(&client, "m", "r").await;
    assert_eq!(described.metadata.as_ref(), Some(&router_meta));
    assert_eq!(described.spec, Some(router_spec(&[8080])));

    let updated = client
        .update_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .spec(router_spec(&[9090]))
        .send()
        .await
        .unwrap()
        .virtual_router
        .unwrap();
    assert_eq!(updated.spec, Some(router_spec(&[9090])));
    let updated_meta = check_metadata(updated.metadata.as_ref(), "mesh/m/virtualRouter/r", 2);
    assert_eq!(updated_meta.uid, router_meta.uid);

    create_router(&client, "m", "a-router", &[80]).await;
    let routers = client
        .list_virtual_routers()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = routers
        .virtual_routers()
        .iter()
        .map(|r| r.virtual_router_name.as_str())
        .collect();
    assert_eq!(names, ["a-router", "r"]);
    let item = &routers.virtual_routers()[1];
    assert_eq!(item.arn, arn("mesh/m/virtualRouter/r"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);

    let spec = http_route_spec("/", &[("blue", 90), ("green", 10)], None);
    let route = create_route(&client, "m", "r", "x", spec.clone()).await;
    assert_eq!(route.mesh_name, "m");
    assert_eq!(route.virtual_router_name, "r");
    assert_eq!(route.route_name, "x");
    assert_eq!(route.spec.as_ref(), Some(&spec));
    assert_eq!(route.status.unwrap().status, RouteStatusCode::Active);
    let route_meta = check_metadata(route.metadata.as_ref(), "mesh/m/virtualRouter/r/route/x", 1);
    assert_eq!(
        route_meta.arn,
        "arn:aws:appmesh:us-east-1:111122223333:mesh/m/virtualRouter/r/route/x"
    );

    let described = describe_route(&client, "m", "r", "x").await;
    assert_eq!(described.spec.as_ref(), Some(&spec));
    assert_eq!(described.metadata.as_ref(), Some(&route_meta));

    let new_spec = {
        let mut spec = http_route_spec("/v2", &[("green", 1)], None);
        spec.priority = Some(10);
        spec
    };
    let updated = client
        .update_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("x")
        .spec(new_spec.clone())
        .send()
        .await
        .unwrap()
        .route
        .unwrap();
    assert_eq!(updated.spec.as_ref(), Some(&new_spec));
    let updated_meta = check_metadata(
        updated.metadata.as_ref(),
        "mesh/m/virtualRouter/r/route/x",
        2,
    );
    assert_eq!(updated_meta.uid, route_meta.uid);

    create_route(
        &client,
        "m",
        "r",
        "a",
        http_route_spec("/a", &[("blue", 1)], None),
    )
    .await;
    let routes = client
        .list_routes()
        .mesh_name("m")
        .virtual_router_name("r")
        .send()
        .await
        .unwrap();
    assert_eq!(routes.next_token(), None);
    let names: Vec<&str> = routes
        .routes()
        .iter()
        .map(|r| r.route_name.as_str())
        .collect();
    assert_eq!(names, ["a", "x"]);
    let item = &routes.routes()[1];
    assert_eq!(item.mesh_name, "m");
    assert_eq!(item.virtual_router_name, "r");
    assert_eq!(item.arn, arn("mesh/m/virtualRouter/r/route/x"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);
    // The other router has no routes.
    let empty = client
        .list_routes()
        .mesh_name("m")
        .virtual_router_name("a-router")
        .send()
        .await
        .unwrap();
    assert!(empty.routes().is_empty());

    let deleted = client
        .delete_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("x")
        .send()
        .await
        .unwrap()
        .route
        .unwrap();
    assert_eq!(deleted.route_name, "x");
    assert_eq!(deleted.status.unwrap().status, RouteStatusCode::Deleted);
    assert_eq!(deleted.spec, Some(new_spec));
    let gone = client
        .describe_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("x")
        .send()
        .await;
    expect_exception!(NotFound, gone);

    client
        .delete_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("a")
        .send()
        .await
        .unwrap();
    let deleted = client
        .delete_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .send()
        .await
        .unwrap()
        .virtual_router
        .unwrap();
    assert_eq!(
        deleted.status.unwrap().status,
        VirtualRouterStatusCode::Deleted
    );
    check_metadata(deleted.metadata.as_ref(), "mesh/m/virtualRouter/r", 2);
    let gone = client
        .describe_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .send()
        .await;
    expect_exception!(NotFound, gone);
}

#[tokio::test]
async fn virtual_service_create_describe_update_list_delete() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "n").await;
    create_router(&client, "m", "r", &[8080]).await;

    let created = create_service(&client, "m", "svc.local", node_provided("n")).await;
    assert_eq!(created.mesh_name, "m");
    assert_eq!(created.virtual_service_name, "svc.local");
    assert_eq!(created.spec, Some(node_provided("n")));
    assert_eq!(
        created.status.unwrap().status,
        VirtualServiceStatusCode::Active
    );
    let first = check_metadata(
        created.metadata.as_ref(),
        "mesh/m/virtualService/svc.local",
        1,
    );

    let described = describe_service(&client, "m", "svc.local").await;
    assert_eq!(described.spec, Some(node_provided("n")));
    assert_eq!(described.metadata.as_ref(), Some(&first));

    let updated = client
        .update_virtual_service()
        .mesh_name("m")
        .virtual_service_name("svc.local")
        .spec(router_provided("r"))
        .send()
        .await
        .unwrap()
        .virtual_service
        .unwrap();
    assert_eq!(updated.spec, Some(router_provided("r")));
    let second = check_metadata(
        updated.metadata.as_ref(),
        "mesh/m/virtualService/svc.local",
        2,
    );
    assert_eq!(second.uid, first.uid);

    // A virtual service without a provider is allowed.
    create_service(
        &client,
        "m",
        "bare.local",
        VirtualServiceSpec::builder().build(),
    )
    .await;
    let listed = client
        .list_virtual_services()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .virtual_services()
        .iter()
        .map(|s| s.virtual_service_name.as_str())
        .collect();
    assert_eq!(names, ["bare.local", "svc.local"]);
    let item = &listed.virtual_services()[1];
    assert_eq!(item.arn, arn("mesh/m/virtualService/svc.local"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);

    let deleted = client
        .delete_virtual_service()
        .mesh_name("m")
        .virtual_service_name("svc.local")
        .send()
        .await
        .unwrap()
        .virtual_service
        .unwrap();
    assert_eq!(
        deleted.status.unwrap().status,
        VirtualServiceStatusCode::Deleted
    );
    assert_eq!(deleted.spec, Some(router_provided("r")));
    let gone = client
        .describe_virtual_service()
        .mesh_name("m")
        .virtual_service_name("svc.local")
        .send()
        .await;
    expect_exception!(NotFound, gone);
}

#[tokio::test]
async fn virtual_gateway_and_gateway_route_create_describe_update_list_delete() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_service(
        &client,
        "m",
        "svc.local",
        VirtualServiceSpec::builder().build(),
    )
    .await;
    create_service(
        &client,
        "m",
        "other.local",
        VirtualServiceSpec::builder().build(),
    )
    .await;

    let spec = gateway_spec(&[8080], VirtualGatewayPortProtocol::Http);
    let gateway = create_gateway(&client, "m", "g", spec.clone()).await;
    assert_eq!(gateway.mesh_name, "m");
    assert_eq!(gateway.virtual_gateway_name, "g");
    assert_eq!(gateway.spec.as_ref(), Some(&spec));
    assert_eq!(
        gateway.status.unwrap().status,
        VirtualGatewayStatusCode::Active
    );
    let gateway_meta = check_metadata(gateway.metadata.as_ref(), "mesh/m/virtualGateway/g", 1);

    let described = describe_gateway(&client, "m", "g").await;
    assert_eq!(described.spec.as_ref(), Some(&spec));
    assert_eq!(described.metadata.as_ref(), Some(&gateway_meta));

    let new_spec = gateway_spec(&[8080], VirtualGatewayPortProtocol::Http2);
    let updated = client
        .update_virtual_gateway()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .spec(new_spec.clone())
        .send()
        .await
        .unwrap()
        .virtual_gateway
        .unwrap();
    assert_eq!(updated.spec.as_ref(), Some(&new_spec));
    assert_eq!(
        check_metadata(updated.metadata.as_ref(), "mesh/m/virtualGateway/g", 2).uid,
        gateway_meta.uid
    );

    let listed = client
        .list_virtual_gateways()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.next_token(), None);
    assert_eq!(listed.virtual_gateways().len(), 1);
    let item = &listed.virtual_gateways()[0];
    assert_eq!(item.virtual_gateway_name, "g");
    assert_eq!(item.arn, arn("mesh/m/virtualGateway/g"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);

    let spec = gateway_route_spec("/", "svc.local", None);
    let route = create_gateway_route(&client, "m", "g", "gr", spec.clone()).await;
    assert_eq!(route.mesh_name, "m");
    assert_eq!(route.virtual_gateway_name, "g");
    assert_eq!(route.gateway_route_name, "gr");
    assert_eq!(route.spec.as_ref(), Some(&spec));
    assert_eq!(route.status.unwrap().status, GatewayRouteStatusCode::Active);
    let route_meta = check_metadata(
        route.metadata.as_ref(),
        "mesh/m/virtualGateway/g/gatewayRoute/gr",
        1,
    );

    let described = describe_gateway_route(&client, "m", "g", "gr").await;
    assert_eq!(described.spec.as_ref(), Some(&spec));
    assert_eq!(described.metadata.as_ref(), Some(&route_meta));

    let new_route_spec = {
        let mut spec = gateway_route_spec("/other/", "other.local", None);
        spec.priority = Some(5);
        spec
    };
    let updated = client
        .update_gateway_route()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .gateway_route_name("gr")
        .spec(new_route_spec.clone())
        .send()
        .await
        .unwrap()
        .gateway_route
        .unwrap();
    assert_eq!(updated.spec.as_ref(), Some(&new_route_spec));
    assert_eq!(
        check_metadata(
            updated.metadata.as_ref(),
            "mesh/m/virtualGateway/g/gatewayRoute/gr",
            2
        )
        .uid,
        route_meta.uid
    );

    let listed = client
        .list_gateway_routes()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.next_token(), None);
    assert_eq!(listed.gateway_routes().len(), 1);
    let item = &listed.gateway_routes()[0];
    assert_eq!(item.gateway_route_name, "gr");
    assert_eq!(item.virtual_gateway_name, "g");
    assert_eq!(item.mesh_name, "m");
    assert_eq!(item.arn, arn("mesh/m/virtualGateway/g/gatewayRoute/gr"));
    assert_eq!(item.version, 2);
    assert_eq!(item.mesh_owner, ACCOUNT_ID);
    assert_eq!(item.resource_owner, ACCOUNT_ID);

    let deleted = client
        .delete_gateway_route()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .gateway_route_name("gr")
        .send()
        .await
        .unwrap()
        .gateway_route
        .unwrap();
    assert_eq!(
        deleted.status.unwrap().status,
        GatewayRouteStatusCode::Deleted
    );
    assert_eq!(deleted.spec, Some(new_route_spec));
    let gone = client
        .describe_gateway_route()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .gateway_route_name("gr")
        .send()
        .await;
    expect_exception!(NotFound, gone);

    let deleted = client
        .delete_virtual_gateway()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .send()
        .await
        .unwrap()
        .virtual_gateway
        .unwrap();
    assert_eq!(
        deleted.status.unwrap().status,
        VirtualGatewayStatusCode::Deleted
    );
    check_metadata(deleted.metadata.as_ref(), "mesh/m/virtualGateway/g", 2);
    let listed = client
        .list_virtual_gateways()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    assert!(listed.virtual_gateways().is_empty());
}

#[tokio::test]
async fn richer_specs_of_every_route_kind_read_back_as_sent() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "n").await;
    create_router(&client, "m", "r", &[8080]).await;

    let seconds = |value: i64| {
        Duration::builder()
            .value(value)
            .unit(DurationUnit::S)
            .build()
    };
    let http2 = RouteSpec::builder()
        .priority(1)
        .http2_route(
            HttpRoute::builder()
                .r#match(
                    HttpRouteMatch::builder()
                        .path(HttpPathMatch::builder().exact("/exact").build())
                        .method(HttpMethod::Post)
                        .scheme(HttpScheme::Https)
                        .headers(
                            HttpRouteHeader::builder()
                                .name("x-canary")
                                .r#match(HeaderMatchMethod::Range(
                                    MatchRange::builder().start(1).end(5).build().unwrap(),
                                ))
                                .build()
                                .unwrap(),
                        )
                        .query_parameters(
                            HttpQueryParameter::builder()
                                .name("v")
                                .r#match(QueryParameterMatch::builder().exact("2").build())
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .action(
                    HttpRouteAction::builder()
                        .weighted_targets(target("n", 100))
                        .build()
                        .unwrap(),
                )
                .retry_policy(
                    HttpRetryPolicy::builder()
                        .max_retries(3)
                        .per_retry_timeout(seconds(2))
                        .http_retry_events("server-error")
                        .tcp_retry_events(TcpRetryPolicyEvent::ConnectionError)
                        .build()
                        .unwrap(),
                )
                .timeout(HttpTimeout::builder().per_request(seconds(15)).build())
                .build(),
        )
        .build();
    let grpc = RouteSpec::builder()
        .grpc_route(
            GrpcRoute::builder()
                .r#match(
                    GrpcRouteMatch::builder()
                        .service_name("pkg.Service")
                        .method_name("Get")
                        .metadata(
                            GrpcRouteMetadata::builder()
                                .name("tenant")
                                .r#match(GrpcRouteMetadataMatchMethod::Exact("a".into()))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .action(
                    GrpcRouteAction::builder()
                        .weighted_targets(target("n", 1))
                        .build()
                        .unwrap(),
                )
                .retry_policy(
                    GrpcRetryPolicy::builder()
                        .max_retries(1)
                        .per_retry_timeout(seconds(1))
                        .grpc_retry_events(GrpcRetryPolicyEvent::Unavailable)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build();
    let tcp = RouteSpec::builder()
        .tcp_route(
            TcpRoute::builder()
                .action(
                    TcpRouteAction::builder()
                        .weighted_targets(target("n", 1))
                        .build()
                        .unwrap(),
                )
                .timeout(TcpTimeout::builder().idle(seconds(60)).build())
                .build(),
        )
        .build();
    for (name, spec) in [("http2", http2), ("grpc", grpc), ("tcp", tcp)] {
        let created = client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name(name)
            .spec(spec.clone())
            .send()
            .await
            .unwrap_or_else(|err| panic!("route {name}: {err:?}"))
            .route
            .unwrap();
        assert_eq!(created.spec.as_ref(), Some(&spec), "route {name}");
        let described = describe_route(&client, "m", "r", name).await;
        assert_eq!(described.spec.as_ref(), Some(&spec), "route {name}");
    }

    create_service(&client, "m", "svc.local", node_provided("n")).await;
    create_gateway(
        &client,
        "m",
        "g",
        gateway_spec(&[8080], VirtualGatewayPortProtocol::Grpc),
    )
    .await;
    let grpc_gateway = GatewayRouteSpec::builder()
        .grpc_route(
            GrpcGatewayRoute::builder()
                .r#match(
                    GrpcGatewayRouteMatch::builder()
                        .service_name("pkg.Service")
                        .hostname(
                            GatewayRouteHostnameMatch::builder()
                                .suffix(".example.com")
                                .build(),
                        )
                        .build(),
                )
                .action(
                    GrpcGatewayRouteAction::builder()
                        .target(gateway_target("svc.local"))
                        .build(),
                )
                .build(),
        )
        .build();
    let http2_gateway = GatewayRouteSpec::builder()
        .priority(3)
        .http2_route(
            HttpGatewayRoute::builder()
                .r#match(
                    HttpGatewayRouteMatch::builder()
                        .prefix("/api/")
                        .method(HttpMethod::Get)
                        .headers(
                            HttpGatewayRouteHeader::builder()
                                .name("x-env")
                                .r#match(HeaderMatchMethod::Exact("prod".into()))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .action(
                    HttpGatewayRouteAction::builder()
                        .target(gateway_target("svc.local"))
                        .rewrite(
                            HttpGatewayRouteRewrite::builder()
                                .prefix(HttpGatewayRoutePrefixRewrite::builder().value("/").build())
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build();
    for (name, spec) in [("grpc", grpc_gateway), ("http2", http2_gateway)] {
        let created = client
            .create_gateway_route()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .gateway_route_name(name)
            .spec(spec.clone())
            .send()
            .await
            .unwrap_or_else(|err| panic!("gateway route {name}: {err:?}"))
            .gateway_route
            .unwrap();
        assert_eq!(created.spec.as_ref(), Some(&spec), "gateway route {name}");
    }
}

// ---------------------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tags_are_set_overwritten_listed_and_removed() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    client
        .create_mesh()
        .mesh_name("m")
        .tags(tag("team", "core"))
        .tags(tag("env", "dev"))
        .send()
        .await
        .unwrap();
    let mesh_arn = arn("mesh/m");
    let tags_of = |arn: String| {
        let client = client.clone();
        async move {
            let out = client
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .unwrap();
            assert_eq!(out.next_token(), None);
            out.tags()
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect::<Vec<_>>()
        }
    };
    let pairs = |items: &[(&str, &str)]| {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        tags_of(mesh_arn.clone()).await,
        pairs(&[("team", "core"), ("env", "dev")])
    );

    tag_resource(
        &client,
        &mesh_arn,
        vec![tag("env", "prod"), tag("owner", "")],
    )
    .await;
    assert_eq!(
        tags_of(mesh_arn.clone()).await,
        pairs(&[("team", "core"), ("env", "prod"), ("owner", "")])
    );

    client
        .untag_resource()
        .resource_arn(&mesh_arn)
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(mesh_arn.clone()).await,
        pairs(&[("env", "prod"), ("owner", "")])
    );

    // Tagging is not an update of the resource.
    let mesh = describe_mesh(&client, "m").await;
    assert_eq!(mesh.metadata.unwrap().version, 1);

    // Tags of a resource inside a mesh, addressed by its ARN, are its own.
    create_router(&client, "m", "r", &[8080]).await;
    create_node(&client, "m", "n").await;
    client
        .create_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("x")
        .spec(http_route_spec("/", &[("n", 1)], None))
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap();
    let route_arn = arn("mesh/m/virtualRouter/r/route/x");
    assert_eq!(tags_of(route_arn.clone()).await, pairs(&[("k", "v")]));
    assert!(tags_of(arn("mesh/m/virtualRouter/r")).await.is_empty());
    tag_resource(&client, &route_arn, vec![tag("k2", "v2")]).await;
    assert_eq!(tags_of(route_arn).await, pairs(&[("k", "v"), ("k2", "v2")]));
    assert_eq!(
        tags_of(mesh_arn).await,
        pairs(&[("env", "prod"), ("owner", "")])
    );

    // Tags page like everything else.
    let many: Vec<TagRef> = (0..5).map(|i| tag(&format!("t{i}"), "x")).collect();
    let node_arn = arn("mesh/m/virtualNode/n");
    tag_resource(&client, &node_arn, many).await;
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = client
            .list_tags_for_resource()
            .resource_arn(&node_arn)
            .limit(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.tags().len() <= 2);
        keys.extend(out.tags().iter().map(|t| t.key.clone()));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(keys, ["t0", "t1", "t2", "t3", "t4"]);
}

#[tokio::test]
async fn tag_operations_on_missing_resources_are_not_found() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;

    let missing = arn("mesh/m/virtualNode/nope");
    let listed = client
        .list_tags_for_resource()
        .resource_arn(&missing)
        .send()
        .await;
    expect_exception!(NotFound, listed);
    let tagged = client
        .tag_resource()
        .resource_arn(&missing)
        .tags(tag("a", "b"))
        .send()
        .await;
    expect_exception!(NotFound, tagged);
    let untagged = client
        .untag_resource()
        .resource_arn(&missing)
        .tag_keys("a")
        .send()
        .await;
    expect_exception!(NotFound, untagged);
    // An ARN of another account or a malformed one names nothing here.
    let foreign = client
        .list_tags_for_resource()
        .resource_arn("arn:aws:appmesh:us-east-1:444455556666:mesh/m")
        .send()
        .await;
    expect_exception!(NotFound, foreign);
    let garbage = client
        .tag_resource()
        .resource_arn("not-an-arn")
        .tags(tag("a", "b"))
        .send()
        .await;
    expect_exception!(NotFound, garbage);
}

#[tokio::test]
async fn more_than_fifty_tags_are_refused_and_none_are_applied() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    let mesh_arn = arn("mesh/m");
    let tags = |from: usize, to: usize| {
        (from..to)
            .map(|i| tag(&format!("k{i:02}"), "v"))
            .collect::<Vec<_>>()
    };
    let count = |client: Client, arn: String| async move {
        client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap()
            .tags()
            .len()
    };

    let result = client
        .tag_resource()
        .resource_arn(&mesh_arn)
        .set_tags(Some(tags(0, 51)))
        .send()
        .await;
    let err = expect_exception!(TooManyTags, result);
    assert!(message(&err).contains("50"), "{err:?}");
    assert_eq!(count(client.clone(), mesh_arn.clone()).await, 0);

    tag_resource(&client, &mesh_arn, tags(0, 45)).await;
    // 45 + 6 new keys would make 51: nothing of the request is applied.
    let result = client
        .tag_resource()
        .resource_arn(&mesh_arn)
        .set_tags(Some(tags(40, 51)))
        .send()
        .await;
    expect_exception!(TooManyTags, result);
    assert_eq!(count(client.clone(), mesh_arn.clone()).await, 45);
    // Overwriting existing keys does not count twice: 45 + 5 = 50 is allowed.
    tag_resource(&client, &mesh_arn, tags(40, 50)).await;
    assert_eq!(count(client.clone(), mesh_arn.clone()).await, 50);
    let result = client
        .tag_resource()
        .resource_arn(&mesh_arn)
        .tags(tag("one-more", "v"))
        .send()
        .await;
    expect_exception!(TooManyTags, result);
    assert_eq!(count(client.clone(), mesh_arn).await, 50);

    // Create operations have no TooManyTagsException: 51 tags there break the model's
    // TagList size like any other constraint, and nothing is created.
    let result = client
        .create_mesh()
        .mesh_name("m2")
        .set_tags(Some(tags(0, 51)))
        .send()
        .await;
    let err = expect_exception!(BadRequest, result);
    assert_eq!(message(&err), "tags: must contain at most 50 item(s)");
    let result = client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .spec(node_spec(80, "n.local", &[]))
        .set_tags(Some(tags(0, 51)))
        .send()
        .await;
    expect_exception!(BadRequest, result);
    assert_eq!(mesh_names(&client).await.len(), 1);
    assert!(node_names(&client, "m").await.is_empty());
    // Exactly 50 at create is fine.
    client
        .create_mesh()
        .mesh_name("m3")
        .set_tags(Some(tags(0, 50)))
        .send()
        .await
        .unwrap();
    assert_eq!(count(client.clone(), arn("mesh/m3")).await, 50);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_meshes_resources_parents_and_references_are_not_found() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);

    // A missing mesh, for operations of every kind.
    let err = expect_exception!(
        NotFound,
        client.describe_mesh().mesh_name("nope").send().await
    );
    assert!(message(&err).contains("nope"), "{err:?}");
    expect_exception!(
        NotFound,
        client.update_mesh().mesh_name("nope").send().await
    );
    let err = expect_exception!(
        NotFound,
        client
            .create_virtual_node()
            .mesh_name("nope")
            .virtual_node_name("n")
            .spec(node_spec(80, "n.local", &[]))
            .send()
            .await
    );
    assert!(message(&err).contains("nope"), "{err:?}");
    expect_exception!(
        NotFound,
        client.list_virtual_nodes().mesh_name("nope").send().await
    );
    expect_exception!(
        NotFound,
        client
            .list_virtual_services()
            .mesh_name("nope")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .describe_virtual_gateway()
            .mesh_name("nope")
            .virtual_gateway_name("g")
            .send()
            .await
    );

    // Missing resources in an existing mesh.
    create_mesh(&client, "m").await;
    let err = expect_exception!(
        NotFound,
        client
            .describe_virtual_node()
            .mesh_name("m")
            .virtual_node_name("ghost")
            .send()
            .await
    );
    assert!(message(&err).contains("ghost"), "{err:?}");
    expect_exception!(
        NotFound,
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("ghost")
            .spec(router_spec(&[80]))
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .delete_virtual_service()
            .mesh_name("m")
            .virtual_service_name("ghost.local")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .delete_virtual_gateway()
            .mesh_name("m")
            .virtual_gateway_name("ghost")
            .send()
            .await
    );

    // Another account's mesh of the same name is not here; meshd's own account is.
    create_node(&client, "m", "n").await;
    expect_exception!(
        NotFound,
        client
            .describe_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .mesh_owner("444455556666")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .list_virtual_nodes()
            .mesh_name("m")
            .mesh_owner("444455556666")
            .send()
            .await
    );
    let own = client
        .describe_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .mesh_owner(ACCOUNT_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(own.virtual_node.unwrap().virtual_node_name, "n");

    // A missing parent router or gateway.
    let err = expect_exception!(
        NotFound,
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("no-router")
            .route_name("x")
            .spec(http_route_spec("/", &[("n", 1)], None))
            .send()
            .await
    );
    assert!(message(&err).contains("no-router"), "{err:?}");
    expect_exception!(
        NotFound,
        client
            .list_routes()
            .mesh_name("m")
            .virtual_router_name("no-router")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .describe_route()
            .mesh_name("m")
            .virtual_router_name("no-router")
            .route_name("x")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .list_gateway_routes()
            .mesh_name("m")
            .virtual_gateway_name("no-gateway")
            .send()
            .await
    );
    expect_exception!(
        NotFound,
        client
            .create_gateway_route()
            .mesh_name("m")
            .virtual_gateway_name("no-gateway")
            .gateway_route_name("gr")
            .spec(gateway_route_spec("/", "svc.local", None))
            .send()
            .await
    );

    // Missing resources that a spec names.
    create_router(&client, "m", "r", &[8080]).await;
    let err = expect_exception!(
        NotFound,
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("x")
            .spec(http_route_spec("/", &[("n", 1), ("missing-node", 1)], None))
            .send()
            .await
    );
    assert!(message(&err).contains("missing-node"), "{err:?}");
    let err = expect_exception!(
        NotFound,
        client
            .create_virtual_service()
            .mesh_name("m")
            .virtual_service_name("svc.local")
            .spec(node_provided("missing-node"))
            .send()
            .await
    );
    assert!(message(&err).contains("missing-node"), "{err:?}");
    expect_exception!(
        NotFound,
        client
            .create_virtual_service()
            .mesh_name("m")
            .virtual_service_name("svc.local")
            .spec(router_provided("missing-router"))
            .send()
            .await
    );
    create_gateway(
        &client,
        "m",
        "g",
        gateway_spec(&[8080], VirtualGatewayPortProtocol::Http),
    )
    .await;
    let err = expect_exception!(
        NotFound,
        client
            .create_gateway_route()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .gateway_route_name("gr")
            .spec(gateway_route_spec("/", "missing.local", None))
            .send()
            .await
    );
    assert!(message(&err).contains("missing.local"), "{err:?}");

    // None of the failed creates left anything behind.
    assert!(
        client
            .list_routes()
            .mesh_name("m")
            .virtual_router_name("r")
            .send()
            .await
            .unwrap()
            .routes()
            .is_empty()
    );
    assert!(
        client
            .list_virtual_services()
            .mesh_name("m")
            .send()
            .await
            .unwrap()
            .virtual_services()
            .is_empty()
    );
    assert!(
        client
            .list_gateway_routes()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .send()
            .await
            .unwrap()
            .gateway_routes()
            .is_empty()
    );
}

#[tokio::test]
async fn duplicate_names_are_conflicts() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    let err = expect_exception!(Conflict, client.create_mesh().mesh_name("m").send().await);
    assert!(message(&err).contains("already exists"), "{err:?}");

    create_node(&client, "m", "n").await;
    expect_exception!(
        Conflict,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(node_spec(9090, "other.local", &[]))
            .send()
            .await
    );
    // The first one is untouched.
    let node = describe_node(&client, "m", "n").await;
    assert_eq!(node.spec, Some(node_spec(8080, "n.local", &[])));
    assert_eq!(node.metadata.unwrap().version, 1);

    create_router(&client, "m", "r", &[8080]).await;
    let spec = http_route_spec("/", &[("n", 1)], None);
    create_route(&client, "m", "r", "x", spec.clone()).await;
    expect_exception!(
        Conflict,
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("x")
            .spec(spec.clone())
            .send()
            .await
    );
    // The same name under another router, or in another mesh, is a different resource.
    create_router(&client, "m", "r2", &[8080]).await;
    create_route(&client, "m", "r2", "x", spec).await;
    create_mesh(&client, "m2").await;
    create_node(&client, "m2", "n").await;
}

#[tokio::test]
async fn deleting_what_is_in_use_is_refused() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "n").await;

    expect_exception!(InUse, client.delete_mesh().mesh_name("m").send().await);

    create_service(&client, "m", "svc.local", node_provided("n")).await;
    let err = expect_exception!(
        InUse,
        client
            .delete_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .send()
            .await
    );
    assert!(message(&err).contains("svc.local"), "{err:?}");

    create_router(&client, "m", "r", &[8080]).await;
    create_node(&client, "m", "n2").await;
    create_route(
        &client,
        "m",
        "r",
        "x",
        http_route_spec("/", &[("n2", 1)], None),
    )
    .await;
    let err = expect_exception!(
        InUse,
        client
            .delete_virtual_router()
            .mesh_name("m")
            .virtual_router_name("r")
            .send()
            .await
    );
    assert!(message(&err).contains('x'), "{err:?}");

    // A router that a virtual service names as provider is in use even without routes.
    create_router(&client, "m", "provider", &[8080]).await;
    create_service(&client, "m", "routed.local", router_provided("provider")).await;
    let err = expect_exception!(
        InUse,
        client
            .delete_virtual_router()
            .mesh_name("m")
            .virtual_router_name("provider")
            .send()
            .await
    );
    assert!(message(&err).contains("routed.local"), "{err:?}");

    create_gateway(
        &client,
        "m",
        "g",
        gateway_spec(&[8080], VirtualGatewayPortProtocol::Http),
    )
    .await;
    create_gateway_route(
        &client,
        "m",
        "g",
        "gr",
        gateway_route_spec("/", "svc.local", None),
    )
    .await;
    expect_exception!(
        InUse,
        client
            .delete_virtual_gateway()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .send()
            .await
    );

    // Refused deletes changed nothing.
    for (name, version) in [("n", 1), ("n2", 1)] {
        let node = describe_node(&client, "m", name).await;
        assert_eq!(node.status.unwrap().status, VirtualNodeStatusCode::Active);
        assert_eq!(node.metadata.unwrap().version, version);
    }
    expect_exception!(InUse, client.delete_mesh().mesh_name("m").send().await);

    // Removing the dependents first lets everything go, children before parents.
    client
        .delete_gateway_route()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .gateway_route_name("gr")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_gateway()
        .mesh_name("m")
        .virtual_gateway_name("g")
        .send()
        .await
        .unwrap();
    client
        .delete_route()
        .mesh_name("m")
        .virtual_router_name("r")
        .route_name("x")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_service()
        .mesh_name("m")
        .virtual_service_name("svc.local")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_service()
        .mesh_name("m")
        .virtual_service_name("routed.local")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_router()
        .mesh_name("m")
        .virtual_router_name("provider")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n2")
        .send()
        .await
        .unwrap();
    let deleted = client
        .delete_mesh()
        .mesh_name("m")
        .send()
        .await
        .unwrap()
        .mesh
        .unwrap();
    assert_eq!(
        deleted.status.unwrap().status,
        Some(MeshStatusCode::Deleted)
    );
    assert!(mesh_names(&client).await.is_empty());
}

#[tokio::test]
async fn invalid_input_the_sdk_can_send_is_a_bad_request() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;

    // A required member left out (the SDK only checks path labels).
    let err = expect_exception!(BadRequest, client.create_mesh().send().await);
    assert_eq!(message(&err), "meshName: must be set");
    let err = expect_exception!(
        BadRequest,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .send()
            .await
    );
    assert_eq!(message(&err), "spec: must be set");

    // A value out of range.
    let err = expect_exception!(
        BadRequest,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(node_spec(0, "n.local", &[]))
            .send()
            .await
    );
    assert_eq!(
        message(&err),
        "spec.listeners[0].portMapping.port: must be between 1 and 65535"
    );

    // An enum value outside the model.
    let err = expect_exception!(
        BadRequest,
        client
            .update_mesh()
            .mesh_name("m")
            .spec(
                MeshSpec::builder()
                    .egress_filter(
                        EgressFilter::builder()
                            .r#type(EgressFilterType::from("BOGUS"))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
    );
    assert!(
        message(&err).starts_with("spec.egressFilter.type: "),
        "{err:?}"
    );
    assert!(message(&err).contains("BOGUS"), "{err:?}");

    // A name longer than 255 characters.
    let err = expect_exception!(
        BadRequest,
        client.create_mesh().mesh_name("x".repeat(256)).send().await
    );
    assert_eq!(
        message(&err),
        "meshName: must be between 1 and 255 characters long"
    );

    // Nothing was created or changed.
    assert!(node_names(&client, "m").await.is_empty());
    let mesh = describe_mesh(&client, "m").await;
    assert_eq!(mesh.metadata.unwrap().version, 1);
    assert_eq!(mesh_names(&client).await.len(), 1);
}

#[tokio::test]
async fn small_limits_are_limit_exceeded() {
    let server = common::start_server_with_limits(Limits {
        meshes: 2,
        resources_per_mesh: 2,
        routes_per_parent: 1,
    })
    .await;
    let client = common::sdk_client(server.api_addr);

    client
        .create_mesh()
        .mesh_name("m")
        .client_token("mesh-m")
        .send()
        .await
        .unwrap();
    create_mesh(&client, "m2").await;
    let err = expect_exception!(
        LimitExceeded,
        client.create_mesh().mesh_name("m3").send().await
    );
    assert!(message(&err).contains('2'), "{err:?}");
    assert_eq!(mesh_names(&client).await.len(), 2);
    // A retry of an earlier create is answered from its record, not counted again.
    let retried = client
        .create_mesh()
        .mesh_name("m")
        .client_token("mesh-m")
        .send()
        .await
        .unwrap();
    assert_eq!(retried.mesh.unwrap().metadata.unwrap().version, 1);

    create_node(&client, "m", "a").await;
    create_node(&client, "m", "b").await;
    expect_exception!(
        LimitExceeded,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("c")
            .spec(node_spec(80, "c.local", &[]))
            .send()
            .await
    );
    assert_eq!(node_names(&client, "m").await, ["a", "b"]);
    // Each kind is counted on its own, and each mesh on its own.
    create_router(&client, "m", "r", &[8080]).await;
    create_node(&client, "m2", "c").await;

    create_route(
        &client,
        "m",
        "r",
        "x",
        http_route_spec("/", &[("a", 1)], None),
    )
    .await;
    expect_exception!(
        LimitExceeded,
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("y")
            .spec(http_route_spec("/y", &[("a", 1)], None))
            .send()
            .await
    );

    // Room made by a delete can be used again.
    client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("b")
        .send()
        .await
        .unwrap();
    create_node(&client, "m", "c").await;
    assert_eq!(node_names(&client, "m").await, ["a", "c"]);
}

// ---------------------------------------------------------------------------------------
// Pagination
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn twenty_five_virtual_nodes_page_in_name_order() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    // Created out of order, so that name order is not creation order.
    for i in 0..25 {
        let n = (i * 7) % 25;
        create_node(&client, "m", &format!("node-{n:02}")).await;
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_virtual_nodes()
            .mesh_name("m")
            .limit(10)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        sizes.push(out.virtual_nodes().len());
        for node in out.virtual_nodes() {
            assert_eq!(node.mesh_name, "m");
            assert_eq!(
                node.arn,
                arn(&format!("mesh/m/virtualNode/{}", node.virtual_node_name))
            );
            assert_eq!(node.version, 1);
            seen.push(node.virtual_node_name.clone());
        }
        match out.next_token() {
            Some(next) => {
                assert!(!next.is_empty());
                token = Some(next.to_string());
            }
            None => break,
        }
        assert!(sizes.len() < 10, "pagination does not end");
    }
    assert_eq!(sizes, [10, 10, 5]);
    let expected: Vec<String> = (0..25).map(|n| format!("node-{n:02}")).collect();
    assert_eq!(seen, expected, "all names, in order, without repeats");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 25);

    // Without a limit, all 25 fit in one page.
    let all = client
        .list_virtual_nodes()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    assert_eq!(all.virtual_nodes().len(), 25);
    assert_eq!(all.next_token(), None);
    // A limit equal to the count ends without a token.
    let exact = client
        .list_virtual_nodes()
        .mesh_name("m")
        .limit(25)
        .send()
        .await
        .unwrap();
    assert_eq!(exact.virtual_nodes().len(), 25);
    assert_eq!(exact.next_token(), None);

    // The SDK's paginator sees the same.
    let pages: Vec<_> = client
        .list_virtual_nodes()
        .mesh_name("m")
        .limit(10)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let names: Vec<String> = pages
        .iter()
        .flat_map(|page| {
            page.virtual_nodes()
                .iter()
                .map(|n| n.virtual_node_name.clone())
        })
        .collect();
    assert_eq!(names, expected);

    // A token stays valid when an item it names is deleted between pages.
    let first = client
        .list_virtual_nodes()
        .mesh_name("m")
        .limit(10)
        .send()
        .await
        .unwrap();
    client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("node-09")
        .send()
        .await
        .unwrap();
    let second = client
        .list_virtual_nodes()
        .mesh_name("m")
        .limit(10)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.virtual_nodes()[0].virtual_node_name, "node-10");
}

#[tokio::test]
async fn a_list_without_a_limit_returns_at_most_one_hundred() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    for i in 0..101 {
        create_node(&client, "m", &format!("n{i:03}")).await;
    }
    let first = client
        .list_virtual_nodes()
        .mesh_name("m")
        .send()
        .await
        .unwrap();
    assert_eq!(first.virtual_nodes().len(), 100);
    assert_eq!(first.virtual_nodes()[99].virtual_node_name, "n099");
    let token = first.next_token().expect("one more remains");
    let second = client
        .list_virtual_nodes()
        .mesh_name("m")
        .next_token(token)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = second
        .virtual_nodes()
        .iter()
        .map(|n| n.virtual_node_name.as_str())
        .collect();
    assert_eq!(names, ["n100"]);
    assert_eq!(second.next_token(), None);
}

#[tokio::test]
async fn every_list_operation_pages() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    for mesh in ["m", "m1", "m2"] {
        create_mesh(&client, mesh).await;
    }
    create_node(&client, "m", "n").await;
    create_gateway(
        &client,
        "m",
        "g",
        gateway_spec(&[8080], VirtualGatewayPortProtocol::Http),
    )
    .await;
    for i in 0..3 {
        create_router(&client, "m", &format!("r{i}"), &[8080]).await;
        create_route(
            &client,
            "m",
            "r0",
            &format!("x{i}"),
            http_route_spec(&format!("/{i}"), &[("n", 1)], None),
        )
        .await;
        create_service(&client, "m", &format!("s{i}.local"), node_provided("n")).await;
        create_gateway(
            &client,
            "m",
            &format!("g{i}"),
            gateway_spec(&[8080], VirtualGatewayPortProtocol::Http),
        )
        .await;
        create_gateway_route(
            &client,
            "m",
            "g",
            &format!("gr{i}"),
            gateway_route_spec(&format!("/{i}/"), "s0.local", None),
        )
        .await;
    }

    macro_rules! pages {
        ($request:expr, $items:ident, $name:ident) => {{
            let mut names = Vec::new();
            let mut sizes = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = $request
                    .limit(2)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .unwrap();
                sizes.push(out.$items().len());
                names.extend(out.$items().iter().map(|item| item.$name.clone()));
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            (sizes, names)
        }};
    }
    let (sizes, names) = pages!(client.list_meshes(), meshes, mesh_name);
    assert_eq!(
        (sizes, names),
        (vec![2, 1], vec!["m".to_string(), "m1".into(), "m2".into()])
    );
    let (sizes, names) = pages!(
        client.list_virtual_routers().mesh_name("m"),
        virtual_routers,
        virtual_router_name
    );
    assert_eq!(
        (sizes, names),
        (vec![2, 1], vec!["r0".to_string(), "r1".into(), "r2".into()])
    );
    let (sizes, names) = pages!(
        client
            .list_routes()
            .mesh_name("m")
            .virtual_router_name("r0"),
        routes,
        route_name
    );
    assert_eq!(
        (sizes, names),
        (vec![2, 1], vec!["x0".to_string(), "x1".into(), "x2".into()])
    );
    let (sizes, names) = pages!(
        client.list_virtual_services().mesh_name("m"),
        virtual_services,
        virtual_service_name
    );
    assert_eq!(
        (sizes, names),
        (
            vec![2, 1],
            vec!["s0.local".to_string(), "s1.local".into(), "s2.local".into()]
        )
    );
    let (sizes, names) = pages!(
        client.list_virtual_gateways().mesh_name("m"),
        virtual_gateways,
        virtual_gateway_name
    );
    assert_eq!(
        (sizes, names),
        (
            vec![2, 2],
            vec!["g".to_string(), "g0".into(), "g1".into(), "g2".into()]
        )
    );
    let (sizes, names) = pages!(
        client
            .list_gateway_routes()
            .mesh_name("m")
            .virtual_gateway_name("g"),
        gateway_routes,
        gateway_route_name
    );
    assert_eq!(
        (sizes, names),
        (
            vec![2, 1],
            vec!["gr0".to_string(), "gr1".into(), "gr2".into()]
        )
    );
    let (sizes, names) = pages!(
        client.list_virtual_nodes().mesh_name("m"),
        virtual_nodes,
        virtual_node_name
    );
    assert_eq!((sizes, names), (vec![1], vec!["n".to_string()]));
    // Meshes that exist but hold nothing list empty, without a token.
    let empty = client
        .list_virtual_nodes()
        .mesh_name("m1")
        .send()
        .await
        .unwrap();
    assert!(empty.virtual_nodes().is_empty());
    assert_eq!(empty.next_token(), None);
}

#[tokio::test]
async fn list_limits_outside_one_to_one_hundred_and_foreign_tokens_are_bad_requests() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "n").await;

    for limit in [0, 101, -1] {
        let err = expect_exception!(
            BadRequest,
            client
                .list_virtual_nodes()
                .mesh_name("m")
                .limit(limit)
                .send()
                .await
        );
        assert_eq!(
            message(&err),
            "limit: must be between 1 and 100",
            "limit {limit}"
        );
        expect_exception!(BadRequest, client.list_meshes().limit(limit).send().await);
    }
    for limit in [1, 100] {
        let out = client
            .list_virtual_nodes()
            .mesh_name("m")
            .limit(limit)
            .send()
            .await
            .unwrap();
        assert_eq!(out.virtual_nodes().len(), 1);
    }
    expect_exception!(
        BadRequest,
        client
            .list_routes()
            .mesh_name("m")
            .virtual_router_name("r")
            .limit(0)
            .send()
            .await
    );
    expect_exception!(
        BadRequest,
        client
            .list_tags_for_resource()
            .resource_arn(arn("mesh/m"))
            .limit(0)
            .send()
            .await
    );
    let err = expect_exception!(
        BadRequest,
        client
            .list_virtual_nodes()
            .mesh_name("m")
            .next_token("not-a-token")
            .send()
            .await
    );
    assert!(message(&err).starts_with("nextToken: "), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_create_repeated_with_its_client_token_returns_the_first_result() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    let mesh1 = client
        .create_mesh()
        .mesh_name("m")
        .client_token("token-mesh")
        .send()
        .await
        .unwrap();
    let mesh2 = client
        .create_mesh()
        .mesh_name("m")
        .client_token("token-mesh")
        .send()
        .await
        .unwrap();
    assert_eq!(mesh1.mesh, mesh2.mesh, "the retry gets the first answer");
    assert_eq!(mesh_names(&client).await.len(), 1);

    let create = || {
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(node_spec(8080, "n.local", &["a.local"]))
            .client_token("token-node")
    };
    let first = create().send().await.unwrap().virtual_node.unwrap();
    let second = create().send().await.unwrap().virtual_node.unwrap();
    let first_meta = first.metadata.as_ref().unwrap();
    let second_meta = second.metadata.as_ref().unwrap();
    assert_eq!(second_meta.uid, first_meta.uid);
    assert_eq!(second_meta.version, 1);
    assert_eq!(second_meta.created_at, first_meta.created_at);
    assert_eq!(second, first);
    assert_eq!(node_names(&client, "m").await, ["n"]);

    // Without a token (the SDK makes a fresh one each time) the repeat is a duplicate.
    expect_exception!(
        Conflict,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(node_spec(8080, "n.local", &["a.local"]))
            .send()
            .await
    );

    // The retry still gets the first answer after the node has changed since.
    update_node(&client, "m", "n", node_spec(9090, "n.local", &[])).await;
    let third = create().send().await.unwrap().virtual_node.unwrap();
    assert_eq!(third.metadata.unwrap().version, 1);
    let current = describe_node(&client, "m", "n").await;
    assert_eq!(
        current.metadata.unwrap().version,
        2,
        "the retry changed nothing"
    );
}

#[tokio::test]
async fn a_client_token_reused_for_a_different_request_is_a_conflict() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    client
        .create_mesh()
        .mesh_name("m")
        .client_token("tok")
        .send()
        .await
        .unwrap();

    // Same token, different name.
    let err = expect_exception!(
        Conflict,
        client
            .create_mesh()
            .mesh_name("m2")
            .client_token("tok")
            .send()
            .await
    );
    assert!(message(&err).contains("tok"), "{err:?}");
    assert_eq!(mesh_names(&client).await, ["m"]);

    // Same token and name, different spec.
    client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .spec(node_spec(8080, "n.local", &[]))
        .client_token("node-token")
        .send()
        .await
        .unwrap();
    expect_exception!(
        Conflict,
        client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("n")
            .spec(node_spec(9090, "n.local", &[]))
            .client_token("node-token")
            .send()
            .await
    );
    let node = describe_node(&client, "m", "n").await;
    assert_eq!(node.spec, Some(node_spec(8080, "n.local", &[])));
    assert_eq!(node.metadata.unwrap().version, 1);

    // Same token used for an update of another resource.
    create_router(&client, "m", "r", &[8080]).await;
    expect_exception!(
        Conflict,
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("r")
            .spec(router_spec(&[9090]))
            .client_token("node-token")
            .send()
            .await
    );
    let router = describe_router(&client, "m", "r").await;
    assert_eq!(router.metadata.unwrap().version, 1);
    assert_eq!(router.spec, Some(router_spec(&[8080])));
}

#[tokio::test]
async fn an_update_repeated_with_its_client_token_is_applied_once() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_router(&client, "m", "r", &[8080]).await;

    let update = || {
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("r")
            .spec(router_spec(&[9090]))
            .client_token("update-1")
    };
    let first = update().send().await.unwrap().virtual_router.unwrap();
    let second = update().send().await.unwrap().virtual_router.unwrap();
    assert_eq!(first.metadata.as_ref().unwrap().version, 2);
    assert_eq!(second, first);
    let current = describe_router(&client, "m", "r").await;
    assert_eq!(current.metadata.unwrap().version, 2, "applied once");

    // A new token is a new update.
    let third = client
        .update_virtual_router()
        .mesh_name("m")
        .virtual_router_name("r")
        .spec(router_spec(&[9090]))
        .client_token("update-2")
        .send()
        .await
        .unwrap()
        .virtual_router
        .unwrap();
    assert_eq!(third.metadata.unwrap().version, 3);
    // Reusing the first token with another spec is a conflict and changes nothing.
    expect_exception!(
        Conflict,
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("r")
            .spec(router_spec(&[7070]))
            .client_token("update-1")
            .send()
            .await
    );
    let current = describe_router(&client, "m", "r").await;
    assert_eq!(current.metadata.unwrap().version, 3);
    assert_eq!(current.spec, Some(router_spec(&[9090])));
}

// ---------------------------------------------------------------------------------------
// Multiple listeners
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn routes_of_a_router_with_two_listeners_must_name_a_port() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client, "m").await;
    create_node(&client, "m", "n").await;
    create_router(&client, "m", "r", &[8080, 8081]).await;

    let create = |name: &str, port: Option<i32>| {
        client
            .create_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name(name)
            .spec(http_route_spec("/", &[("n", 1)], port))
            .send()
    };
    let err = expect_exception!(BadRequest, create("no-port", None).await);
    let text = message(&err);
    assert!(
        text.starts_with("spec.httpRoute.match.port: must be set"),
        "{text}"
    );
    assert!(text.contains("more than one listener"), "{text}");
    let err = expect_exception!(BadRequest, create("bad-port", Some(9999)).await);
    assert!(
        message(&err).starts_with("spec.httpRoute.match.port: "),
        "{err:?}"
    );
    assert!(message(&err).contains("9999"), "{err:?}");
    let ok = create("with-port", Some(8081))
        .await
        .unwrap()
        .route
        .unwrap();
    assert_eq!(ok.spec, Some(http_route_spec("/", &[("n", 1)], Some(8081))));
    let routes = client
        .list_routes()
        .mesh_name("m")
        .virtual_router_name("r")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = routes
        .routes()
        .iter()
        .map(|r| r.route_name.as_str())
        .collect();
    assert_eq!(names, ["with-port"]);

    // Updating the route to drop its port is refused too.
    expect_exception!(
        BadRequest,
        client
            .update_route()
            .mesh_name("m")
            .virtual_router_name("r")
            .route_name("with-port")
            .spec(http_route_spec("/", &[("n", 1)], None))
            .send()
            .await
    );

    // A router with one listener does not need the port, but gaining a second listener
    // while it has a route without one is refused.
    create_router(&client, "m", "single", &[8080]).await;
    create_route(
        &client,
        "m",
        "single",
        "plain",
        http_route_spec("/", &[("n", 1)], None),
    )
    .await;
    let err = expect_exception!(
        BadRequest,
        client
            .update_virtual_router()
            .mesh_name("m")
            .virtual_router_name("single")
            .spec(router_spec(&[8080, 8081]))
            .send()
            .await
    );
    assert!(message(&err).starts_with("spec.listeners: "), "{err:?}");
    let single = describe_router(&client, "m", "single").await;
    assert_eq!(single.spec, Some(router_spec(&[8080])));
    assert_eq!(single.metadata.unwrap().version, 1);

    // The same rule holds for gateway routes of a gateway with two listeners.
    create_service(&client, "m", "svc.local", node_provided("n")).await;
    create_gateway(
        &client,
        "m",
        "g",
        gateway_spec(&[8080, 8081], VirtualGatewayPortProtocol::Http),
    )
    .await;
    let err = expect_exception!(
        BadRequest,
        client
            .create_gateway_route()
            .mesh_name("m")
            .virtual_gateway_name("g")
            .gateway_route_name("gr")
            .spec(gateway_route_spec("/", "svc.local", None))
            .send()
            .await
    );
    assert!(
        message(&err).starts_with("spec.httpRoute.match.port: must be set"),
        "{err:?}"
    );
    create_gateway_route(
        &client,
        "m",
        "g",
        "gr",
        gateway_route_spec("/", "svc.local", Some(8080)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Names that need percent-encoding
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn names_with_dots_spaces_and_colons_round_trip() {
    let server = common::start_server().await;
    let client = common::sdk_client(server.api_addr);
    let mesh = "my mesh";
    let created = client
        .create_mesh()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap()
        .mesh
        .unwrap();
    assert_eq!(created.mesh_name, mesh);
    check_metadata(created.metadata.as_ref(), "mesh/my mesh", 1);
    let described = describe_mesh(&client, mesh).await;
    assert_eq!(described.mesh_name, mesh);

    create_node(&client, mesh, "node:1").await;
    let node = describe_node(&client, mesh, "node:1").await;
    assert_eq!(node.virtual_node_name, "node:1");
    assert_eq!(node.mesh_name, mesh);
    check_metadata(node.metadata.as_ref(), "mesh/my mesh/virtualNode/node:1", 1);

    let service = create_service(&client, mesh, "svc.local", node_provided("node:1")).await;
    assert_eq!(service.virtual_service_name, "svc.local");
    check_metadata(
        service.metadata.as_ref(),
        "mesh/my mesh/virtualService/svc.local",
        1,
    );
    let described = describe_service(&client, mesh, "svc.local").await;
    assert_eq!(described.spec, Some(node_provided("node:1")));

    create_router(&client, mesh, "router+1", &[8080]).await;
    create_route(
        &client,
        mesh,
        "router+1",
        "route 1",
        http_route_spec("/", &[("node:1", 1)], None),
    )
    .await;
    let routes = client
        .list_routes()
        .mesh_name(mesh)
        .virtual_router_name("router+1")
        .send()
        .await
        .unwrap();
    assert_eq!(routes.routes().len(), 1);
    assert_eq!(routes.routes()[0].route_name, "route 1");
    assert_eq!(routes.routes()[0].virtual_router_name, "router+1");
    assert_eq!(
        routes.routes()[0].arn,
        arn("mesh/my mesh/virtualRouter/router+1/route/route 1")
    );

    // The ARN (in the query string) of such a resource addresses it for tags.
    let node_arn = arn("mesh/my mesh/virtualNode/node:1");
    tag_resource(&client, &node_arn, vec![tag("a b", "c+d")]).await;
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&node_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags(), [tag("a b", "c+d")]);

    let listed = client.list_meshes().send().await.unwrap();
    assert_eq!(listed.meshes()[0].mesh_name, mesh);
    assert_eq!(listed.meshes()[0].arn, arn("mesh/my mesh"));

    let deleted = client
        .delete_virtual_service()
        .mesh_name(mesh)
        .virtual_service_name("svc.local")
        .send()
        .await
        .unwrap()
        .virtual_service
        .unwrap();
    assert_eq!(deleted.virtual_service_name, "svc.local");
    assert_eq!(
        deleted.status.unwrap().status,
        VirtualServiceStatusCode::Deleted
    );
}
