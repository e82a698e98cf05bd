//! API write latency (p50/p99) and throughput with each store backend: an in-process
//! meshd on a free loopback port, driven by the real AWS SDK for Rust.
//!
//! ```sh
//! cargo run --release --example write_latency            # 500 creates; 8 writers × 100 updates
//! cargo run --release --example write_latency -- 2000 16 200
//! # durable writes with 1, 8 and 32 concurrent writers, 200 updates each:
//! cargo run --release --example write_latency -- 500 0 200 --writers 1,8,32 --store embedded
//! # etcd too (a meshd built with the etcd feature, and a running etcd):
//! cargo run --release --features etcd --example write_latency -- \
//!     --store memory --store embedded --store etcd --etcd-endpoints http://127.0.0.1:2379
//! ```
//!
//! Two workloads per backend: creates of virtual nodes one at a time (the latency one
//! client sees), then updates from several concurrent writers, each to its own node
//! (throughput; writes are decided one after another by the store, and with the
//! embedded store each is durable before it is answered, concurrent ones sharing a
//! commit and its two fsyncs; with etcd each is one etcd transaction, committed by the
//! etcd cluster before it is answered). `--writers 1,8,32` measures the concurrent
//! workload once per writer count, on the same meshd, a row each. The embedded
//! store writes to a temporary directory (`TMPDIR`), so the figures depend on that file
//! system's fsync; etcd's depend on where its data directory is. Without `--store`, the
//! memory and embedded stores are measured (and etcd, if `--etcd-endpoints` is given).
//! Each etcd run uses a fresh key prefix. A store name with `+sigv4` (e.g.
//! `--store memory+sigv4`) runs meshd with `--auth sigv4`, so that the cost of checking
//! every request's signature shows beside the same store without it.

use std::time::{Duration, Instant};

use meshd::api::{Account, Authentication};
use meshd::server::{self, ServerConfig};
use meshd::store::StoreConfig;

/// The SDK client and spec builders the tests use (they need nothing but the SDK).
#[path = "../tests/common/sdk.rs"]
#[allow(dead_code)]
mod sdk;

/// The `p`-th percentile (0–100) of sorted `latencies`, in milliseconds.
fn percentile(latencies: &[Duration], p: usize) -> f64 {
    let index = (latencies.len() * p / 100).min(latencies.len() - 1);
    latencies[index].as_secs_f64() * 1000.0
}

struct Figures {
    sequential_p50: f64,
    sequential_p99: f64,
    sequential_per_second: f64,
    /// Per writer count: (writers, update p50, update p99, writes/s).
    concurrent: Vec<(usize, f64, f64, f64)>,
}

async fn measure(
    store: StoreConfig,
    authentication: Authentication,
    creates: usize,
    writer_counts: &[usize],
    updates: usize,
) -> Figures {
    let account = Account {
        region: "us-east-1".into(),
        account_id: "111122223333".into(),
    };
    let config = ServerConfig {
        store,
        authentication,
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    let server = server::start(config).await.expect("meshd starts");
    let client = sdk::sdk_client(server.api_addr);
    client
        .create_mesh()
        .mesh_name("bench")
        .send()
        .await
        .unwrap();

    let mut latencies = Vec::with_capacity(creates);
    let started = Instant::now();
    for index in 0..creates {
        let name = format!("node-{index}");
        let sent = Instant::now();
        client
            .create_virtual_node()
            .mesh_name("bench")
            .virtual_node_name(&name)
            .spec(sdk::node_spec(8080, &format!("{name}.local"), &[]))
            .send()
            .await
            .unwrap();
        latencies.push(sent.elapsed());
    }
    let sequential_elapsed = started.elapsed();
    latencies.sort();
    let (sequential_p50, sequential_p99) = (percentile(&latencies, 50), percentile(&latencies, 99));

    let mut concurrent = Vec::new();
    for &writers in writer_counts {
        let (p50, p99, per_second) = update_concurrently(&client, creates, writers, updates).await;
        concurrent.push((writers, p50, p99, per_second));
    }
    server.shutdown().await.unwrap();
    Figures {
        sequential_p50,
        sequential_p99,
        sequential_per_second: creates as f64 / sequential_elapsed.as_secs_f64(),
        concurrent,
    }
}

/// `writers` concurrent tasks, each updating its own node `updates` times: update p50
/// and p99 (ms) and writes per second.
async fn update_concurrently(
    client: &aws_sdk_appmesh::Client,
    creates: usize,
    writers: usize,
    updates: usize,
) -> (f64, f64, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move {
                let name = format!("node-{}", writer % creates.max(1));
                let mut latencies = Vec::with_capacity(updates);
                for update in 0..updates {
                    let sent = Instant::now();
                    client
                        .update_virtual_node()
                        .mesh_name("bench")
                        .virtual_node_name(&name)
                        .spec(sdk::node_spec(
                            1 + update as i32,
                            &format!("{name}.local"),
                            &[],
                        ))
                        .send()
                        .await
                        .unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(writers * updates);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.len() as f64 / elapsed.as_secs_f64(),
    )
}

/// The command line: counts (positional: creates, writers, updates), `--writers
/// N[,N…]` (writer counts, instead of the second count), `--store NAME` (repeatable),
/// `--etcd-endpoints URL[,URL…]`.
struct Args {
    counts: Vec<usize>,
    writers: Vec<usize>,
    stores: Vec<String>,
    etcd_endpoints: Option<Vec<String>>,
}

fn parse_args() -> Args {
    let mut args = Args {
        counts: Vec::new(),
        writers: Vec::new(),
        stores: Vec::new(),
        etcd_endpoints: None,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--store" => args
                .stores
                .push(words.next().expect("--store needs a store name")),
            "--writers" => {
                let counts = words.next().expect("--writers needs counts: 1,8,32");
                args.writers = counts
                    .split(',')
                    .map(|count| count.parse().expect("writer counts are whole numbers"))
                    .collect();
            }
            "--etcd-endpoints" => {
                let endpoints = words.next().expect("--etcd-endpoints needs URLs");
                args.etcd_endpoints = Some(endpoints.split(',').map(str::to_string).collect());
            }
            count => args
                .counts
                .push(count.parse().expect("counts are whole numbers")),
        }
    }
    if args.stores.is_empty() {
        args.stores = vec!["memory".into(), "memory+sigv4".into(), "embedded".into()];
        if args.etcd_endpoints.is_some() {
            args.stores.push("etcd".into());
        }
    }
    args
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let arg = |index: usize, default: usize| args.counts.get(index).copied().unwrap_or(default);
    let (creates, updates) = (arg(0, 500).max(1), arg(2, 100).max(1));
    let writer_counts = if args.writers.is_empty() {
        vec![arg(1, 8).max(1)]
    } else {
        args.writers.clone()
    };
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for figures worth recording");
    }
    println!(
        "{creates} sequential creates; then {writer_counts:?} concurrent writers × {updates} updates each"
    );
    println!(
        "| backend | create p50 | create p99 | sequential writes/s | writers | update p50 | update p99 | concurrent writes/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let data_dir = tempfile::tempdir().expect("a temporary data directory");
    // The key pair `sdk::sdk_client` signs with, for the `+sigv4` runs.
    let credentials_file = data_dir.path().join("credentials");
    std::fs::write(
        &credentials_file,
        "[bench]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n",
    )
    .expect("the credentials file is written");
    for name in &args.stores {
        let (store_name, authentication) = match name.strip_suffix("+sigv4") {
            Some(store_name) => (
                store_name,
                Authentication::SigV4 {
                    credentials_file: credentials_file.clone(),
                },
            ),
            None => (name.as_str(), Authentication::None),
        };
        let store = match store_name {
            "memory" => StoreConfig::Memory,
            "embedded" => StoreConfig::Embedded {
                data_dir: data_dir.path().to_path_buf(),
            },
            "etcd" => StoreConfig::Etcd {
                endpoints: args
                    .etcd_endpoints
                    .clone()
                    .unwrap_or_else(|| vec!["http://127.0.0.1:2379".into()]),
                prefix: format!(
                    "/meshd-write-latency/{}-{}/",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                ),
                access: Default::default(),
            },
            other => panic!(
                "unknown store {other:?}: memory, embedded or etcd (each with or without +sigv4)"
            ),
        };
        let f = measure(store, authentication, creates, &writer_counts, updates).await;
        for (writers, p50, p99, per_second) in f.concurrent {
            println!(
                "| {name} | {:.2} ms | {:.2} ms | {:.0} | {writers} | {p50:.2} ms | {p99:.2} ms | {per_second:.0} |",
                f.sequential_p50, f.sequential_p99, f.sequential_per_second,
            );
        }
    }
}
