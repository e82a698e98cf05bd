//! Several meshd replicas on etcd: real `etcd` processes (one member, or a cluster of
//! three) on loopback, real `meshd serve --store etcd` processes, the real AWS SDK and a
//! real Envoy. Needs the `etcd` binary (Debian's `etcd-server`); fails without it.
#![cfg(feature = "etcd")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_appmesh::Client;
use common::envoy::{ENVOY_LOCK, Envoy, Mode, cluster_names, eventually, free_port, meshd_proxies};
use common::etcd::{EtcdMember, endpoints, etcd_cluster};
use common::process::MeshdProcess;
use common::sdk::{http_route_spec, node_spec, router_spec, tag};

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// meshd replicas
// ---------------------------------------------------------------------------------------

/// A `meshd serve --store etcd` process; killed (SIGKILL) when dropped.
struct Replica {
    process: MeshdProcess,
    api: SocketAddr,
    xds_port: u16,
    client: Client,
}

impl Replica {
    async fn start(endpoints: &str) -> Replica {
        let xds_port = free_port();
        let xds = format!("127.0.0.1:{xds_port}");
        let process = MeshdProcess::start(&[
            "--xds-addr",
            &xds,
            "--store",
            "etcd",
            "--etcd-endpoints",
            endpoints,
        ])
        .await;
        Replica {
            api: process.api,
            client: common::sdk_client(process.api),
            process,
            xds_port,
        }
    }

    /// Whether meshd has logged a line containing `text`.
    fn logged(&self, text: &str) -> bool {
        self.process.logged(text)
    }

    fn xds_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.xds_port)
    }

    /// SIGKILL, and wait for the process to be gone.
    async fn kill(mut self) {
        self.process.child.kill().await.unwrap();
    }

    /// `GET path` on the API: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.api))
            .await
            .expect("meshd answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// Waits until every replica answers `GET path` with the same status and body, and
/// `accept` accepts it; returns it.
async fn agreed(
    replicas: &[&Replica],
    path: &str,
    accept: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    eventually(
        &format!("the replicas to agree on {path}"),
        WAIT,
        || async {
            let mut answers = Vec::new();
            for replica in replicas {
                answers.push(replica.get(path).await);
            }
            let first = answers[0].clone();
            if answers.iter().all(|answer| *answer == first) && accept(first.0, &first.1) {
                Ok(first)
            } else {
                Err(format!("{answers:?}"))
            }
        },
    )
    .await
}

fn exists(status: u16, _: &str) -> bool {
    status == 200
}

// ---------------------------------------------------------------------------------------
// App Mesh resources
// ---------------------------------------------------------------------------------------

async fn create_mesh(replica: &Replica, mesh: &str) {
    replica
        .client
        .create_mesh()
        .mesh_name(mesh)
        .send()
        .await
        .unwrap_or_else(|err| panic!("create mesh {mesh}: {err:?}"));
}

async fn create_node(replica: &Replica, mesh: &str, name: &str, port: i32) {
    replica
        .client
        .create_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(name)
        .spec(node_spec(port, &format!("{name}.local"), &[]))
        .send()
        .await
        .unwrap_or_else(|err| panic!("create virtual node {name}: {err:?}"));
}

/// Moves the virtual node `name` of mesh `m` to `port` (an update: its version goes up).
async fn move_node(replica: &Replica, name: &str, port: i32) {
    replica
        .client
        .update_virtual_node()
        .mesh_name("m")
        .virtual_node_name(name)
        .spec(node_spec(port, &format!("{name}.local"), &[]))
        .send()
        .await
        .unwrap_or_else(|err| panic!("update virtual node {name}: {err:?}"));
}

fn node_path(mesh: &str, name: &str) -> String {
    format!("/v20190125/meshes/{mesh}/virtualNodes/{name}")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).expect("meshd answers JSON")
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// Both replicas create the same names at the same time: for each name exactly one
/// succeeds and the other gets ConflictException, and both then describe the same
/// resource (uid, version, timestamps).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_through_two_replicas_conflict() {
    let etcd = etcd_cluster(1).await;
    let a = Replica::start(&endpoints(&etcd)).await;
    let b = Replica::start(&endpoints(&etcd)).await;
    create_mesh(&a, "race").await;
    agreed(&[&a, &b], "/v20190125/meshes/race", exists).await;

    for round in 0..20 {
        let name = format!("node-{round}");
        let create = |replica: &Replica, port: i32| {
            replica
                .client
                .create_virtual_node()
                .mesh_name("race")
                .virtual_node_name(&name)
                .spec(node_spec(port, &format!("{name}.local"), &[]))
                .send()
        };
        let (first, second) = tokio::join!(create(&a, 8080), create(&b, 9090));
        let outcomes = [first, second];
        let successes: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(successes.len(), 1, "round {round}: {outcomes:?}");
        let failure = outcomes
            .iter()
            .find_map(|r| r.as_ref().err())
            .unwrap()
            .as_service_error()
            .unwrap_or_else(|| panic!("round {round}: {outcomes:?}"));
        assert!(
            failure.is_conflict_exception(),
            "round {round}: {failure:?}"
        );
        let created = successes[0].virtual_node().unwrap();
        let (_, body) = agreed(&[&a, &b], &node_path("race", &name), exists).await;
        let described = json(&body);
        assert_eq!(
            described["metadata"]["uid"],
            created.metadata().unwrap().uid(),
            "{body}"
        );
        assert_eq!(described["metadata"]["version"], 1, "{body}");
    }
}

/// One etcd member and two replicas on it, with the mesh `m` and its node `node` on 8080.
async fn two_replicas_with_node(node: &str) -> (Vec<EtcdMember>, Replica, Replica) {
    let etcd = etcd_cluster(1).await;
    let a = Replica::start(&endpoints(&etcd)).await;
    let b = Replica::start(&endpoints(&etcd)).await;
    create_mesh(&a, "m").await;
    create_node(&a, "m", node, 8080).await;
    (etcd, a, b)
}

/// 2 × 25 updates of one virtual node, through both replicas at once (5 writers each):
/// every answered update has its own version, and the final version counts them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_through_two_replicas_are_never_lost() {
    let (_etcd, a, b) = two_replicas_with_node("n").await;
    agreed(&[&a, &b], &node_path("m", "n"), exists).await;

    let mut tasks = Vec::new();
    for (label, replica) in [("a", &a), ("b", &b)] {
        for writer in 0..5 {
            let client = replica.client.clone();
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for update in 0..5 {
                    let hostname = format!("{label}-{writer}-{update}.local");
                    let result = client
                        .update_virtual_node()
                        .mesh_name("m")
                        .virtual_node_name("n")
                        .spec(node_spec(8080, &hostname, &[]))
                        .send()
                        .await;
                    answers.push((hostname, result));
                }
                answers
            }));
        }
    }
    let mut versions = Vec::new();
    for task in tasks {
        for (hostname, result) in task.await.unwrap() {
            match result {
                Ok(output) => versions.push((
                    output.virtual_node().unwrap().metadata().unwrap().version(),
                    hostname,
                )),
                Err(err) => {
                    let err = err.into_service_error();
                    assert!(err.is_too_many_requests_exception(), "{err:?}");
                }
            }
        }
    }
    versions.sort();
    let distinct: std::collections::BTreeSet<i64> = versions.iter().map(|(v, _)| *v).collect();
    assert_eq!(distinct.len(), versions.len(), "{versions:?}");
    println!("{} of 50 updates succeeded", versions.len());
    assert!(versions.len() >= 45, "{versions:?}");
    let (last_version, last_hostname) = versions.last().unwrap().clone();
    assert_eq!(last_version, 1 + versions.len() as i64);
    let (_, body) = agreed(&[&a, &b], &node_path("m", "n"), exists).await;
    let described = json(&body);
    assert_eq!(described["metadata"]["version"], last_version, "{body}");
    assert_eq!(
        described["spec"]["serviceDiscovery"]["dns"]["hostname"], last_hostname,
        "{body}"
    );
}

/// Deleting a virtual router through one replica while a route is created under it
/// through the other: never both, never a route without its router.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_racing_a_create_under_it_keeps_referential_integrity() {
    let (etcd, a, b) = two_replicas_with_node("target").await;
    let (mut deleted, mut created) = (0, 0);
    for round in 0..15 {
        let router = format!("router-{round}");
        a.client
            .create_virtual_router()
            .mesh_name("m")
            .virtual_router_name(&router)
            .spec(router_spec(&[8080]))
            .send()
            .await
            .unwrap();
        let router_path = format!("/v20190125/meshes/m/virtualRouters/{router}");
        agreed(&[&a, &b], &router_path, exists).await;
        let (delete, create) = tokio::join!(
            a.client
                .delete_virtual_router()
                .mesh_name("m")
                .virtual_router_name(&router)
                .send(),
            b.client
                .create_route()
                .mesh_name("m")
                .virtual_router_name(&router)
                .route_name("route")
                .spec(http_route_spec("/", &[("target", 1)], None))
                .send()
        );
        match (&delete, &create) {
            (Ok(_), Err(err)) => {
                assert!(
                    err.as_service_error()
                        .is_some_and(|err| err.is_not_found_exception()),
                    "{err:?}"
                );
                deleted += 1;
            }
            (Err(err), Ok(_)) => {
                assert!(
                    err.as_service_error()
                        .is_some_and(|err| err.is_resource_in_use_exception()),
                    "{err:?}"
                );
                created += 1;
            }
            _ => panic!("round {round}: delete {delete:?}, create {create:?}"),
        }
        let route_path = format!("/v20190125/meshes/m/virtualRouter/{router}/routes/route");
        let (router_status, _) = agreed(&[&a, &b], &router_path, |_, _| true).await;
        let (route_status, _) = agreed(&[&a, &b], &route_path, |_, _| true).await;
        assert!(
            route_status == 404 || router_status == 200,
            "round {round}: a route without its router"
        );
    }
    println!("{deleted} deletes won, {created} creates won");
    // A replica started now loads etcd's content, and refuses to start on a dangling route.
    let c = Replica::start(&endpoints(&etcd)).await;
    let (_, list) = agreed(&[&a, &b, &c], "/v20190125/meshes/m/virtualRouters", exists).await;
    assert_eq!(
        json(&list)["virtualRouters"].as_array().unwrap().len(),
        created,
        "{list}"
    );
}

const WEB: &str = "mesh/m/virtualNode/web";

fn web_cluster(port: i32) -> String {
    format!("cds_ingress_m_web_http_{port}")
}

async fn wait_for_cluster(envoy: &Envoy, cluster: &str, timeout: Duration) {
    eventually(&format!("Envoy to have {cluster}"), timeout, || async {
        let clusters = cluster_names(&envoy.config_dump().await);
        if clusters.iter().any(|name| name == cluster) {
            Ok(())
        } else {
            Err(format!("{clusters:?}"))
        }
    })
    .await
}

/// Moves `web` to `port` through `writer`, waits up to `timeout` for `envoy` to have the
/// new cluster and prints how long that took after `what`.
async fn move_web_and_wait(
    writer: &Replica,
    envoy: &Envoy,
    port: i32,
    timeout: Duration,
    what: &str,
) {
    let changed = Instant::now();
    move_node(writer, "web", port).await;
    wait_for_cluster(envoy, &web_cluster(port), timeout).await;
    println!("{what}: {} ms", changed.elapsed().as_millis());
}

/// A change made through replica A reaches an Envoy connected to replica B.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_through_one_replica_reaches_envoys_of_the_other() {
    let _envoy_lock = ENVOY_LOCK.lock().await;
    let (_etcd, a, b) = two_replicas_with_node("web").await;
    let envoy = Envoy::start(&common::arn(WEB), &b.xds_endpoint(), Mode::Sotw).await;
    wait_for_cluster(&envoy, &web_cluster(8080), WAIT).await;

    move_web_and_wait(&a, &envoy, 8081, WAIT, "write through A → Envoy on B").await;
    assert_eq!(meshd_proxies(b.api).await.len(), 1);
}

/// An Envoy whose bootstrap lists both replicas' xDS endpoints: when the replica it is
/// connected to is killed, it reconnects to the other and converges to the current
/// configuration, including a change made after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_envoy_fails_over_to_the_other_replica_when_its_replica_is_killed() {
    let _envoy_lock = ENVOY_LOCK.lock().await;
    let (_etcd, a, b) = two_replicas_with_node("web").await;
    let endpoint_block = |port: u16| {
        format!(
            "        - endpoint:\n            address:\n              socket_address:\n                address: 127.0.0.1\n                port_value: {port}\n"
        )
    };
    let (first, second) = (endpoint_block(a.xds_port), endpoint_block(b.xds_port));
    let envoy = Envoy::start_with(&common::arn(WEB), &a.xds_endpoint(), Mode::Sotw, |yaml| {
        assert!(yaml.contains(&first), "{yaml}");
        yaml.replace(&first, &format!("{first}{second}"))
    })
    .await;
    wait_for_cluster(&envoy, &web_cluster(8080), WAIT).await;

    let on_a = !meshd_proxies(a.api).await.is_empty();
    let on_b = !meshd_proxies(b.api).await.is_empty();
    assert!(on_a ^ on_b, "Envoy is connected to exactly one replica");
    let (killed, survivor) = if on_a { (a, b) } else { (b, a) };
    killed.kill().await;
    move_web_and_wait(
        &survivor,
        &envoy,
        8082,
        Duration::from_secs(60),
        "kill + change → Envoy converged through the survivor",
    )
    .await;
    assert_eq!(meshd_proxies(survivor.api).await.len(), 1);
}

/// A three-member etcd cluster with one member stopped keeps taking writes through both
/// replicas, and both serve the same content.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_member_cluster_with_one_member_down_keeps_working() {
    let mut etcd = etcd_cluster(3).await;
    let all = endpoints(&etcd);
    let a = Replica::start(&all).await;
    let b = Replica::start(&all).await;
    create_mesh(&a, "m").await;
    agreed(&[&a, &b], "/v20190125/meshes/m", exists).await;

    etcd[0].kill();
    // If it was the leader, the other two elect a new one first.
    etcd[1].wait_healthy().await;
    etcd[2].wait_healthy().await;
    first_write_after_an_election(&a).await;
    for index in 0..10 {
        let replica = if index % 2 == 0 { &a } else { &b };
        create_node(replica, "m", &format!("node-{index}"), 8080).await;
    }
    move_node(&b, "node-0", 8081).await;
    let (_, list) = agreed(&[&a, &b], "/v20190125/meshes/m/virtualNodes", |_, body| {
        json(body)["virtualNodes"].as_array().unwrap().len() == 11
    })
    .await;
    for node in json(&list)["virtualNodes"].as_array().unwrap() {
        let name = node["virtualNodeName"].as_str().unwrap();
        agreed(&[&a, &b], &node_path("m", name), exists).await;
    }
    let (_, body) = agreed(&[&a, &b], &node_path("m", "node-0"), exists).await;
    assert_eq!(json(&body)["metadata"]["version"], 2, "{body}");
}

/// With etcd gone, writes fail promptly with ServiceUnavailableException (503) and
/// change nothing, reads keep working, and once etcd is back writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_etcd_unreachable_writes_are_503_and_reads_go_on() {
    let mut etcd = etcd_cluster(1).await;
    let a = Replica::start(&endpoints(&etcd)).await;
    create_mesh(&a, "m").await;

    etcd[0].kill();
    let started = Instant::now();
    let err = a
        .client
        .create_mesh()
        .mesh_name("m2")
        .send()
        .await
        .expect_err("a write without etcd fails")
        .into_service_error();
    let elapsed = started.elapsed();
    assert!(err.is_service_unavailable_exception(), "{err:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    println!("write with etcd down: 503 after {} ms", elapsed.as_millis());

    let response = reqwest::Client::new()
        .put(format!("http://{}/v20190125/meshes", a.api))
        .header("content-type", "application/json")
        .body(r#"{"meshName":"m3"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "ServiceUnavailableException"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("etcd"), "{body}");

    assert_eq!(a.get("/v20190125/meshes/m").await.0, 200);
    assert_eq!(a.get("/v20190125/meshes/m2").await.0, 404);
    assert_eq!(a.get("/v20190125/meshes").await.0, 200);

    etcd[0].spawn();
    etcd[0].wait_healthy().await;
    eventually("writes to work again", WAIT, || async {
        a.client
            .create_mesh()
            .mesh_name("m2")
            .send()
            .await
            .map_err(|err| format!("{err:?}"))
    })
    .await;
    // A replica started now sees both meshes, and nothing of the failed writes.
    let b = Replica::start(&endpoints(&etcd)).await;
    let (_, list) = agreed(&[&a, &b], "/v20190125/meshes", exists).await;
    let list = json(&list);
    let names: Vec<&str> = list["meshes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mesh| mesh["meshName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m", "m2"], "{list}");
}

/// The create that the restart test sends twice, with the same client token.
fn create_web_with_token(
    client: &Client,
) -> aws_sdk_appmesh::operation::create_virtual_node::builders::CreateVirtualNodeFluentBuilder {
    client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("web")
        .spec(node_spec(8080, "web.local", &[]))
        .tags(tag("team", "a"))
        .client_token("token-1")
}

/// A replica killed and started again on the same etcd describes everything exactly as
/// before (uids, versions, timestamps, tags), as does the other replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_replica_loads_the_same_resources() {
    let etcd = etcd_cluster(1).await;
    let a = Replica::start(&endpoints(&etcd)).await;
    let b = Replica::start(&endpoints(&etcd)).await;
    create_mesh(&a, "m").await;
    create_web_with_token(&a.client).send().await.unwrap();
    move_node(&b, "web", 8081).await;
    move_node(&a, "web", 8082).await;
    let paths = [
        "/v20190125/meshes/m".to_string(),
        node_path("m", "web"),
        "/v20190125/meshes/m/virtualNodes".to_string(),
        format!(
            "/v20190125/tags?resourceArn={}",
            common::arn("mesh/m/virtualNode/web")
                .replace(':', "%3A")
                .replace('/', "%2F")
        ),
    ];
    agreed(&[&a, &b], &node_path("m", "web"), |status, body| {
        status == 200 && json(body)["metadata"]["version"] == 3
    })
    .await;
    let mut before = Vec::new();
    for path in &paths {
        before.push(agreed(&[&a, &b], path, exists).await);
    }
    a.kill().await;
    let restarted = Replica::start(&endpoints(&etcd)).await;
    for (path, before) in paths.iter().zip(&before) {
        assert_eq!(&restarted.get(path).await, before, "{path}");
        assert_eq!(&b.get(path).await, before, "{path}");
    }
    // The client token is remembered across the restart too: the same request again
    // gets the first answer (version 1), and a different one with it is refused.
    let again = create_web_with_token(&restarted.client)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.virtual_node().unwrap().metadata().unwrap().version(),
        1
    );
    let refused = create_web_with_token(&restarted.client)
        .spec(node_spec(9090, "web.local", &[]))
        .send()
        .await
        .expect_err("a different request with a used client token is refused");
    let refused = refused.into_service_error();
    assert!(refused.is_conflict_exception(), "{refused:?}");
    // And it changed nothing.
    assert_eq!(
        &restarted.get(&node_path("m", "web")).await,
        &before[1],
        "the node after the refused request"
    );
}

/// `--store etcd` with its flags (and their environment variables) as `meshd serve` reads them.
#[test]
fn meshd_serve_reads_the_etcd_flags() {
    use clap::Parser;
    use meshd::cli::{Cli, Command as MeshdCommand};
    use meshd::store::StoreConfig;
    let serve = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
        MeshdCommand::Serve(args) => args.server_config().store,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        serve(&[
            "meshd",
            "serve",
            "--store",
            "etcd",
            "--etcd-endpoints",
            "http://10.0.0.1:2379,http://10.0.0.2:2379",
        ]),
        StoreConfig::Etcd {
            endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
            prefix: "/meshd/".into(),
            access: Default::default(),
        }
    );
    assert_eq!(
        serve(&[
            "meshd",
            "serve",
            "--store",
            "etcd",
            "--etcd-prefix",
            "/other/"
        ]),
        StoreConfig::Etcd {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/other/".into(),
            access: Default::default(),
        }
    );
}

/// A store of more keys than one page of the load reads (500) is loaded whole, with the
/// same resources and client tokens, by a second store on the same etcd (in process,
/// through the library).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_many_pages_loads_whole() {
    use meshd::model::spec::{MeshSpec, VirtualNodeSpec};
    use meshd::model::{ResourceKey, ResourceKind, Spec};
    use meshd::store::{Idempotency, Limits, Store, StoreConfig, Write};
    let etcd = etcd_cluster(1).await;
    let config = StoreConfig::Etcd {
        endpoints: vec![etcd[0].endpoint()],
        prefix: "/paged/".into(),
        access: Default::default(),
    };
    let open = {
        let config = config.clone();
        move || Store::open(&config, Limits::default()).expect("the store opens on etcd")
    };
    let first = tokio::task::spawn_blocking({
        let open = open.clone();
        move || {
            let store = open();
            store
                .apply(
                    Write::Create {
                        key: ResourceKey::mesh("m"),
                        spec: Spec::Mesh(MeshSpec::default()),
                        tags: Vec::new(),
                    },
                    None,
                )
                .unwrap();
            for index in 0..700 {
                let token = (index % 2 == 0).then(|| Idempotency {
                    token: format!("token-{index}"),
                    fingerprint: format!("create {index}"),
                });
                store
                    .apply(
                        Write::Create {
                            key: ResourceKey::in_mesh(
                                ResourceKind::VirtualNode,
                                "m",
                                format!("node-{index}"),
                            ),
                            spec: Spec::VirtualNode(VirtualNodeSpec::default()),
                            tags: Vec::new(),
                        },
                        token,
                    )
                    .unwrap();
            }
            store.snapshot()
        }
    })
    .await
    .unwrap();
    let second = tokio::task::spawn_blocking(move || open().snapshot())
        .await
        .unwrap();
    assert_eq!(second.revision(), first.revision());
    assert_eq!(second.len(), 701);
    assert!(second.iter().eq(first.iter()));
    for index in (0..700).step_by(2) {
        let token = format!("token-{index}");
        assert_eq!(second.token(&token), first.token(&token), "{token}");
    }
}

/// A replica whose only etcd member was down while the others took writes and compacted
/// etcd's history past them cannot resume its watch: it reloads everything, and then
/// serves (and takes writes on) the same content as the other replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_behind_a_compaction_reloads() {
    let mut etcd = etcd_cluster(3).await;
    let a = Replica::start(&format!("{},{}", etcd[1].endpoint(), etcd[2].endpoint())).await;
    let b = Replica::start(&etcd[0].endpoint()).await;
    create_mesh(&a, "m").await;
    create_node(&a, "m", "gone", 8080).await;
    agreed(&[&a, &b], &node_path("m", "gone"), exists).await;

    etcd[0].kill();
    // If it was the leader, the other two elect a new one first.
    etcd[1].wait_healthy().await;
    etcd[2].wait_healthy().await;
    first_write_after_an_election(&a).await;
    for index in 0..5 {
        create_node(&a, "m", &format!("node-{index}"), 8080).await;
    }
    move_node(&a, "node-1", 8081).await;
    a.client
        .delete_virtual_node()
        .mesh_name("m")
        .virtual_node_name("gone")
        .send()
        .await
        .unwrap();
    let mut client = etcd_client::Client::connect([etcd[1].endpoint()], None)
        .await
        .unwrap();
    let revision = client
        .get("/meshd/revision", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    client
        .compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    assert_eq!(b.get(&node_path("m", "gone")).await.0, 200, "B is behind");

    etcd[0].spawn();
    etcd[0].wait_healthy().await;
    let (_, list) = agreed(&[&a, &b], "/v20190125/meshes/m/virtualNodes", |_, body| {
        json(body)["virtualNodes"].as_array().unwrap().len() == 6
    })
    .await;
    assert!(!list.contains("\"gone\""), "{list}");
    agreed(&[&a, &b], &node_path("m", "node-1"), |_, body| {
        json(body)["metadata"]["version"] == 2
    })
    .await;
    assert!(
        b.logged("reloading the store from etcd"),
        "B resumed its watch instead of reloading"
    );
    // B's reloaded store is current: a write through it is checked against it and taken.
    create_node(&b, "m", "after", 8080).await;
    agreed(&[&a, &b], &node_path("m", "after"), exists).await;
}

/// Creates the virtual node `first` in mesh `m` through `replica` once etcd has a
/// leader again: while the members elect one (up to a few seconds after the leader
/// went away), etcd takes no writes, and meshd answers 503.
async fn first_write_after_an_election(replica: &Replica) {
    eventually("a write after etcd's leader election", WAIT, || async {
        match replica
            .client
            .create_virtual_node()
            .mesh_name("m")
            .virtual_node_name("first")
            .spec(node_spec(8080, "first.local", &[]))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = err.into_service_error();
                assert!(err.is_service_unavailable_exception(), "{err:?}");
                Err(format!("{err:?}"))
            }
        }
    })
    .await
}
