//! The embedded durable store as a user sees it: after a restart on the same data
//! directory every describe, list and tag listing answers as before, client tokens still
//! return their first answer and every proxy's compiled configuration is byte-identical;
//! every write answered with 200 survives SIGKILL of the real `meshd serve`; and a data
//! file that is damaged, inconsistent, written by a newer meshd or in use is refused with
//! a clear message.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::error::ProvideErrorMetadata;
use aws_sdk_appmesh::types::*;
use common::process::MeshdProcess;
use common::sdk::*;
use meshd::compile::{EncodedResource, ProxyId, ResourceType, compile_all};
use meshd::store::{DATA_FILE, FORMAT_VERSION, Limits, OpenError, Snapshot, Store, StoreConfig};

// ---------------------------------------------------------------------------------------
// What a user sees
// ---------------------------------------------------------------------------------------

/// Everything the read operations return, one entry per answer: every list (with its
/// items' versions and timestamps), every describe (spec, uid, version, timestamps,
/// status) and every resource's tags.
async fn observe(client: &Client) -> Vec<String> {
    let mut seen = Vec::new();
    let mut tags_of = Vec::new();
    let meshes = client.list_meshes().send().await.unwrap();
    seen.push(format!("meshes {:?}", meshes.meshes()));
    for mesh in meshes.meshes() {
        let m = mesh.mesh_name.as_str();
        seen.push(format!("mesh {m} {:?}", describe_mesh(client, m).await));
        tags_of.push(mesh.arn.clone());

        let nodes = client
            .list_virtual_nodes()
            .mesh_name(m)
            .send()
            .await
            .unwrap();
        seen.push(format!("nodes of {m} {:?}", nodes.virtual_nodes()));
        for node in nodes.virtual_nodes() {
            let data = describe_node(client, m, &node.virtual_node_name).await;
            seen.push(format!("node {data:?}"));
            tags_of.push(node.arn.clone());
        }

        let routers = client
            .list_virtual_routers()
            .mesh_name(m)
            .send()
            .await
            .unwrap();
        seen.push(format!("routers of {m} {:?}", routers.virtual_routers()));
        for router in routers.virtual_routers() {
            let r = router.virtual_router_name.as_str();
            seen.push(format!("router {:?}", describe_router(client, m, r).await));
            tags_of.push(router.arn.clone());
            let routes = client
                .list_routes()
                .mesh_name(m)
                .virtual_router_name(r)
                .send()
                .await
                .unwrap();
            seen.push(format!("routes of {r} {:?}", routes.routes()));
            for route in routes.routes() {
                let data = describe_route(client, m, r, &route.route_name).await;
                seen.push(format!("route {data:?}"));
                tags_of.push(route.arn.clone());
            }
        }

        let services = client
            .list_virtual_services()
            .mesh_name(m)
            .send()
            .await
            .unwrap();
        seen.push(format!("services of {m} {:?}", services.virtual_services()));
        for service in services.virtual_services() {
            let data = describe_service(client, m, &service.virtual_service_name).await;
            seen.push(format!("service {data:?}"));
            tags_of.push(service.arn.clone());
        }

        let gateways = client
            .list_virtual_gateways()
            .mesh_name(m)
            .send()
            .await
            .unwrap();
        seen.push(format!("gateways of {m} {:?}", gateways.virtual_gateways()));
        for gateway in gateways.virtual_gateways() {
            let g = gateway.virtual_gateway_name.as_str();
            let data = describe_gateway(client, m, g).await;
            seen.push(format!("gateway {data:?}"));
            tags_of.push(gateway.arn.clone());
            let routes = client
                .list_gateway_routes()
                .mesh_name(m)
                .virtual_gateway_name(g)
                .send()
                .await
                .unwrap();
            seen.push(format!(
                "gateway routes of {g} {:?}",
                routes.gateway_routes()
            ));
            for route in routes.gateway_routes() {
                let data = describe_gateway_route(client, m, g, &route.gateway_route_name).await;
                seen.push(format!("gateway route {data:?}"));
                tags_of.push(route.arn.clone());
            }
        }
    }
    for arn in tags_of {
        let tags = client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap();
        seen.push(format!("tags of {arn} {:?}", tags.tags()));
    }
    seen
}

/// Every proxy's compiled configuration, encoded as xDS sends it, with its diagnostics.
type Compiled = BTreeMap<ProxyId, (bool, Vec<String>, Vec<Vec<EncodedResource>>)>;

fn compiled(snapshot: &Snapshot) -> Compiled {
    compile_all(snapshot)
        .into_iter()
        .map(|(proxy, config)| {
            let encoded = ResourceType::ALL
                .into_iter()
                .map(|kind| config.encoded(kind))
                .collect();
            (proxy, (config.exists, config.diagnostics.clone(), encoded))
        })
        .collect()
}

/// The create that the restart test repeats with the same client token.
fn create_with_token(
    client: &Client,
) -> aws_sdk_appmesh::operation::create_virtual_node::builders::CreateVirtualNodeFluentBuilder {
    client
        .create_virtual_node()
        .mesh_name("shop")
        .virtual_node_name("audit")
        .spec(node_spec(7070, "audit.shop.local", &[]))
        .tags(tag("purpose", "idempotency"))
        .client_token("restart-token-1")
}

/// A mesh of every kind of resource, with tags, updates, deletes and a client token.
async fn populate(client: &Client) -> VirtualNodeData {
    client
        .create_mesh()
        .mesh_name("shop")
        .spec(
            MeshSpec::builder()
                .egress_filter(
                    EgressFilter::builder()
                        .r#type(EgressFilterType::AllowAll)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .tags(tag("team", "payments"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    client.create_mesh().mesh_name("gone").send().await.unwrap();
    client.delete_mesh().mesh_name("gone").send().await.unwrap();
    client
        .create_mesh()
        .mesh_name("empty")
        .send()
        .await
        .unwrap();

    for (name, port, backends) in [
        ("web", 8080, &["catalog.shop.local"][..]),
        ("catalog-v1", 9080, &[][..]),
        ("catalog-v2", 9080, &[][..]),
        ("temporary", 1234, &[][..]),
    ] {
        client
            .create_virtual_node()
            .mesh_name("shop")
            .virtual_node_name(name)
            .spec(node_spec(port, &format!("{name}.shop.local"), backends))
            .tags(tag("app", name))
            .send()
            .await
            .unwrap();
    }
    for port in [9081, 9082] {
        update_node(
            client,
            "shop",
            "catalog-v1",
            node_spec(port, "catalog-v1.shop.local", &[]),
        )
        .await;
    }
    client
        .delete_virtual_node()
        .mesh_name("shop")
        .virtual_node_name("temporary")
        .send()
        .await
        .unwrap();
    let first = create_with_token(client)
        .send()
        .await
        .unwrap()
        .virtual_node
        .unwrap();

    client
        .create_virtual_router()
        .mesh_name("shop")
        .virtual_router_name("catalog-router")
        .spec(router_spec(&[9080]))
        .send()
        .await
        .unwrap();
    client
        .create_route()
        .mesh_name("shop")
        .virtual_router_name("catalog-router")
        .route_name("split")
        .spec(http_route_spec(
            "/",
            &[("catalog-v1", 90), ("catalog-v2", 10)],
            None,
        ))
        .tags(tag("rollout", "canary"))
        .tags(tag("owner", "catalog"))
        .send()
        .await
        .unwrap();
    client
        .update_route()
        .mesh_name("shop")
        .virtual_router_name("catalog-router")
        .route_name("split")
        .spec(http_route_spec(
            "/",
            &[("catalog-v1", 50), ("catalog-v2", 50)],
            None,
        ))
        .send()
        .await
        .unwrap();
    create_service(
        client,
        "shop",
        "catalog.shop.local",
        router_provided("catalog-router"),
    )
    .await;
    client
        .create_virtual_service()
        .mesh_name("shop")
        .virtual_service_name("web.shop.local")
        .spec(node_provided("web"))
        .tags(tag("public", "yes"))
        .send()
        .await
        .unwrap();
    create_gateway(
        client,
        "shop",
        "ingress",
        gateway_spec(&[8443], VirtualGatewayPortProtocol::Http),
    )
    .await;
    create_gateway_route(
        client,
        "shop",
        "ingress",
        "to-web",
        gateway_route_spec("/", "web.shop.local", None),
    )
    .await;

    let route_arn = common::arn("mesh/shop/virtualRouter/catalog-router/route/split");
    tag_resource(
        client,
        &route_arn,
        vec![tag("rollout", "half"), tag("ticket", "OPS-42")],
    )
    .await;
    client
        .untag_resource()
        .resource_arn(&route_arn)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    tag_resource(
        client,
        &common::arn("mesh/shop/virtualGateway/ingress"),
        vec![tag("edge", "true")],
    )
    .await;
    first
}

#[tokio::test]
async fn a_restart_on_the_same_data_directory_gives_back_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_embedded_server(dir.path()).await;
    let client = common::sdk_client(server.api_addr);
    let first = populate(&client).await;
    let before = observe(&client).await;
    let compiled_before = compiled(&server.store.snapshot());
    let web = ProxyId::parse("mesh/shop/virtualNode/web").unwrap();
    let (exists, _, web_config) = &compiled_before[&web];
    let [clusters, _endpoints, _secrets, listeners, routes] = &web_config[..] else {
        panic!("five resource types")
    };
    assert!(
        *exists && !clusters.is_empty() && !listeners.is_empty() && !routes.is_empty(),
        "the comparison covers a proxy with clusters, listeners and routes"
    );
    drop(client);
    server.shutdown().await.unwrap();

    let server = common::start_embedded_server(dir.path()).await;
    let client = common::sdk_client(server.api_addr);
    let after = observe(&client).await;
    assert_eq!(after.len(), before.len(), "{after:#?}");
    for (after, before) in after.iter().zip(&before) {
        assert_eq!(after, before, "an answer changed across the restart");
    }
    assert!(before.iter().any(|seen| seen.contains("payments")));
    assert!(before.iter().any(|seen| seen.contains("OPS-42")));
    assert!(
        !before
            .iter()
            .any(|seen| seen.contains("temporary.shop.local"))
    );
    assert!(!before.iter().any(|seen| seen.contains("mesh/gone")));

    let compiled_after = compiled(&server.store.snapshot());
    assert_eq!(
        compiled_after.keys().collect::<Vec<_>>(),
        compiled_before.keys().collect::<Vec<_>>()
    );
    for (proxy, config) in &compiled_before {
        assert!(
            compiled_after[proxy] == *config,
            "the compiled configuration of {proxy} changed across the restart"
        );
    }

    let replay = create_with_token(&client)
        .send()
        .await
        .unwrap()
        .virtual_node
        .unwrap();
    assert_eq!(replay, first, "the retry gets the first answer back");
    assert_eq!(observe(&client).await, before, "the retry changed nothing");

    let updated = update_node(
        &client,
        "shop",
        "catalog-v1",
        node_spec(9083, "catalog-v1.shop.local", &[]),
    )
    .await;
    assert_eq!(
        updated.metadata.unwrap().version,
        4,
        "versions continue from where they were"
    );
    drop(client);
    server.shutdown().await.unwrap();

    let server = common::start_embedded_server(dir.path()).await;
    let client = common::sdk_client(server.api_addr);
    let node = describe_node(&client, "shop", "catalog-v1").await;
    assert_eq!(node.metadata.unwrap().version, 4);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_memory_store_keeps_nothing_across_a_restart() {
    let server = common::start_server_with_store(StoreConfig::Memory).await;
    let client = common::sdk_client(server.api_addr);
    client.create_mesh().mesh_name("m").send().await.unwrap();
    server.shutdown().await.unwrap();
    let server = common::start_server_with_store(StoreConfig::Memory).await;
    let client = common::sdk_client(server.api_addr);
    assert!(mesh_names(&client).await.is_empty());
    server.shutdown().await.unwrap();
}

#[test]
fn meshd_serve_defaults_to_the_embedded_store_in_meshd_data() {
    use clap::Parser;
    use meshd::cli::{Cli, Command};
    let serve = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
        Command::Serve(args) => args.server_config().store,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        serve(&["meshd", "serve"]),
        StoreConfig::Embedded {
            data_dir: PathBuf::from("./meshd-data")
        }
    );
    assert_eq!(
        serve(&[
            "meshd",
            "serve",
            "--store",
            "embedded",
            "--data-dir",
            "/var/x"
        ]),
        StoreConfig::Embedded {
            data_dir: PathBuf::from("/var/x")
        }
    );
    assert_eq!(
        serve(&["meshd", "serve", "--store", "memory"]),
        StoreConfig::Memory
    );
    assert!(Cli::try_parse_from(["meshd", "serve", "--store", "etcetera"]).is_err());
}

// ---------------------------------------------------------------------------------------
// Crashes
// ---------------------------------------------------------------------------------------

/// A small xorshift generator: the crash test's choices, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The real `meshd serve` on a free API port over the embedded store in `data_dir`.
async fn spawn_meshd(data_dir: &Path) -> MeshdProcess {
    let data_dir = data_dir.to_str().expect("a UTF-8 temporary path");
    MeshdProcess::start(&[
        "--xds-addr",
        "127.0.0.1:0",
        "--store",
        "embedded",
        "--data-dir",
        data_dir,
    ])
    .await
}

/// A write whose answer never came: it may or may not have happened.
#[derive(Debug, Clone)]
enum Unanswered {
    Create(VirtualNodeSpec),
    Update(VirtualNodeSpec),
    Delete,
}

/// What the crash test knows about one virtual node.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The node as the last answered write left it (`None`: deleted, or never created).
    answered: Option<VirtualNodeData>,
    /// A later write that got no answer.
    unanswered: Option<Unanswered>,
}

/// One writer's nodes (named `w<writer>-<n>`), and what it did in one round.
#[derive(Debug, Default)]
struct Writer {
    id: usize,
    next: u64,
    nodes: BTreeMap<String, Known>,
    answered: u64,
    unexpected: Vec<String>,
}

const MESH: &str = "crash";

/// Writes until the server goes away: creates (keeping 3 to 8 nodes), updates and
/// deletes, one at a time, recording each answer and the one write left unanswered.
async fn write_until_killed(client: Client, mut writer: Writer, mut rng: Rng) -> Writer {
    loop {
        let live: Vec<String> = writer
            .nodes
            .iter()
            .filter(|(_, known)| known.answered.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        let roll = rng.below(10);
        let result = if live.len() < 3 || (roll < 2 && live.len() < 8) {
            let name = format!("w{}-{}", writer.id, writer.next);
            writer.next += 1;
            let spec = node_spec(
                1 + rng.below(60000) as i32,
                &format!("{name}.v1.local"),
                &["a.local"],
            );
            let known = writer.nodes.entry(name.clone()).or_default();
            known.unanswered = Some(Unanswered::Create(spec.clone()));
            client
                .create_virtual_node()
                .mesh_name(MESH)
                .virtual_node_name(&name)
                .spec(spec.clone())
                .send()
                .await
                .map(|out| (name, spec, out.virtual_node))
                .map_err(|err| (err.code().map(str::to_string), format!("{err:?}")))
        } else if roll < 8 {
            let name = live[rng.below(live.len() as u64) as usize].clone();
            let version = writer.nodes[&name]
                .answered
                .as_ref()
                .and_then(|data| data.metadata.as_ref())
                .map_or(0, |metadata| metadata.version);
            let spec = node_spec(
                1 + rng.below(60000) as i32,
                &format!("{name}.v{}.local", version + 1),
                &["a.local", "b.local"][..rng.below(3) as usize],
            );
            writer.nodes.get_mut(&name).unwrap().unanswered =
                Some(Unanswered::Update(spec.clone()));
            client
                .update_virtual_node()
                .mesh_name(MESH)
                .virtual_node_name(&name)
                .spec(spec.clone())
                .send()
                .await
                .map(|out| (name, spec, out.virtual_node))
                .map_err(|err| (err.code().map(str::to_string), format!("{err:?}")))
        } else {
            let name = live[rng.below(live.len() as u64) as usize].clone();
            writer.nodes.get_mut(&name).unwrap().unanswered = Some(Unanswered::Delete);
            match client
                .delete_virtual_node()
                .mesh_name(MESH)
                .virtual_node_name(&name)
                .send()
                .await
            {
                Ok(_) => {
                    let known = writer.nodes.get_mut(&name).unwrap();
                    known.answered = None;
                    known.unanswered = None;
                    writer.answered += 1;
                    continue;
                }
                Err(err) => Err((err.code().map(str::to_string), format!("{err:?}"))),
            }
        };
        match result {
            Ok((name, spec, data)) => {
                let data = data.expect("a write answers with the node");
                if data.spec.as_ref() != Some(&spec) {
                    writer
                        .unexpected
                        .push(format!("{name} was answered with another spec: {data:?}"));
                }
                let known = writer.nodes.get_mut(&name).unwrap();
                known.answered = Some(data);
                known.unanswered = None;
                writer.answered += 1;
            }
            Err((Some(code), err)) => {
                // The server answered with an error: it was alive, and refused a write
                // this test only makes when it is valid.
                writer
                    .unexpected
                    .push(format!("a write failed with {code}: {err}"));
                return writer;
            }
            Err((None, _)) => return writer,
        }
    }
}

/// Checks every node the writers know about against the restarted server, returns the
/// losses found, and settles each unanswered write with what the server holds.
async fn check_after_restart(client: &Client, writers: &mut [Writer]) -> Checked {
    let mut checked = Checked::default();
    let listed = all_node_names(client, MESH, None).await;
    let mut known_names = Vec::new();
    for writer in writers.iter_mut() {
        for (name, known) in writer.nodes.iter_mut() {
            known_names.push(name.clone());
            let found = match client
                .describe_virtual_node()
                .mesh_name(MESH)
                .virtual_node_name(name)
                .send()
                .await
            {
                Ok(out) => Some(out.virtual_node.expect("a describe answers with the node")),
                Err(err) if err.code() == Some("NotFoundException") => None,
                Err(err) => panic!("describing {name} after the restart failed: {err:?}"),
            };
            if known.answered.is_some() {
                checked.nodes += 1;
            }
            let version = |data: &VirtualNodeData| data.metadata.as_ref().unwrap().version;
            let same_node = |a: &VirtualNodeData, b: &VirtualNodeData| {
                let (a, b) = (a.metadata.as_ref().unwrap(), b.metadata.as_ref().unwrap());
                a.uid == b.uid && a.created_at == b.created_at
            };
            let ok = match (&known.answered, &known.unanswered, &found) {
                (answered, _, found) if answered == found => true,
                (None, Some(Unanswered::Create(spec)), Some(found)) => {
                    version(found) == 1 && found.spec.as_ref() == Some(spec)
                }
                (Some(answered), Some(Unanswered::Update(spec)), Some(found)) => {
                    same_node(answered, found)
                        && version(found) == version(answered) + 1
                        && found.spec.as_ref() == Some(spec)
                }
                (Some(_), Some(Unanswered::Delete), None) => true,
                _ => false,
            };
            if known.unanswered.is_some() {
                if known.answered == found {
                    checked.unanswered_not_applied += 1;
                } else {
                    checked.unanswered_applied += 1;
                }
            }
            if !ok {
                checked.losses.push(format!(
                    "{name}: answered {:?}, unanswered {:?}, found after the restart {found:?}",
                    known.answered, known.unanswered
                ));
            }
            known.answered = found;
            known.unanswered = None;
        }
        writer
            .nodes
            .retain(|_, known| known.answered.is_some() || known.unanswered.is_some());
    }
    for name in listed {
        if !known_names.contains(&name) {
            checked
                .losses
                .push(format!("{name} exists, but no write created it"));
        }
    }
    checked
}

/// What one check after a restart found.
#[derive(Debug, Default)]
struct Checked {
    /// Nodes whose last answered write was checked.
    nodes: u64,
    /// Unanswered writes found to have happened.
    unanswered_applied: u64,
    /// Unanswered writes found not to have happened.
    unanswered_not_applied: u64,
    /// Answered writes missing or changed, and nodes no write made.
    losses: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_write_survives_sigkill() {
    const KILLS: usize = 40;
    const WRITERS: usize = 4;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();

    let mut meshd = spawn_meshd(dir.path()).await;
    common::sdk_client(meshd.api)
        .create_mesh()
        .mesh_name(MESH)
        .send()
        .await
        .unwrap();
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|id| Writer {
            id,
            ..Writer::default()
        })
        .collect();
    let (mut kills, mut answered) = (0, 0);
    let mut checked = Checked::default();
    let mut unexpected = Vec::new();
    while kills < KILLS {
        let client = common::sdk_client(meshd.api);
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|writer| {
                let rng = Rng(rng.next() | 1);
                tokio::spawn(write_until_killed(client.clone(), writer, rng))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50 + rng.below(351))).await;
        meshd.child.start_kill().unwrap();
        meshd.child.wait().await.unwrap();
        kills += 1;
        for task in tasks {
            let mut writer = task.await.unwrap();
            answered += writer.answered;
            writer.answered = 0;
            unexpected.append(&mut writer.unexpected);
            writers.push(writer);
        }

        meshd = spawn_meshd(dir.path()).await;
        let client = common::sdk_client(meshd.api);
        if let Err(err) = client.describe_mesh().mesh_name(MESH).send().await {
            checked
                .losses
                .push(format!("the mesh is gone after a restart: {err:?}"));
            break;
        }
        let mut round = check_after_restart(&client, &mut writers).await;
        checked.nodes += round.nodes;
        checked.unanswered_applied += round.unanswered_applied;
        checked.unanswered_not_applied += round.unanswered_not_applied;
        checked.losses.append(&mut round.losses);
    }
    meshd.child.start_kill().unwrap();
    meshd.child.wait().await.unwrap();

    let losses = checked.losses;
    println!(
        "crash test: {kills} kills, {answered} writes answered with 200 and checked ({} node states compared after restarts), {} losses found; writes cut off by a kill: {} had happened, {} had not; {:.1} s",
        checked.nodes,
        losses.len(),
        checked.unanswered_applied,
        checked.unanswered_not_applied,
        started.elapsed().as_secs_f64()
    );
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(
        answered >= KILLS as u64,
        "writes were answered before the kills"
    );
    assert!(losses.is_empty(), "losses: {losses:#?}");
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

fn embedded(dir: &Path) -> StoreConfig {
    StoreConfig::Embedded {
        data_dir: dir.to_path_buf(),
    }
}

/// A data directory holding a mesh and a virtual node whose hostname is `marker`.
async fn data_dir_with(marker: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_embedded_server(dir.path()).await;
    let client = common::sdk_client(server.api_addr);
    client.create_mesh().mesh_name("m").send().await.unwrap();
    client
        .create_virtual_node()
        .mesh_name("m")
        .virtual_node_name("n")
        .spec(node_spec(8080, marker, &[]))
        .send()
        .await
        .unwrap();
    drop(client);
    server.shutdown().await.unwrap();
    dir
}

fn open(dir: &Path) -> Result<Store, OpenError> {
    Store::open(&embedded(dir), Limits::default())
}

/// Runs `meshd serve` on `dir` and returns its exit status and standard error.
async fn serve_output(dir: &Path) -> (std::process::ExitStatus, String) {
    MeshdProcess::refusal(&["--data-dir", dir.to_str().unwrap()]).await
}

#[tokio::test]
async fn a_damaged_data_file_is_refused_with_a_clear_message() {
    let marker = "corruption-marker.example.internal";
    let dir = data_dir_with(marker).await;
    let file = dir.path().join(DATA_FILE);
    let pristine = std::fs::read(&file).unwrap();
    let store = open(dir.path()).expect("the undamaged file loads");
    assert_eq!(store.snapshot().len(), 2);
    drop(store);

    // Every copy of the node's bytes in the file (the live page and any stale ones) has
    // one character changed, so the spec is still the same length.
    let mut flipped = pristine.clone();
    let positions: Vec<usize> = pristine
        .windows(marker.len())
        .enumerate()
        .filter(|(_, window)| *window == marker.as_bytes())
        .map(|(at, _)| at)
        .collect();
    assert!(!positions.is_empty(), "the file holds the node's hostname");
    for at in positions {
        flipped[at] = b'k';
    }
    let truncated = pristine[..pristine.len() / 2].to_vec();
    let mut garbage = Rng(0x5eed);
    let garbage: Vec<u8> = (0..pristine.len()).map(|_| garbage.next() as u8).collect();

    for (what, bytes) in [
        ("a changed byte", flipped),
        ("a truncated file", truncated),
        ("a file of random bytes", garbage),
        ("an empty file", Vec::new()),
    ] {
        std::fs::write(&file, &bytes).unwrap();
        match open(dir.path()) {
            Err(err @ OpenError::Corrupt { .. }) => {
                let message = err.to_string();
                assert!(
                    message.contains("is corrupt") && message.contains(&file.display().to_string()),
                    "{what}: {message}"
                );
            }
            Err(other) => panic!("{what}: expected a corrupt-file error, got {other}"),
            Ok(store) => panic!(
                "{what}: the damaged file was loaded, with {} resources",
                store.snapshot().len()
            ),
        }
        let (status, stderr) = serve_output(dir.path()).await;
        assert!(!status.success(), "{what}: meshd serve exits with an error");
        assert!(
            stderr.contains("is corrupt and was not loaded"),
            "{what}: meshd serve says why: {stderr}"
        );
    }

    std::fs::write(&file, &pristine).unwrap();
    let store = open(dir.path()).expect("the restored file loads again");
    assert_eq!(store.snapshot().len(), 2);
}

/// Changes the data file in `dir` with redb directly, as a newer or broken meshd might.
fn tamper(dir: &Path, change: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::open(dir.join(DATA_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    change(&txn);
    txn.commit().unwrap();
}

const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
const RESOURCES: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("resources");

#[tokio::test]
async fn a_data_file_from_a_newer_meshd_is_refused() {
    let dir = data_dir_with("n.local").await;
    tamper(dir.path(), |txn| {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format_version", FORMAT_VERSION + 1).unwrap();
    });
    match open(dir.path()) {
        Err(OpenError::NewerFormat {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        Err(other) => panic!("expected a newer-format error, got {other}"),
        Ok(_) => panic!("a file from a newer meshd was loaded"),
    }
    let (status, stderr) = serve_output(dir.path()).await;
    assert!(!status.success());
    assert!(
        stderr.contains("was written by a newer meshd")
            && stderr.contains(&format!("data format version {}", FORMAT_VERSION + 1)),
        "meshd serve says why: {stderr}"
    );

    tamper(dir.path(), |txn| {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("format_version", FORMAT_VERSION).unwrap();
    });
    assert_eq!(open(dir.path()).unwrap().snapshot().len(), 2);
}

#[tokio::test]
async fn a_data_file_with_unreadable_or_inconsistent_content_is_refused() {
    let dir = data_dir_with("n.local").await;
    let file = dir.path().join(DATA_FILE);
    let pristine = std::fs::read(&file).unwrap();
    let node_key = r#"{"mesh":"m","kind":"VirtualNode","parent":"","name":"n"}"#;

    // A value that is not a resource.
    tamper(dir.path(), |txn| {
        let mut resources = txn.open_table(RESOURCES).unwrap();
        resources
            .insert(node_key, br#"{"key": "not a resource"}"#.as_slice())
            .unwrap();
    });
    let message = open(dir.path()).err().expect("refused").to_string();
    assert!(
        message.contains("is corrupt") && message.contains("mesh/m/virtualNode/n"),
        "{message}"
    );

    // A node whose mesh is missing: every resource decodes, but together they break
    // referential integrity.
    std::fs::write(&file, &pristine).unwrap();
    tamper(dir.path(), |txn| {
        use redb::ReadableTable;
        let mut resources = txn.open_table(RESOURCES).unwrap();
        let node = resources.get(node_key).unwrap().unwrap().value().to_vec();
        let mut moved: serde_json::Value = serde_json::from_slice(&node).unwrap();
        moved["key"]["mesh"] = "elsewhere".into();
        let moved_key = node_key.replace("\"m\"", "\"elsewhere\"");
        resources
            .insert(
                moved_key.as_str(),
                serde_json::to_vec(&moved).unwrap().as_slice(),
            )
            .unwrap();
    });
    let message = open(dir.path()).err().expect("refused").to_string();
    assert!(
        message.contains("is corrupt") && message.contains("mesh/elsewhere/virtualNode/n"),
        "{message}"
    );
    assert!(message.contains("Mesh with name elsewhere"), "{message}");

    std::fs::write(&file, &pristine).unwrap();
    assert_eq!(open(dir.path()).unwrap().snapshot().len(), 2);
}

#[tokio::test]
async fn a_data_directory_in_use_is_refused() {
    let dir = data_dir_with("n.local").await;
    let store = open(dir.path()).unwrap();
    match open(dir.path()) {
        Err(err @ OpenError::InUse { .. }) => {
            assert!(err.to_string().contains("in use"), "{err}")
        }
        Err(other) => panic!("expected an in-use error, got {other}"),
        Ok(_) => panic!("two stores opened one data directory"),
    }
    let (status, stderr) = serve_output(dir.path()).await;
    assert!(!status.success());
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    drop(store);
    assert_eq!(open(dir.path()).unwrap().snapshot().len(), 2);
}

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted when dropped (the test
/// runs as root, as `mount` needs; it fails, never skips, otherwise).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("`mount` runs");
        assert!(
            output.status.success(),
            "this test mounts a small tmpfs and must run as root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server still holding its file open (a failed test) must not keep
        // the mount.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A mesh with 50 large tags, so that a few writes fill a small disk.
async fn create_large_mesh(client: &Client, name: &str) -> Result<(), String> {
    let tags = (0..50)
        .map(|i| tag(&format!("k{i}"), &"v".repeat(256)))
        .collect::<Vec<_>>();
    client
        .create_mesh()
        .mesh_name(name)
        .set_tags(Some(tags))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            err.into_service_error()
                .code()
                .unwrap_or("none")
                .to_string()
        })
}

/// When the disk fills up, writes fail with `ServiceUnavailableException` and change
/// nothing; once there is space again, writes work again without a restart, and every
/// acknowledged write is there after one.
#[tokio::test]
async fn writes_work_again_once_a_full_disk_has_space() {
    let disk = SmallDisk::mount(4 << 20);
    let data_dir = disk.path().join("data");
    let server = common::start_embedded_server(&data_dir).await;
    let client = common::sdk_client(server.api_addr);
    create_large_mesh(&client, "first").await.unwrap();

    // Leave a little room, then write until the disk is full.
    let filler = disk.path().join("filler");
    let free = rustix::fs::statvfs(disk.path()).unwrap();
    let room = (free.f_bavail * free.f_frsize).saturating_sub(96 * 1024);
    std::fs::write(&filler, vec![0u8; room as usize]).unwrap();
    let mut acknowledged = vec!["first".to_string()];
    let mut refused = None;
    for i in 0..500 {
        let name = format!("m{i}");
        match create_large_mesh(&client, &name).await {
            Ok(()) => acknowledged.push(name),
            Err(code) => {
                refused = Some(code);
                break;
            }
        }
    }
    assert_eq!(refused.as_deref(), Some("ServiceUnavailableException"));
    let revision = server.store.snapshot().revision();

    std::fs::remove_file(&filler).unwrap();
    for i in 0..10 {
        let name = format!("after-{i}");
        create_large_mesh(&client, &name)
            .await
            .unwrap_or_else(|code| panic!("write {i} after space was freed failed: {code}"));
        acknowledged.push(name);
    }
    assert_eq!(server.store.snapshot().revision(), revision + 10);

    server.shutdown().await.unwrap();
    let server = common::start_embedded_server(&data_dir).await;
    let client = common::sdk_client(server.api_addr);
    let mut stored = mesh_names(&client).await;
    stored.sort();
    acknowledged.sort();
    assert_eq!(
        stored, acknowledged,
        "every acknowledged write, and only those"
    );
    server.shutdown().await.unwrap();
}
