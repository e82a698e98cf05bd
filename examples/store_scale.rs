//! Store scaling and list pages (issue 16): how an API create's latency and the memory
//! per resource grow with the number of virtual nodes in the store, and how many
//! `ListVirtualNodes` pages of 100 a meshd answers per second beside
//! `DescribeVirtualNode` of one node, the in-run baseline. An in-process meshd on a free
//! loopback port.
//!
//! ```sh
//! cargo build --release --example store_scale
//! target/release/examples/store_scale                      # 1k, 10k, 100k; embedded and memory
//! target/release/examples/store_scale --sizes 1000,10000 --store embedded --samples 200
//! target/release/examples/store_scale --sizes 0 --store memory   # list/describe only
//! ```
//!
//! For each store (`--store embedded`, the durable default, in a temporary data
//! directory under `TMPDIR` or `--data-dir`; `--store memory`), one meshd holds mesh
//! `bench`; for each size, ascending, the store is filled up to `size - samples`
//! virtual nodes directly through its `meshd::store::Store` (`Store::apply`, each write
//! the whole write path: checks, a commit to the backend, idempotency record, publication
//! on the change feed; only the HTTP request is skipped), then `samples` virtual nodes
//! are created one at a time through the API with the real AWS SDK for Rust and timed.
//! The store's limit of nodes per mesh is raised so that one mesh holds them all.
//! Every bulk write carries a client token like the SDK's, so each node has its
//! idempotency record, as one created through the API has.
//!
//! Memory: the process's resident set (`VmRSS` of `/proc/self/status`) after the
//! server started with its mesh, and after each size; per node is the growth divided
//! by the nodes created (a trivial node: one HTTP listener, DNS service discovery).
//!
//! Then (`--seconds` each, `--connections` concurrent tasks, each its own connection)
//! mesh `page` with 100 nodes: `ListVirtualNodes` (limit 100, one page of all 100) and
//! `DescribeVirtualNode`, once over plain HTTP (keep-alive; the client only reads the
//! body, so the figure is the server's) and once through the SDK (which parses every
//! answer in this process, on the same cores).
//!
//! Prints one `result` line per figure, each ratio beside its baseline. No assertion.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meshd::api::Account;
use meshd::model::{ResourceKey, ResourceKind};
use meshd::server::{self, ServerConfig};
use meshd::store::{Idempotency, Limits, Store, StoreConfig, Write};

/// The SDK client and spec builders the tests use (they need nothing but the SDK).
#[path = "../tests/common/sdk.rs"]
#[allow(dead_code)]
mod sdk;

const MESH: &str = "bench";
const PAGE_MESH: &str = "page";

/// The `p`-th percentile (0–100) of sorted `latencies`, in milliseconds.
fn percentile(latencies: &[Duration], p: usize) -> f64 {
    let index = (latencies.len() * p / 100).min(latencies.len() - 1);
    latencies[index].as_secs_f64() * 1000.0
}

/// The process's resident set size in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .expect("VmRSS in /proc/self/status")
}

struct Args {
    sizes: Vec<usize>,
    stores: Vec<String>,
    samples: usize,
    seconds: f64,
    connections: usize,
    data_dir: Option<std::path::PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: vec![1_000, 10_000, 100_000],
        stores: Vec::new(),
        samples: 200,
        seconds: 5.0,
        connections: 32,
        data_dir: None,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .unwrap_or_else(|| panic!("{word} needs a value"))
        };
        match word.as_str() {
            "--sizes" => {
                args.sizes = value()
                    .split(',')
                    .map(|size| size.parse().expect("sizes are whole numbers"))
                    .filter(|size| *size > 0)
                    .collect();
                args.sizes.sort();
            }
            "--store" => args.stores.extend(value().split(',').map(str::to_string)),
            "--samples" => args.samples = value().parse().expect("--samples N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds S"),
            "--connections" => args.connections = value().parse().expect("--connections N"),
            "--data-dir" => args.data_dir = Some(value().into()),
            other => panic!(
                "unknown argument {other:?}: --sizes N,N,… --store embedded|memory --samples N \
                 --seconds S --connections N --data-dir DIR"
            ),
        }
    }
    if args.stores.is_empty() {
        args.stores = vec!["embedded".into(), "memory".into()];
    }
    args.samples = args.samples.max(1);
    args
}

/// A client token like the SDK's (a UUID) and a fingerprint like the API's (SHA-256 hex).
fn idempotency(name: &str) -> Idempotency {
    Idempotency {
        token: uuid::Uuid::new_v4().to_string(),
        fingerprint: format!("{:0>64}", name),
    }
}

/// Creates nodes `from..to` in `mesh` through the store, each with the spec `template`
/// holds (one node created through the API, so specs are what the API stores).
fn fill(store: &Store, mesh: &str, template: &ResourceKey, from: usize, to: usize) {
    let spec = store
        .snapshot()
        .get(template)
        .expect("the template node exists")
        .spec
        .clone();
    for index in from..to {
        let name = format!("bulk-{index}");
        let write = Write::Create {
            key: ResourceKey::in_mesh(ResourceKind::VirtualNode, mesh, name.as_str()),
            spec: spec.clone(),
            tags: Vec::new(),
        };
        store
            .apply(write, Some(idempotency(&name)))
            .expect("a bulk create succeeds");
    }
}

async fn create_node(client: &aws_sdk_appmesh::Client, mesh: &str, name: &str) -> Duration {
    let sent = Instant::now();
    client
        .create_virtual_node()
        .mesh_name(mesh)
        .virtual_node_name(name)
        .spec(sdk::node_spec(8080, &format!("{name}.local"), &[]))
        .send()
        .await
        .unwrap();
    sent.elapsed()
}

/// Requests per second of `connections` tasks each calling `call` for `seconds`.
async fn throughput<F, Fut>(connections: usize, seconds: f64, call: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|task| {
            let (call, done) = (call.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    call(task).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn measure_store(store_name: &str, store: StoreConfig, args: &Args) {
    let account = Account {
        region: sdk::REGION.into(),
        account_id: "111122223333".into(),
    };
    let largest = args.sizes.last().copied().unwrap_or(0);
    let config = ServerConfig {
        store,
        limits: Limits {
            resources_per_mesh: (largest + args.samples).max(Limits::default().resources_per_mesh),
            ..Limits::default()
        },
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    let server = server::start(config).await.expect("meshd starts");
    let client = sdk::sdk_client(server.api_addr);
    for mesh in [MESH, PAGE_MESH] {
        client.create_mesh().mesh_name(mesh).send().await.unwrap();
    }
    create_node(&client, MESH, "template").await;
    let template = ResourceKey::in_mesh(ResourceKind::VirtualNode, MESH, "template");
    let rss_before = rss_bytes();
    let mut nodes = 1;
    let mut p50s = Vec::new();
    for &size in &args.sizes {
        let bulk_to = size.saturating_sub(args.samples).max(nodes);
        let filled = Instant::now();
        let store = server.store.clone();
        let (from, template) = (nodes, template.clone());
        tokio::task::spawn_blocking(move || fill(&store, MESH, &template, from, bulk_to))
            .await
            .unwrap();
        let fill_seconds = filled.elapsed().as_secs_f64();
        let bulk = bulk_to - nodes;
        nodes = bulk_to;
        let mut latencies = Vec::with_capacity(args.samples);
        for sample in 0..args.samples {
            latencies.push(create_node(&client, MESH, &format!("api-{size}-{sample}")).await);
        }
        nodes += args.samples;
        latencies.sort();
        let (p50, p99) = (percentile(&latencies, 50), percentile(&latencies, 99));
        p50s.push(p50);
        let rss = rss_bytes();
        let per_node = rss.saturating_sub(rss_before) as f64 / (nodes - 1).max(1) as f64;
        println!(
            "result store={store_name} nodes={nodes} create_p50_ms={p50:.3} create_p99_ms={p99:.3} \
             ratio_p50_to_first_size={:.2} rss_mib={:.1} rss_growth_per_node_kib={:.2} \
             (bulk {bulk} creates through Store::apply in {fill_seconds:.1} s, {:.3} ms each)",
            p50 / p50s[0],
            rss as f64 / (1 << 20) as f64,
            per_node / 1024.0,
            fill_seconds * 1000.0 / bulk.max(1) as f64,
        );
    }

    for index in 0..100 {
        create_node(&client, PAGE_MESH, &format!("node-{index:03}")).await;
    }
    let base = format!(
        "http://{}/v20190125/meshes/{PAGE_MESH}/virtualNodes",
        server.api_addr
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .unwrap();
    let check = http
        .get(format!("{base}?limit=100"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        check.matches("\"arn\"").count(),
        100,
        "a page holds the 100 nodes"
    );
    let mut figures = Vec::new();
    for (client_name, operation) in [
        ("http", "describe"),
        ("http", "list"),
        ("sdk", "describe"),
        ("sdk", "list"),
    ] {
        let rate = match client_name {
            "http" => {
                let (http, base) = (http.clone(), base.clone());
                throughput(args.connections, args.seconds, move |task| {
                    let url = if operation == "list" {
                        format!("{base}?limit=100")
                    } else {
                        format!("{base}/node-{:03}", task % 100)
                    };
                    let http = http.clone();
                    async move {
                        let answer = http.get(url).send().await.unwrap();
                        assert!(answer.status().is_success());
                        answer.bytes().await.unwrap();
                    }
                })
                .await
            }
            _ => {
                let client = client.clone();
                throughput(args.connections, args.seconds, move |task| {
                    let client = client.clone();
                    async move {
                        if operation == "list" {
                            let page = client
                                .list_virtual_nodes()
                                .mesh_name(PAGE_MESH)
                                .limit(100)
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(page.virtual_nodes().len(), 100);
                        } else {
                            client
                                .describe_virtual_node()
                                .mesh_name(PAGE_MESH)
                                .virtual_node_name(format!("node-{:03}", task % 100))
                                .send()
                                .await
                                .unwrap();
                        }
                    }
                })
                .await
            }
        };
        figures.push(rate);
        let baseline = if operation == "list" {
            format!(
                " describe_baseline_req_s={:.0} list_to_describe={:.3}",
                figures[figures.len() - 2],
                rate / figures[figures.len() - 2]
            )
        } else {
            String::new()
        };
        println!(
            "result store={store_name} client={client_name} connections={} op={operation} req_s={rate:.0}{baseline}{}",
            args.connections,
            if operation == "list" {
                " (ListVirtualNodes, page of 100)"
            } else {
                " (DescribeVirtualNode)"
            }
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for figures worth recording");
    }
    println!(
        "sizes {:?}, {} API creates timed per size, {} connections × {} s per throughput figure",
        args.sizes, args.samples, args.connections, args.seconds
    );
    println!(
        "size_of Resource={} Spec={} IdempotencyRecord={}",
        std::mem::size_of::<meshd::model::Resource>(),
        std::mem::size_of::<meshd::model::Spec>(),
        std::mem::size_of::<meshd::store::IdempotencyRecord>()
    );
    for name in &args.stores {
        let data_dir = match &args.data_dir {
            Some(parent) => tempfile::tempdir_in(parent),
            None => tempfile::tempdir(),
        }
        .expect("a temporary data directory");
        let store = match name.as_str() {
            "memory" => StoreConfig::Memory,
            "embedded" => StoreConfig::Embedded {
                data_dir: data_dir.path().to_path_buf(),
            },
            other => panic!("unknown store {other:?}: embedded or memory"),
        };
        measure_store(name, store, &args).await;
    }
}
