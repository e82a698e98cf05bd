//! Cloud Map with the real AWS CLI (against meshd's registry or moto), and what a
//! real Envoy's `/clusters` shows of a virtual node with `awsCloudMap` discovery.

use std::time::Duration;

use serde_json::{Value, json};

use super::cli::AwsCli;
use super::envoy::{Envoy, eventually};

/// How long Envoy has to show a change.
pub const WAIT: Duration = Duration::from_secs(20);

/// The id of namespace `name`, as `list-namespaces` shows it.
pub async fn namespace_id(cli: &AwsCli, name: &str) -> String {
    let listed = cli.ok(&["list-namespaces"]).await;
    listed["Namespaces"]
        .as_array()
        .and_then(|list| list.iter().find(|n| n["Name"] == name))
        .and_then(|n| n["Id"].as_str())
        .unwrap_or_else(|| panic!("namespace {name} is listed: {listed}"))
        .to_string()
}

/// Creates HTTP namespace `name`; its id (after checking the operation succeeded).
pub async fn create_namespace(cli: &AwsCli, name: &str) -> String {
    let created = cli.ok(&["create-http-namespace", "--name", name]).await;
    let operation = created["OperationId"].as_str().expect("an OperationId");
    let status = cli
        .ok(&["get-operation", "--operation-id", operation])
        .await;
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

pub async fn create_service(cli: &AwsCli, namespace_id: &str, name: &str) -> String {
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

pub async fn register(cli: &AwsCli, service_id: &str, instance: &str, attributes: &str) {
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

pub async fn deregister(cli: &AwsCli, service_id: &str, instance: &str) {
    cli.ok(&[
        "deregister-instance",
        "--service-id",
        service_id,
        "--instance-id",
        instance,
    ])
    .await;
}

pub fn ids(list: &Value, member: &str, id: &str) -> Vec<String> {
    list[member]
        .as_array()
        .unwrap_or_else(|| panic!("{member} in {list}"))
        .iter()
        .map(|item| item[id].as_str().unwrap().to_string())
        .collect()
}

/// The Envoy cluster `cluster`'s endpoints, as `/clusters` lists them (`ip:port`).
pub async fn endpoints_of(envoy: &Envoy, cluster: &str) -> Vec<String> {
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
pub fn endpoint_address(rest: &str) -> Option<String> {
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

pub async fn wait_for_endpoints(envoy: &Envoy, cluster: &str, expected: &[&str]) {
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

pub fn cloud_map_node(attributes: Value, ip_preference: Option<&str>) -> String {
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
pub async fn create_mesh(appmesh: &AwsCli) {
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
pub async fn cluster_of(envoy: &Envoy, node: &str) -> String {
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
