//! Seeing the mesh run: `GET /metrics` scraped while a real Envoy (1.40) is connected,
//! and the web console in Debian's headless chromium (driven by playwright-core), both
//! after real traffic: App Mesh API calls through the AWS SDK, Envoy's ACKs and a NACK.
//!
//! Envoy binds the listeners 0.0.0.0:15000 and 0.0.0.0:15001 from the compiled
//! configuration, and the metrics registry is the process's, so the tests run one Envoy
//! and one in-process meshd at a time (`ENVOY_LOCK`).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::types::ListenerTlsMode;
use common::browser::Browser;
use common::demo::{FRONT, create_demo, set_weights, update_front};
use common::envoy::{ENVOY_LOCK, Envoy, Mode, eventually, meshd_proxies, weighted_clusters};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use meshd::server::{RunningServer, ServerConfig};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
const EGRESS_ROUTES: &str = "rds_egress_http_9080";

/// meshd with xDS on a free loopback port and, if `console`, its console on another.
async fn start_meshd(console: bool) -> RunningServer {
    let account = meshd::api::Account {
        region: common::REGION.into(),
        account_id: common::ACCOUNT_ID.into(),
    };
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = ServerConfig {
        xds_addr: Some(loopback),
        console: console.then(|| meshd::console::ConsoleConfig::on(loopback)),
        ..ServerConfig::api_only(loopback, account)
    };
    meshd::server::start(config).await.expect("meshd starts")
}

/// The demo mesh, its route splitting 3:1 between blue and green.
async fn create_mesh(client: &Client) {
    create_demo(client, None).await;
    set_weights(client, 3, 1).await;
}

/// Gives `front`'s listener TLS that Envoy cannot load: it rejects the listener.
async fn break_front(client: &Client) {
    update_front(
        client,
        Some(common::sdk::tls_with_missing_files(ListenerTlsMode::Strict)),
        false,
    )
    .await;
}

/// Waits until Envoy routes `api.demo.local` blue:green as `weights`.
async fn wait_for_weights(envoy: &Envoy, blue: u64, green: u64) {
    eventually("Envoy to take up the weights", WAIT, || async {
        let routes = weighted_clusters(&envoy.config_dump().await, EGRESS_ROUTES);
        let weights: Vec<u64> = routes.iter().map(|(_, weight)| *weight).collect();
        if weights == [blue, green] {
            Ok(())
        } else {
            Err(format!("{routes:?}"))
        }
    })
    .await;
}

/// Waits until meshd shows `front`'s listener NACK; Envoy's message.
async fn wait_for_nack(api: SocketAddr) -> String {
    eventually("meshd to show front's NACK", WAIT, || async {
        let proxies = meshd_proxies(api).await;
        proxies
            .iter()
            .find(|p| p["resource"] == FRONT)
            .and_then(|p| p["types"]["listener"]["nack"]["message"].as_str())
            .map(str::to_string)
            .ok_or_else(|| Value::Array(proxies.clone()).to_string())
    })
    .await
}

/// Waits until every type of `front`'s stream is acknowledged at the version sent.
async fn wait_in_sync(api: SocketAddr) {
    eventually("front to be in sync", WAIT, || async {
        let proxies = meshd_proxies(api).await;
        let synced = proxies.iter().any(|p| {
            p["resource"] == FRONT
                && p["types"].as_object().is_some_and(|types| {
                    // Cluster, listener and route configuration (DNS: no endpoints).
                    types.len() >= 3
                        && types.values().all(|t| {
                            t["sent_version"] != "" && t["sent_version"] == t["acked_version"]
                        })
                })
        });
        if synced {
            Ok(())
        } else {
            Err(Value::Array(proxies).to_string())
        }
    })
    .await;
}

// ---- metrics ----

/// One scrape: every sample by its name and labels as written (`name{a="b"}`).
type Scrape = BTreeMap<String, f64>;

async fn scrape(api: SocketAddr) -> Scrape {
    let response = reqwest::get(format!("http://{api}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

fn sample(scrape: &Scrape, series: &str) -> f64 {
    *scrape
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {scrape:#?}"))
}

/// The count of the histogram `name`'s largest bucket at most `seconds`.
fn within(scrape: &Scrape, name: &str, seconds: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    scrape
        .iter()
        .filter_map(|(series, count)| {
            let le: f64 = series
                .strip_prefix(&prefix)?
                .strip_suffix("\"}")?
                .parse()
                .ok()?;
            (le <= seconds).then_some((le, *count))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, count)| count)
        .unwrap_or_else(|| panic!("no bucket of {name} up to {seconds} s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_api_calls_pushes_acks_and_nacks() {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd(false).await;
    let api = server.api_addr;
    let client = common::sdk_client(api);
    let before = scrape(api).await;
    // Every bounded series is there from the start.
    for series in [
        r#"meshd_xds_refused_streams_total{reason="unknown_token"}"#,
        r#"meshd_xds_nacks_total{type="listener"}"#,
        "meshd_xds_proxies_out_of_sync",
        "meshd_store_revision",
    ] {
        sample(&before, series);
    }
    let count = |scrape: &Scrape, series: &str| scrape.get(series).copied().unwrap_or(0.0);
    const CREATE_MESH: &str = r#"meshd_api_requests_total{operation="CreateMesh",code="200"}"#;

    create_mesh(&client).await;
    let envoy = Envoy::start(
        &common::arn(FRONT),
        &server.xds_addr.unwrap().to_string(),
        Mode::Sotw,
    )
    .await;
    wait_for_weights(&envoy, 3, 1).await;
    wait_in_sync(api).await;
    let synced = scrape(api).await;
    assert_eq!(
        sample(&synced, CREATE_MESH) - count(&before, CREATE_MESH),
        1.0,
        "one CreateMesh call, one count"
    );
    assert!(
        sample(
            &synced,
            r#"meshd_api_request_duration_seconds_count{operation="CreateVirtualNode"}"#
        ) >= 3.0
    );
    assert_eq!(sample(&synced, "meshd_store_revision"), 8.0, "eight writes");
    assert_eq!(
        sample(&synced, r#"meshd_resources{kind="VirtualNode"}"#),
        3.0
    );
    assert_eq!(sample(&synced, r#"meshd_resources{kind="Route"}"#), 1.0);
    assert_eq!(sample(&synced, r#"meshd_xds_streams{mode="sotw"}"#), 1.0);
    assert_eq!(sample(&synced, r#"meshd_xds_streams{mode="delta"}"#), 0.0);
    for kind in ["cluster", "listener", "route_configuration"] {
        let series = format!(r#"meshd_xds_pushes_total{{type="{kind}"}}"#);
        assert!(
            sample(&synced, &series) > count(&before, &series),
            "{series}"
        );
    }
    assert_eq!(sample(&synced, "meshd_xds_proxies_out_of_sync"), 0.0);

    // A change through the API: counted, written, compiled, pushed and acknowledged.
    set_weights(&client, 1, 3).await;
    wait_for_weights(&envoy, 1, 3).await;
    wait_in_sync(api).await;
    let changed = scrape(api).await;
    const UPDATE_ROUTE: &str = r#"meshd_api_requests_total{operation="UpdateRoute",code="200"}"#;
    assert_eq!(
        sample(&changed, UPDATE_ROUTE) - count(&synced, UPDATE_ROUTE),
        1.0
    );
    assert_eq!(sample(&changed, "meshd_store_revision"), 9.0);
    for series in [
        "meshd_store_writes_total",
        "meshd_store_write_duration_seconds_count",
        "meshd_compile_passes_total",
        "meshd_compile_duration_seconds_count",
        "meshd_compile_proxies_total",
        "meshd_xds_push_duration_seconds_count",
        "meshd_xds_ack_duration_seconds_count",
        r#"meshd_xds_pushes_total{type="route_configuration"}"#,
    ] {
        assert!(
            sample(&changed, series) > sample(&synced, series),
            "{series} rose with the change: {} → {}",
            sample(&synced, series),
            sample(&changed, series)
        );
    }
    assert!(
        within(&changed, "meshd_xds_push_duration_seconds", 1.0)
            > within(&synced, "meshd_xds_push_duration_seconds", 1.0),
        "the change reached Envoy within a second"
    );

    // An error answer is counted under its status code.
    const MISSING: &str = r#"meshd_api_requests_total{operation="DescribeVirtualNode",code="404"}"#;
    let missing = client
        .describe_virtual_node()
        .mesh_name(common::demo::MESH)
        .virtual_node_name("nobody")
        .send()
        .await;
    assert!(missing.is_err());
    let after_error = scrape(api).await;
    assert_eq!(
        sample(&after_error, MISSING) - count(&changed, MISSING),
        1.0
    );

    // A configuration Envoy rejects.
    const NACKS: &str = r#"meshd_xds_nacks_total{type="listener"}"#;
    break_front(&client).await;
    wait_for_nack(api).await;
    let rejected = scrape(api).await;
    assert!(
        sample(&rejected, NACKS) > sample(&changed, NACKS),
        "the NACK is counted"
    );
    assert_eq!(
        sample(&rejected, r#"meshd_xds_nacks_total{type="cluster"}"#),
        sample(&changed, r#"meshd_xds_nacks_total{type="cluster"}"#),
        "only the listener was rejected"
    );

    // The rejected listener stays unacknowledged: after 30 s, the proxy is out of sync.
    eventually(
        "front to count as out of sync",
        Duration::from_secs(45),
        || async {
            match sample(&scrape(api).await, "meshd_xds_proxies_out_of_sync") {
                1.0 => Ok(()),
                n => Err(format!("{n} proxies out of sync")),
            }
        },
    )
    .await;

    // A stream whose node id names no App Mesh resource is refused, and counted so.
    const INVALID: &str = r#"meshd_xds_refused_streams_total{reason="invalid_node_id"}"#;
    let refused_before = sample(&scrape(api).await, INVALID);
    let request = DiscoveryRequest {
        node: Some(Node {
            id: "not-an-app-mesh-node".into(),
            ..Default::default()
        }),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..Default::default()
    };
    let mut ads =
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.xds_addr.unwrap()))
            .await
            .unwrap();
    let refusal = ads
        .stream_aggregated_resources(tokio_stream::iter([request]))
        .await
        .expect_err("the stream is refused");
    assert_eq!(refusal.code(), tonic::Code::InvalidArgument, "{refusal:?}");
    assert_eq!(sample(&scrape(api).await, INVALID) - refused_before, 1.0);
    drop(envoy);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_addr_moves_the_metrics_off_the_api_port() {
    // The metrics are the process's: one in-process meshd at a time.
    let _serial = ENVOY_LOCK.lock().await;
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let account = meshd::api::Account {
        region: common::REGION.into(),
        account_id: common::ACCOUNT_ID.into(),
    };
    let server = meshd::server::start(ServerConfig {
        metrics_addr: Some(loopback),
        ..ServerConfig::api_only(loopback, account)
    })
    .await
    .unwrap();
    let metrics = server.metrics_addr.expect("a metrics listener");
    common::sdk_client(server.api_addr)
        .create_mesh()
        .mesh_name("moved")
        .send()
        .await
        .unwrap();
    assert_eq!(sample(&scrape(metrics).await, "meshd_store_revision"), 1.0);
    let on_api_port = reqwest::get(format!("http://{}/metrics", server.api_addr))
        .await
        .unwrap();
    assert_eq!(on_api_port.status(), 404, "no metrics on the API port");
    server.shutdown().await.unwrap();
}

// ---- the console ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_meshes_topology_live_weights_and_a_proxys_nack() {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd(true).await;
    let console = format!("http://{}", server.console_addr.expect("a console"));
    let client = common::sdk_client(server.api_addr);
    create_mesh(&client).await;
    client
        .create_mesh()
        .mesh_name("second-mesh")
        .send()
        .await
        .unwrap();
    let mut browser = Browser::start().await;

    // The start page lists the meshes created through the API.
    browser.goto(&format!("{console}/")).await;
    let meshes = browser.texts("ul.meshes li").await;
    assert_eq!(meshes, ["demo", "second-mesh"]);

    // The mesh's topology: the router's two targets with weights 3 and 1, as text.
    let page = browser.click("ul.meshes a >> text=demo").await;
    assert!(page.contains("Mesh demo"), "{page}");
    let svg_text = browser.texts("svg.topology").await.join("\n");
    for shown in [
        "api.demo.local",
        "api-router",
        "api-router/api-route",
        "blue",
        "green",
    ] {
        assert!(svg_text.contains(shown), "{shown} in the graph: {svg_text}");
    }
    assert!(svg_text.contains("weight 3") && svg_text.contains("weight 1"));
    let connections = browser.texts("table.connections tr").await;
    for row in [
        "api.demo.local\tapi-router\t",
        "api-router\tapi-router/api-route\thttp prefix /",
        "api-router/api-route\tblue\tweight 3",
        "api-router/api-route\tgreen\tweight 1",
    ] {
        assert!(
            connections.iter().any(|r| r.trim_end() == row.trim_end()),
            "{row:?} in {connections:#?}"
        );
    }
    let backends = browser.texts("ul.backends li").await;
    assert!(
        backends.contains(&"front: backends: api.demo.local".to_string()),
        "{backends:?}"
    );
    browser.screenshot("topology.png").await;

    // A weight changed through the API appears without a reload, within 2 s.
    set_weights(&client, 5, 1).await;
    let took = browser
        .wait_for("weight 5", Duration::from_secs(2))
        .await
        .expect("the new weight is shown within 2 s");
    assert!(browser.texts("svg.topology").await[0].contains("weight 5"));
    eprintln!("the new weight was shown after {took:?}");

    // Every resource's spec and metadata.
    let route = browser
        .click("table.resources a >> text=mesh/demo/virtualRouter/api-router/route/api-route")
        .await;
    assert!(route.contains("Route api-route"), "{route}");
    let spec = browser.texts("pre.spec").await.join("");
    let spec: Value = serde_json::from_str(&spec).expect("the spec is JSON");
    assert_eq!(
        spec["httpRoute"]["action"]["weightedTargets"][0]["weight"],
        5
    );
    let metadata = browser.texts("table.metadata tr").await.join("\n");
    assert!(metadata.contains("arn:aws:appmesh:us-east-1:111122223333:mesh/demo/virtualRouter/api-router/route/api-route"), "{metadata}");
    assert!(metadata.contains("version\t3"), "{metadata}");

    // A NACKing Envoy's own error text, on its proxy.
    break_front(&client).await;
    let envoy = Envoy::start(
        &common::arn(FRONT),
        &server.xds_addr.unwrap().to_string(),
        Mode::Delta,
    )
    .await;
    let nack = wait_for_nack(server.api_addr).await;
    browser.goto(&format!("{console}/proxies")).await;
    browser
        .wait_for(FRONT, Duration::from_secs(2))
        .await
        .unwrap();
    let shown = browser.texts("section.proxy pre.nack-message").await;
    assert_eq!(
        shown,
        std::slice::from_ref(&nack),
        "Envoy's message is shown as it sent it"
    );
    assert!(nack.contains("/nonexistent/meshd-test/"), "{nack}");
    let states = browser.texts("section.proxy table.types").await.join("\n");
    assert!(states.contains("listener\trejected"), "{states}");
    assert!(states.contains("cluster\tin sync"), "{states}");
    assert!(
        states.contains("cds_egress_demo_blue_http_9080"),
        "what it is sent, by name: {states}"
    );
    browser.screenshot("proxies.png").await;
    drop(envoy);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_console_off_loopback_needs_a_login_and_the_token_opens_it() {
    // Without a login or --console-insecure, meshd refuses to start and says why.
    let port = common::envoy::free_port();
    let open = format!("0.0.0.0:{port}");
    let (status, said) = common::process::MeshdProcess::refusal(&["--console-addr", &open]).await;
    assert!(!status.success());
    assert!(
        said.contains("--console-token-file") && said.contains("--console-insecure"),
        "{said}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("console-token");
    std::fs::write(&token_file, "  let-me-see \n").unwrap();
    let meshd = common::process::MeshdProcess::start(&[
        "--store",
        "memory",
        "--xds-addr",
        "127.0.0.1:0",
        "--console-addr",
        &open,
        "--console-token-file",
        token_file.to_str().unwrap(),
    ])
    .await;
    common::sdk_client(meshd.api)
        .create_mesh()
        .mesh_name("private")
        .send()
        .await
        .unwrap();
    let console = format!("http://127.0.0.1:{port}");
    let mut browser = Browser::start().await;
    let page = browser.goto(&format!("{console}/")).await;
    assert!(page.contains("Token"), "the login form first: {page}");
    assert!(!page.contains("private"), "{page}");
    browser.fill("input[name=token]", "wrong").await;
    let refused = browser.click("button[type=submit]").await;
    assert!(refused.contains("not the console's token"), "{refused}");
    browser.fill("input[name=token]", "let-me-see").await;
    let page = browser.click("button[type=submit]").await;
    assert!(page.contains("private"), "logged in, the meshes: {page}");
    let proxies = browser.goto(&format!("{console}/proxies")).await;
    assert!(proxies.contains("No proxy is connected."), "{proxies}");
    // Without the session cookie, nothing but the form.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{console}/meshes/private"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login");
}
