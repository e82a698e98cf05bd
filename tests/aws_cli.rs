//! Smoke tests with the real AWS CLI (`aws`, from PyPI `awscli`), pointed at an
//! in-process meshd with `--endpoint-url`. The CLI runs as a child process (through
//! `tokio::process`, so the server keeps serving); its JSON output is parsed and checked
//! field by field. The CLI wraps the unwrapped `*Data` payloads back into `{"mesh": …}`,
//! signs every request and fills in `clientToken`, as all boto-based clients do.
//!
//! The CLI is required: without it on PATH these tests fail and say how to install it.

mod common;

use serde_json::{Value, json};

use common::cli::{ACCESS_KEY, AwsCli as Cli, SECRET, require_cli};

fn assert_metadata(metadata: &Value, resource: &str, version: i64) {
    assert_eq!(metadata["arn"], json!(common::arn(resource)), "{metadata}");
    assert_eq!(metadata["version"], json!(version), "{metadata}");
    assert_eq!(
        metadata["meshOwner"],
        json!(common::ACCOUNT_ID),
        "{metadata}"
    );
    assert_eq!(
        metadata["resourceOwner"],
        json!(common::ACCOUNT_ID),
        "{metadata}"
    );
    assert!(
        metadata["uid"].as_str().is_some_and(|uid| !uid.is_empty()),
        "{metadata}"
    );
    // Epoch seconds on the wire; awscli v1 (cli_timestamp_format = none) prints them as received.
    assert!(metadata["createdAt"].is_number(), "{metadata}");
    assert!(metadata["lastUpdatedAt"].is_number(), "{metadata}");
}

/// The names of the virtual nodes in the answer of `list-virtual-nodes`, in order.
fn node_names(listed: &Value) -> Vec<&str> {
    listed["virtualNodes"]
        .as_array()
        .unwrap_or_else(|| panic!("a virtualNodes list: {listed}"))
        .iter()
        .map(|n| n["virtualNodeName"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_a_mesh_and_its_tags() {
    let (_server, cli) = Cli::start().await;

    let created = cli.ok(&["create-mesh", "--mesh-name", "demo"]).await;
    let mesh = &created["mesh"];
    assert_eq!(mesh["meshName"], json!("demo"), "{created}");
    assert_eq!(
        mesh["spec"],
        json!({ "egressFilter": { "type": "DROP_ALL" } }),
        "{created}"
    );
    assert_eq!(mesh["status"], json!({ "status": "ACTIVE" }), "{created}");
    assert_metadata(&mesh["metadata"], "mesh/demo", 1);

    let described = cli.ok(&["describe-mesh", "--mesh-name", "demo"]).await;
    assert_eq!(described, created, "describe-mesh differs from create-mesh");

    let updated = cli
        .ok(&[
            "update-mesh",
            "--mesh-name",
            "demo",
            "--spec",
            r#"{"egressFilter":{"type":"ALLOW_ALL"},"serviceDiscovery":{"ipPreference":"IPv6_PREFERRED"}}"#,
        ])
        .await;
    let mesh = &updated["mesh"];
    assert_eq!(
        mesh["spec"],
        json!({ "egressFilter": { "type": "ALLOW_ALL" }, "serviceDiscovery": { "ipPreference": "IPv6_PREFERRED" } }),
        "{updated}"
    );
    assert_metadata(&mesh["metadata"], "mesh/demo", 2);
    assert_eq!(mesh["metadata"]["uid"], created["mesh"]["metadata"]["uid"]);

    let listed = cli.ok(&["list-meshes"]).await;
    let meshes = listed["meshes"].as_array().expect("a meshes list");
    assert_eq!(meshes.len(), 1, "{listed}");
    assert_eq!(meshes[0]["meshName"], json!("demo"));
    assert_eq!(meshes[0]["arn"], json!(common::arn("mesh/demo")));
    assert_eq!(meshes[0]["version"], json!(2));

    let arn = common::arn("mesh/demo");
    cli.succeeds(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        r#"[{"key":"team","value":"payments"},{"key":"env","value":""}]"#,
    ])
    .await;
    let tags = cli
        .ok(&["list-tags-for-resource", "--resource-arn", &arn])
        .await;
    assert_eq!(
        tags,
        json!({ "tags": [{ "key": "team", "value": "payments" }, { "key": "env", "value": "" }] })
    );

    let deleted = cli.ok(&["delete-mesh", "--mesh-name", "demo"]).await;
    assert_eq!(
        deleted["mesh"]["status"],
        json!({ "status": "DELETED" }),
        "{deleted}"
    );
    assert_eq!(deleted["mesh"]["meshName"], json!("demo"));
    cli.fails(
        &["describe-mesh", "--mesh-name", "demo"],
        "DescribeMesh",
        "NotFoundException",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_and_pages_through_virtual_nodes() {
    let (_server, cli) = Cli::start().await;
    cli.ok(&["create-mesh", "--mesh-name", "demo"]).await;

    let spec = json!({
        "listeners": [{
            "portMapping": { "port": 8080, "protocol": "http" },
            "healthCheck": {
                "protocol": "http", "path": "/ping", "healthyThreshold": 2, "unhealthyThreshold": 3,
                "intervalMillis": 5000, "timeoutMillis": 2000
            },
            "connectionPool": { "http": { "maxConnections": 100, "maxPendingRequests": 10 } },
            "outlierDetection": {
                "maxServerErrors": 5, "maxEjectionPercent": 50,
                "interval": { "value": 10, "unit": "s" }, "baseEjectionDuration": { "value": 30, "unit": "s" }
            },
            "tls": {
                "mode": "STRICT",
                "certificate": { "sds": { "secretName": "spiffe://demo.local/web" } },
                "validation": {
                    "trust": { "sds": { "secretName": "spiffe://demo.local" } },
                    "subjectAlternativeNames": { "match": { "exact": ["spiffe://demo.local/api"] } }
                }
            }
        }],
        "serviceDiscovery": { "dns": { "hostname": "web.demo.local", "responseType": "ENDPOINTS", "ipPreference": "IPv4_ONLY" } },
        "backends": [{ "virtualService": { "virtualServiceName": "api.demo.local" } }],
        "logging": { "accessLog": { "file": { "path": "/dev/stdout", "format": { "json": [{ "key": "start", "value": "%START_TIME%" }] } } } }
    });
    let created = cli
        .ok(&[
            "create-virtual-node",
            "--mesh-name",
            "demo",
            "--virtual-node-name",
            "web",
            "--spec",
            &spec.to_string(),
        ])
        .await;
    let node = &created["virtualNode"];
    assert_eq!(
        node["spec"], spec,
        "the spec read back differs from the one sent"
    );
    assert_eq!(node["meshName"], json!("demo"));
    assert_eq!(node["virtualNodeName"], json!("web"));
    assert_eq!(node["status"], json!({ "status": "ACTIVE" }));
    assert_metadata(&node["metadata"], "mesh/demo/virtualNode/web", 1);

    let described = cli
        .ok(&[
            "describe-virtual-node",
            "--mesh-name",
            "demo",
            "--virtual-node-name",
            "web",
        ])
        .await;
    assert_eq!(
        described, created,
        "describe-virtual-node differs from create-virtual-node"
    );

    // A spec without backends is shown with the service's default, an empty list.
    for name in ["api", "db"] {
        let created = cli
            .ok(&[
                "create-virtual-node",
                "--mesh-name",
                "demo",
                "--virtual-node-name",
                name,
                "--spec",
                "{}",
            ])
            .await;
        assert_eq!(
            created["virtualNode"]["spec"],
            json!({ "backends": [] }),
            "{created}"
        );
    }

    // `--page-size 1` makes the CLI fetch one item per request and follow nextToken.
    let listed = cli
        .ok(&[
            "list-virtual-nodes",
            "--mesh-name",
            "demo",
            "--page-size",
            "1",
        ])
        .await;
    let nodes = listed["virtualNodes"]
        .as_array()
        .expect("a virtualNodes list");
    assert_eq!(node_names(&listed), ["api", "db", "web"], "{listed}");
    for node in nodes {
        let name = node["virtualNodeName"].as_str().unwrap();
        assert_eq!(node["meshName"], json!("demo"));
        assert_eq!(
            node["arn"],
            json!(common::arn(&format!("mesh/demo/virtualNode/{name}")))
        );
        assert_eq!(node["version"], json!(1));
        assert_eq!(node["meshOwner"], json!(common::ACCOUNT_ID));
    }
    assert!(
        listed.get("nextToken").is_none() && listed.get("NextToken").is_none(),
        "{listed}"
    );

    // `--max-items 2` stops after two items and hands back a token to continue from.
    let first = cli
        .ok(&[
            "list-virtual-nodes",
            "--mesh-name",
            "demo",
            "--page-size",
            "1",
            "--max-items",
            "2",
        ])
        .await;
    assert_eq!(node_names(&first), ["api", "db"], "{first}");
    let token = first["NextToken"]
        .as_str()
        .expect("a NextToken to continue from");
    let rest = cli
        .ok(&[
            "list-virtual-nodes",
            "--mesh-name",
            "demo",
            "--page-size",
            "1",
            "--starting-token",
            token,
        ])
        .await;
    assert_eq!(node_names(&rest), ["web"], "{rest}");

    let deleted = cli
        .ok(&[
            "delete-virtual-node",
            "--mesh-name",
            "demo",
            "--virtual-node-name",
            "db",
        ])
        .await;
    assert_eq!(
        deleted["virtualNode"]["status"],
        json!({ "status": "DELETED" })
    );
    let listed = cli.ok(&["list-virtual-nodes", "--mesh-name", "demo"]).await;
    assert_eq!(
        listed["virtualNodes"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reports_service_errors() {
    let (server, cli) = Cli::start().await;

    let stderr = cli
        .fails(
            &["describe-mesh", "--mesh-name", "missing"],
            "DescribeMesh",
            "NotFoundException",
        )
        .await;
    assert!(
        stderr.contains("missing"),
        "the message should name the mesh: {stderr}"
    );

    cli.ok(&["create-mesh", "--mesh-name", "demo"]).await;
    cli.fails(
        &["create-mesh", "--mesh-name", "demo"],
        "CreateMesh",
        "ConflictException",
    )
    .await;

    // botocore checks neither maximums nor enums, so these reach the server, which refuses them.
    let revision = server.store.snapshot().revision();
    let too_high = r#"{"listeners":[{"portMapping":{"port":70000,"protocol":"http"}}],"serviceDiscovery":{"dns":{"hostname":"a.local"}}}"#;
    cli.fails(
        &[
            "create-virtual-node",
            "--mesh-name",
            "demo",
            "--virtual-node-name",
            "web",
            "--spec",
            too_high,
        ],
        "CreateVirtualNode",
        "BadRequestException",
    )
    .await;
    cli.fails(
        &[
            "update-mesh",
            "--mesh-name",
            "demo",
            "--spec",
            r#"{"egressFilter":{"type":"BOGUS"}}"#,
        ],
        "UpdateMesh",
        "BadRequestException",
    )
    .await;
    let long_name = "n".repeat(256);
    cli.fails(
        &["create-mesh", "--mesh-name", &long_name],
        "CreateMesh",
        "BadRequestException",
    )
    .await;
    assert_eq!(
        server.store.snapshot().revision(),
        revision,
        "refused requests changed the store"
    );

    cli.fails(
        &[
            "describe-virtual-node",
            "--mesh-name",
            "demo",
            "--virtual-node-name",
            "nope",
        ],
        "DescribeVirtualNode",
        "NotFoundException",
    )
    .await;

    cli.ok(&[
        "create-virtual-node",
        "--mesh-name",
        "demo",
        "--virtual-node-name",
        "web",
        "--spec",
        "{}",
    ])
    .await;
    cli.fails(
        &["delete-mesh", "--mesh-name", "demo"],
        "DeleteMesh",
        "ResourceInUseException",
    )
    .await;
    let described = cli.ok(&["describe-mesh", "--mesh-name", "demo"]).await;
    assert_eq!(described["mesh"]["status"], json!({ "status": "ACTIVE" }));
    assert_eq!(
        described["mesh"]["spec"],
        json!({ "egressFilter": { "type": "DROP_ALL" } })
    );
}

/// With `--auth sigv4`, what the CLI (botocore's signer) signs is served, names and
/// paging tokens included, and a wrong secret is refused with AWS's exception.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_requests_are_signed_and_verified() {
    require_cli().await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        format!("[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let server = common::start_signed_server(credentials).await;
    let cli = Cli::of(&server, SECRET);

    let mesh = "my mesh";
    cli.ok(&["create-mesh", "--mesh-name", mesh]).await;
    let spec = r#"{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}],"serviceDiscovery":{"dns":{"hostname":"n.local"}}}"#;
    for name in ["node:1", "node:2", "node:3"] {
        cli.ok(&[
            "create-virtual-node",
            "--mesh-name",
            mesh,
            "--virtual-node-name",
            name,
            "--spec",
            spec,
        ])
        .await;
    }
    // The CLI pages with --page-size 1, sending each next token in a signed query.
    let listed = cli
        .ok(&[
            "list-virtual-nodes",
            "--mesh-name",
            mesh,
            "--page-size",
            "1",
        ])
        .await;
    assert_eq!(node_names(&listed), ["node:1", "node:2", "node:3"]);
    let arn = common::arn("mesh/my mesh");
    cli.succeeds(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        r#"[{"key":"team","value":"mesh ops"}]"#,
    ])
    .await;
    let tags = cli
        .ok(&["list-tags-for-resource", "--resource-arn", &arn])
        .await;
    assert_eq!(
        tags["tags"],
        json!([{ "key": "team", "value": "mesh ops" }])
    );

    let revision = server.store.snapshot().revision();
    let stderr = Cli::of(&server, "not the secret")
        .fails(
            &[
                "delete-virtual-node",
                "--mesh-name",
                mesh,
                "--virtual-node-name",
                "node:1",
            ],
            "DeleteVirtualNode",
            "InvalidSignatureException",
        )
        .await;
    assert!(stderr.contains("does not match"), "{stderr}");
    assert_eq!(
        server.store.snapshot().revision(),
        revision,
        "a refused request changes nothing"
    );
}

/// An HTTP server on a free loopback port that answers every request with `body`.
async fn answering(body: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || async move { body });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// AWS's multiple-listeners walkthrough, as its CLI script creates it: routes and
/// gateway routes whose matches name only a `port` (no prefix, no path). meshd accepts
/// them, describe returns them as they were sent, and a real Envoy bootstrapped as the
/// gateway sends each gateway port's requests to the application port its routes name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_port_only_matches_route_by_port_through_envoy() {
    require_cli().await;
    let _envoy_lock = common::envoy::ENVOY_LOCK.lock().await;
    let server = common::start_server_with_xds(Some("127.0.0.1:0".parse().unwrap()), None).await;
    let cli = Cli::of(&server, SECRET);
    let (app_a, app_b) = (
        answering("served on a").await,
        answering("served on b").await,
    );
    let (gateway_a, gateway_b) = (common::envoy::free_port(), common::envoy::free_port());
    fn with_mesh<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--mesh-name", "multi"][..]].concat()
    }

    cli.ok(&["create-mesh", "--mesh-name", "multi"]).await;
    let node = json!({
        "listeners": [
            {"portMapping": {"port": app_a, "protocol": "http"}},
            {"portMapping": {"port": app_b, "protocol": "http"}}],
        "serviceDiscovery": {"dns": {"hostname": "127.0.0.1"}}
    })
    .to_string();
    cli.ok(&with_mesh(&[
        "create-virtual-node",
        "--virtual-node-name",
        "foodteller-vn",
        "--spec",
        &node,
    ]))
    .await;
    let router = r#"{"listeners":[{"portMapping":{"port":3333,"protocol":"http"}},{"portMapping":{"port":3334,"protocol":"http"}}]}"#;
    cli.ok(&with_mesh(&[
        "create-virtual-router",
        "--virtual-router-name",
        "foodteller-vr",
        "--spec",
        router,
    ]))
    .await;
    let mut routes = Vec::new();
    for (name, router_port, app_port) in [("to-a", 3333, app_a), ("to-b", 3334, app_b)] {
        let spec = json!({"httpRoute": {
            "match": {"port": router_port},
            "action": {"weightedTargets": [
                {"virtualNode": "foodteller-vn", "weight": 1, "port": app_port}]}}});
        let created = cli
            .ok(&with_mesh(&[
                "create-route",
                "--virtual-router-name",
                "foodteller-vr",
                "--route-name",
                name,
                "--spec",
                &spec.to_string(),
            ]))
            .await;
        assert_eq!(
            created["route"]["spec"]["httpRoute"]["match"],
            json!({"port": router_port}),
            "{created}"
        );
        routes.push(spec);
    }
    let service = r#"{"provider":{"virtualRouter":{"virtualRouterName":"foodteller-vr"}}}"#;
    cli.ok(&with_mesh(&[
        "create-virtual-service",
        "--virtual-service-name",
        "foodteller.local",
        "--spec",
        service,
    ]))
    .await;
    let gateway = json!({"listeners": [
        {"portMapping": {"port": gateway_a, "protocol": "http"}},
        {"portMapping": {"port": gateway_b, "protocol": "http"}}]})
    .to_string();
    cli.ok(&with_mesh(&[
        "create-virtual-gateway",
        "--virtual-gateway-name",
        "gw",
        "--spec",
        &gateway,
    ]))
    .await;
    for (name, gateway_port, router_port) in [("gw-a", gateway_a, 3333), ("gw-b", gateway_b, 3334)]
    {
        let spec = json!({"httpRoute": {
            "match": {"port": gateway_port},
            "action": {"target": {"virtualService": {"virtualServiceName": "foodteller.local"},
                                  "port": router_port}}}});
        let created = cli
            .ok(&with_mesh(&[
                "create-gateway-route",
                "--virtual-gateway-name",
                "gw",
                "--gateway-route-name",
                name,
                "--spec",
                &spec.to_string(),
            ]))
            .await;
        assert_eq!(created["gatewayRoute"]["spec"], spec, "{created}");
    }
    let described = cli
        .ok(&with_mesh(&[
            "describe-route",
            "--virtual-router-name",
            "foodteller-vr",
            "--route-name",
            "to-a",
        ]))
        .await;
    assert_eq!(
        described["route"]["spec"]["httpRoute"], routes[0]["httpRoute"],
        "{described}"
    );

    let envoy = common::envoy::Envoy::start(
        &common::arn("mesh/multi/virtualGateway/gw"),
        &server.xds_addr.unwrap().to_string(),
        common::envoy::Mode::Sotw,
    )
    .await;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    for (port, expected) in [(gateway_a, "served on a"), (gateway_b, "served on b")] {
        common::envoy::eventually(
            &format!("gateway port {port} to answer {expected:?}"),
            std::time::Duration::from_secs(30),
            || async {
                let response = http
                    .get(format!("http://127.0.0.1:{port}/menu"))
                    .send()
                    .await
                    .map_err(|err| err.to_string())?;
                let status = response.status();
                let body = response.text().await.map_err(|err| err.to_string())?;
                if status == 200 && body == expected {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}"))
                }
            },
        )
        .await;
    }
    drop(envoy);
}
