//! meshd's own Cloud Map registry (`--cloud-map local`, the default), driven by the real
//! AWS CLI (`aws servicediscovery … --endpoint-url`), and what a real Envoy gets of it:
//! the instances registered become the endpoints of the EDS cluster of a virtual node
//! whose service discovery is `awsCloudMap`.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::cli::{AwsCli, SECRET, require_cli};
use common::envoy::{Envoy, Mode, eventually, require_envoy};

const WAIT: Duration = Duration::from_secs(20);

/// `aws servicediscovery` and `aws appmesh` against one in-process meshd with xDS.
async fn start() -> (meshd::server::RunningServer, AwsCli, AwsCli) {
    require_cli().await;
    let server = common::start_server_with_xds(Some("127.0.0.1:0".parse().unwrap()), None).await;
    let endpoint = format!("http://{}", server.api_addr);
    let cloud_map = AwsCli::at(&endpoint, "servicediscovery", SECRET);
    let appmesh = AwsCli::at(&endpoint, "appmesh", SECRET);
    (server, cloud_map, appmesh)
}

/// Creates HTTP namespace `name`; its id (after checking the operation succeeded).
async fn create_namespace(cli: &AwsCli, name: &str) -> String {
    let created = cli.ok(&["create-http-namespace", "--name", name]).await;
    let operation = created["OperationId"].as_str().expect("an OperationId");
    let status = cli.ok(&["get-operation", "--operation-id", operation]).await;
    assert_eq!(status["Operation"]["Status"], "SUCCESS", "{status}");
    assert_eq!(status["Operation"]["Type"], "CREATE_NAMESPACE", "{status}");
    let id = status["Operation"]["Targets"]["NAMESPACE"]
        .as_str()
        .expect("the operation names its namespace")
        .to_string();
    let namespace = cli.ok(&["get-namespace", "--id", &id]).await;
    assert_eq!(namespace["Namespace"]["Name"], name, "{namespace}");
    assert_eq!(namespace["Namespace"]["Type"], "HTTP", "{namespace}");
    id
}

async fn create_service(cli: &AwsCli, namespace_id: &str, name: &str) -> String {
    let service = cli
        .ok(&[
            "create-service",
            "--name",
            name,
            "--namespace-id",
            namespace_id,
        ])
        .await;
    assert_eq!(service["Service"]["Name"], name, "{service}");
    service["Service"]["Id"].as_str().unwrap().to_string()
}

async fn register(cli: &AwsCli, service_id: &str, instance: &str, attributes: &str) {
    let answer = cli
        .ok(&[
            "register-instance",
            "--service-id",
            service_id,
            "--instance-id",
            instance,
            "--attributes",
            attributes,
        ])
        .await;
    assert!(answer["OperationId"].is_string(), "{answer}");
}

async fn deregister(cli: &AwsCli, service_id: &str, instance: &str) {
    cli.ok(&[
        "deregister-instance",
        "--service-id",
        service_id,
        "--instance-id",
        instance,
    ])
    .await;
}

fn ids(list: &Value, member: &str, id: &str) -> Vec<String> {
    list[member]
        .as_array()
        .unwrap_or_else(|| panic!("{member} in {list}"))
        .iter()
        .map(|item| item[id].as_str().unwrap().to_string())
        .collect()
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
        .ok(&["list-instances", "--service-id", &service, "--page-size", "1"])
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
        .ok(&["get-instance", "--service-id", &service, "--instance-id", "i-3"])
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
    assert_eq!(ids(&discovered, "Instances", "InstanceId"), ["i-1"], "{discovered}");
    assert_eq!(discovered["Instances"][0]["HealthStatus"], "HEALTHY");
    let services = cli
        .ok(&[
            "list-services",
            "--filters",
            &format!("Name=NAMESPACE_ID,Values={namespace},Condition=EQ"),
        ])
        .await;
    assert_eq!(ids(&services, "Services", "Id"), [service.clone()]);

    // Tags, on the namespace's ARN.
    let arn = cli.ok(&["get-namespace", "--id", &namespace]).await["Namespace"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    cli.succeeds(&["tag-resource", "--resource-arn", &arn, "--tags", "Key=team,Value=a"])
        .await;
    let tags = cli.ok(&["list-tags-for-resource", "--resource-arn", &arn]).await;
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
        &["create-service", "--name", "bad name", "--namespace-id", &namespace],
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

/// The Envoy cluster `cluster`'s endpoints, as `/clusters` lists them (`ip:port`).
async fn endpoints_of(envoy: &Envoy, cluster: &str) -> Vec<String> {
    let Some((200, text)) = envoy.get_with_status("/clusters").await else {
        return Vec::new();
    };
    let mut endpoints: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{cluster}::")))
        .filter_map(endpoint_address)
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// The `ip:port` a `/clusters` line starts with (after the cluster name), if it is an
/// endpoint's line: `127.0.0.1:80::…` or `[fd00::1]:80::…`.
fn endpoint_address(rest: &str) -> Option<String> {
    let end = match rest.strip_prefix('[') {
        Some(v6) => v6.find("]:")? + 1 + v6[v6.find("]:")?..].find("::")?,
        None => rest.find("::")?,
    };
    let address = &rest[..end];
    address
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        .then(|| address.to_string())
}

async fn wait_for_endpoints(envoy: &Envoy, cluster: &str, expected: &[&str]) {
    eventually(
        &format!("Envoy's cluster {cluster} to hold {expected:?}"),
        WAIT,
        || async {
            let endpoints = endpoints_of(envoy, cluster).await;
            if endpoints == expected {
                Ok(())
            } else {
                Err(format!("it holds {endpoints:?}"))
            }
        },
    )
    .await;
}

fn cloud_map_node(attributes: Value, ip_preference: Option<&str>) -> String {
    let mut discovery = json!({
        "namespaceName": "local.test",
        "serviceName": "backend",
        "attributes": attributes,
    });
    if let Some(preference) = ip_preference {
        discovery["ipPreference"] = json!(preference);
    }
    json!({
        "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
        "serviceDiscovery": {"awsCloudMap": discovery},
    })
    .to_string()
}

/// A mesh `m`: nodes `v1` (instances with `version=v1`) and `v6` (every instance,
/// IPv6 preferred) of Cloud Map service `backend.local.test`, the virtual services `v1.m`
/// and `v6.m` they provide, and `client`, whose backends they are.
async fn create_mesh(appmesh: &AwsCli) {
    appmesh.ok(&["create-mesh", "--mesh-name", "m"]).await;
    for (node, spec) in [
        (
            "v1",
            cloud_map_node(json!([{"key": "version", "value": "v1"}]), None),
        ),
        ("v6", cloud_map_node(json!([]), Some("IPv6_PREFERRED"))),
    ] {
        appmesh
            .ok(&[
                "create-virtual-node",
                "--mesh-name",
                "m",
                "--virtual-node-name",
                node,
                "--spec",
                &spec,
            ])
            .await;
        let provider = json!({"provider": {"virtualNode": {"virtualNodeName": node}}}).to_string();
        appmesh
            .ok(&[
                "create-virtual-service",
                "--mesh-name",
                "m",
                "--virtual-service-name",
                &format!("{node}.m"),
                "--spec",
                &provider,
            ])
            .await;
    }
    let client = json!({
        "listeners": [{"portMapping": {"port": 9090, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": "client.m"}},
        "backends": [
            {"virtualService": {"virtualServiceName": "v1.m"}},
            {"virtualService": {"virtualServiceName": "v6.m"}},
        ],
    })
    .to_string();
    appmesh
        .ok(&[
            "create-virtual-node",
            "--mesh-name",
            "m",
            "--virtual-node-name",
            "client",
            "--spec",
            &client,
        ])
        .await;
}

/// The name of the EDS cluster of node `node` in Envoy's `/clusters`.
async fn cluster_of(envoy: &Envoy, node: &str) -> String {
    eventually(
        &format!("Envoy to have a cluster for node {node}"),
        WAIT,
        || async {
            let Some((200, text)) = envoy.get_with_status("/clusters").await else {
                return Err("no /clusters".to_string());
            };
            text.lines()
                .filter_map(|line| line.split_once("::").map(|(name, _)| name))
                .find(|name| name.contains(&format!("_{node}_")) && name.contains("egress"))
                .map(str::to_string)
                .ok_or(text)
        },
    )
    .await
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
    register(&cli, &service, "b", "AWS_INSTANCE_IPV4=127.0.0.12,version=v2").await;
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
