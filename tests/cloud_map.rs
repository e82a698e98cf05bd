//! meshd's own Cloud Map registry (`--cloud-map local`, the default), driven by the real
//! AWS CLI (`aws servicediscovery … --endpoint-url`), and what a real Envoy gets of it:
//! the instances registered become the endpoints of the EDS cluster of a virtual node
//! whose service discovery is `awsCloudMap`.

mod common;

use serde_json::json;

use common::cli::{AwsCli, SECRET, require_cli};
use common::cloud_map::{
    cluster_of, create_mesh, create_namespace, create_service, deregister, ids, register,
    wait_for_endpoints,
};
use common::envoy::{Envoy, Mode, require_envoy};

/// `aws servicediscovery` and `aws appmesh` against one in-process meshd with xDS.
async fn start() -> (meshd::server::RunningServer, AwsCli, AwsCli) {
    require_cli().await;
    let server = common::start_server_with_xds(Some("127.0.0.1:0".parse().unwrap()), None).await;
    let endpoint = format!("http://{}", server.api_addr);
    let cloud_map = AwsCli::at(&endpoint, "servicediscovery", SECRET);
    let appmesh = AwsCli::at(&endpoint, "appmesh", SECRET);
    (server, cloud_map, appmesh)
}

#[tokio::test]
async fn the_aws_cli_manages_the_registry() {
    let (_server, cli, _) = start().await;
    let namespace = create_namespace(&cli, "local.test").await;
    let service = create_service(&cli, &namespace, "backend").await;
    for (id, ip, version) in [
        ("i-1", "10.0.0.1", "v1"),
        ("i-2", "10.0.0.2", "v1"),
        ("i-3", "10.0.0.3", "v2"),
    ] {
        register(
            &cli,
            &service,
            id,
            &format!("AWS_INSTANCE_IPV4={ip},AWS_INSTANCE_PORT=8080,version={version}"),
        )
        .await;
    }
    deregister(&cli, &service, "i-2").await;

    // One page at a time: the CLI follows NextToken and joins the pages.
    let listed = cli
        .ok(&[
            "list-instances",
            "--service-id",
            &service,
            "--page-size",
            "1",
        ])
        .await;
    assert_eq!(ids(&listed, "Instances", "Id"), ["i-1", "i-3"], "{listed}");
    let first_page = cli
        .ok(&[
            "list-instances",
            "--service-id",
            &service,
            "--max-results",
            "1",
            "--no-paginate",
        ])
        .await;
    assert_eq!(ids(&first_page, "Instances", "Id"), ["i-1"], "{first_page}");
    assert!(first_page["NextToken"].is_string(), "{first_page}");
    let instance = cli
        .ok(&[
            "get-instance",
            "--service-id",
            &service,
            "--instance-id",
            "i-3",
        ])
        .await;
    assert_eq!(
        instance["Instance"]["Attributes"],
        json!({"AWS_INSTANCE_IPV4": "10.0.0.3", "AWS_INSTANCE_PORT": "8080", "version": "v2"})
    );
    let got = cli.ok(&["get-service", "--id", &service]).await;
    assert_eq!(got["Service"]["InstanceCount"], 2, "{got}");

    let discovered = cli
        .ok(&[
            "discover-instances",
            "--namespace-name",
            "local.test",
            "--service-name",
            "backend",
            "--query-parameters",
            "version=v1",
        ])
        .await;
    assert_eq!(
        ids(&discovered, "Instances", "InstanceId"),
        ["i-1"],
        "{discovered}"
    );
    assert_eq!(discovered["Instances"][0]["HealthStatus"], "HEALTHY");
    let services = cli
        .ok(&[
            "list-services",
            "--filters",
            &format!("Name=NAMESPACE_ID,Values={namespace},Condition=EQ"),
        ])
        .await;
    assert_eq!(ids(&services, "Services", "Id"), [service.as_str()]);

    // Tags, on the namespace's ARN.
    let arn = cli.ok(&["get-namespace", "--id", &namespace]).await["Namespace"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    cli.succeeds(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        "Key=team,Value=a",
    ])
    .await;
    let tags = cli
        .ok(&["list-tags-for-resource", "--resource-arn", &arn])
        .await;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "a"}]));

    // AWS's exceptions.
    cli.fails(
        &["get-service", "--id", "srv-doesnotexist00"],
        "GetService",
        "ServiceNotFound",
    )
    .await;
    cli.fails(
        &["create-http-namespace", "--name", "local.test"],
        "CreateHttpNamespace",
        "NamespaceAlreadyExists",
    )
    .await;
    cli.fails(
        &[
            "register-instance",
            "--service-id",
            &service,
            "--instance-id",
            "i-4",
            "--attributes",
            "AWS_INSTANCE_IPV4=10.0.0.300",
        ],
        "RegisterInstance",
        "InvalidInput",
    )
    .await;
    cli.fails(
        &[
            "create-service",
            "--name",
            "bad name",
            "--namespace-id",
            &namespace,
        ],
        "CreateService",
        "InvalidInput",
    )
    .await;
    cli.fails(
        &["delete-namespace", "--id", &namespace],
        "DeleteNamespace",
        "ResourceInUse",
    )
    .await;
    cli.fails(
        &[
            "deregister-instance",
            "--service-id",
            &service,
            "--instance-id",
            "i-2",
        ],
        "DeregisterInstance",
        "InstanceNotFound",
    )
    .await;
    cli.fails(
        &[
            "discover-instances",
            "--namespace-name",
            "nowhere",
            "--service-name",
            "backend",
        ],
        "DiscoverInstances",
        "NamespaceNotFound",
    )
    .await;

    // Emptied, everything can be deleted.
    deregister(&cli, &service, "i-1").await;
    deregister(&cli, &service, "i-3").await;
    cli.succeeds(&["delete-service", "--id", &service]).await;
    cli.ok(&["delete-namespace", "--id", &namespace]).await;
    let left = cli.ok(&["list-namespaces"]).await;
    assert_eq!(left["Namespaces"], json!([]), "{left}");
}

async fn run_envoy_scenario(mode: Mode) {
    require_envoy();
    let _serial = common::envoy::ENVOY_LOCK.lock().await;
    let (server, cli, appmesh) = start().await;
    let namespace = create_namespace(&cli, "local.test").await;
    let service = create_service(&cli, &namespace, "backend").await;
    register(
        &cli,
        &service,
        "a",
        "AWS_INSTANCE_IPV4=127.0.0.11,AWS_INSTANCE_PORT=8081,version=v1",
    )
    .await;
    register(
        &cli,
        &service,
        "b",
        "AWS_INSTANCE_IPV4=127.0.0.12,version=v2",
    )
    .await;
    register(
        &cli,
        &service,
        "c",
        "AWS_INSTANCE_IPV4=127.0.0.13,AWS_INSTANCE_IPV6=fd00::13,version=v2",
    )
    .await;
    create_mesh(&appmesh).await;
    let xds = server.xds_addr.expect("xDS over TCP").to_string();
    let envoy = Envoy::start(&common::arn("mesh/m/virtualNode/client"), &xds, mode).await;
    let v1 = cluster_of(&envoy, "v1").await;
    let v6 = cluster_of(&envoy, "v6").await;

    // Attributes filter; the port is AWS_INSTANCE_PORT, else the listener's.
    wait_for_endpoints(&envoy, &v1, &["127.0.0.11:8081"]).await;
    // IPv6 preferred: the IPv6 address where an instance has one.
    wait_for_endpoints(
        &envoy,
        &v6,
        &["127.0.0.11:8081", "127.0.0.12:8080", "[fd00::13]:8080"],
    )
    .await;

    // A registration reaches Envoy; a deregistration removes the endpoint.
    register(
        &cli,
        &service,
        "d",
        "AWS_INSTANCE_IPV4=127.0.0.14,version=v1",
    )
    .await;
    wait_for_endpoints(&envoy, &v1, &["127.0.0.11:8081", "127.0.0.14:8080"]).await;
    deregister(&cli, &service, "a").await;
    wait_for_endpoints(&envoy, &v1, &["127.0.0.14:8080"]).await;
    wait_for_endpoints(
        &envoy,
        &v6,
        &["127.0.0.12:8080", "127.0.0.14:8080", "[fd00::13]:8080"],
    )
    .await;

    // The status view follows the service.
    let status = common::envoy::meshd_view(server.api_addr, "cloud-map").await;
    let followed = status
        .as_array()
        .and_then(|list| list.iter().find(|s| s["service"] == "backend"))
        .unwrap_or_else(|| panic!("backend is followed: {status}"));
    assert_eq!(followed["namespace"], "local.test", "{status}");
    assert_eq!(followed["source"], "local", "{status}");
    assert_eq!(followed["instances"], 3, "{status}");
    assert_eq!(followed["stale"], false, "{status}");
    assert!(followed["lastSuccess"].is_u64(), "{status}");
    // Endpoint changes reach Envoy by EDS alone: no listener was sent again.
    let stats = envoy.stats().await;
    assert_eq!(
        common::envoy::stat(&stats, "listener_manager.lds.update_rejected"),
        0
    );
    assert_eq!(
        common::envoy::stat(&stats, "cluster_manager.cds.update_rejected"),
        0
    );
}

#[tokio::test]
async fn envoy_gets_registered_instances_by_eds_sotw() {
    run_envoy_scenario(Mode::Sotw).await;
}

#[tokio::test]
async fn envoy_gets_registered_instances_by_eds_delta() {
    run_envoy_scenario(Mode::Delta).await;
}

/// With `--auth sigv4`, Cloud Map requests signed for `servicediscovery` are served (a
/// paged list included), a wrong secret is refused with AWS's exception and changes
/// nothing, and RPC v2 CBOR gets a CBOR refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_cloud_map_requests_are_verified() {
    require_cli().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {SECRET}\n",
            common::cli::ACCESS_KEY
        ),
    )
    .unwrap();
    let server = common::start_signed_server(credentials).await;
    let endpoint = format!("http://{}", server.api_addr);
    let cli = AwsCli::at(&endpoint, "servicediscovery", SECRET);
    for name in ["a.test", "b.test", "c.test"] {
        cli.ok(&["create-http-namespace", "--name", name]).await;
    }
    let listed = cli.ok(&["list-namespaces", "--page-size", "1"]).await;
    let mut names: Vec<&str> = listed["Namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.test", "b.test", "c.test"], "{listed}");

    let revision = server.store.snapshot().revision();
    let stderr = AwsCli::at(&endpoint, "servicediscovery", "not the secret")
        .fails(
            &["create-http-namespace", "--name", "d.test"],
            "CreateHttpNamespace",
            "InvalidSignatureException",
        )
        .await;
    assert!(stderr.contains("does not match"), "{stderr}");
    assert_eq!(server.store.snapshot().revision(), revision);

    // Unsigned, on the CBOR protocol: refused before anything else (no signature).
    let response = reqwest::Client::new()
        .post(format!(
            "{endpoint}/service/Route53AutoNaming_v20170314/operation/ListNamespaces"
        ))
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor")
        .body(vec![0xa0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
}

/// Unsigned servers answer RPC v2 CBOR with a CBOR error that says what to use instead.
#[tokio::test]
async fn rpc_v2_cbor_gets_a_clear_cbor_error() {
    let server = common::start_server().await;
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/service/Route53AutoNaming_v20170314/operation/ListNamespaces",
            server.api_addr
        ))
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor")
        .body(vec![0xa0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/cbor");
    assert_eq!(response.headers()["smithy-protocol"], "rpc-v2-cbor");
    let body = response.bytes().await.unwrap();
    assert_eq!(body[0], 0xa2, "a CBOR map of two entries");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("UnknownOperationException"), "{text}");
    assert!(text.contains("JSON 1.1"), "{text}");
}
