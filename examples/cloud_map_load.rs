//! Cloud Map endpoint benchmark (issue 13): how fast instances registered in meshd's own
//! Cloud Map registry reach N proxies connected over ADS (SotW, EDS by name, every
//! response ACKed, as Envoy does).
//!
//! ```sh
//! cargo build --release --bin meshd --example cloud_map_load
//! target/release/examples/cloud_map_load --proxies 1000 --instances 1000 --rate 100 --seconds 10
//! ```
//!
//! meshd runs as its own process (`target/<profile>/meshd serve --store memory`, or
//! `--meshd PATH`); the proxies are streams of this process, spread over `--nodes`
//! virtual nodes that all call the virtual service of node `api`, whose service
//! discovery is Cloud Map service `api.bench.local`. Two phases, each printing one line
//! with its figure beside its baseline, measured in the same run:
//!
//! - `churn`: `--rate` endpoint changes per second for `--seconds` (each re-registers one
//!   of 10 instances with a new port), every proxy connected; `push_p99_ms` is the 99th
//!   percentile over (change, proxy) of change (API answer) → receipt of an assignment
//!   holding it. Baseline: `api_p99_ms`, the p99 of the RegisterInstance calls themselves.
//! - `burst`: `--instances` more instances registered at once (32 concurrent calls);
//!   `all_hold_ms` is the time from the first call until every proxy holds every
//!   instance. Baseline: `register_ms`, the time until the last call was answered.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MESH: &str = "bench";
const CLUSTER: &str = "cds_egress_bench_api_http_8080";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const STREAMS_PER_CONNECTION: usize = 100;
/// The instances the churn phase re-registers, round robin.
const CHURNED: usize = 10;
/// Ports of churn change `k`: `CHURN_PORT + k`; burst instances listen on 8080.
const CHURN_PORT: u32 = 20_000;

/// Cloud Map endpoint benchmark for meshd.
#[derive(Debug, Parser)]
struct Cli {
    /// ADS streams (proxies).
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// Client virtual nodes the proxies are spread over.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Instances registered at once in the burst phase (at most 9,990).
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// Endpoint changes per second in the churn phase.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Length of the churn phase (at most 45,000 changes in all).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The meshd binary (default: `meshd` beside this example's directory).
    #[arg(long)]
    meshd: Option<PathBuf>,
}

/// What one stream saw of the cluster's assignment: when, how many endpoints, the
/// highest port.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    endpoints: usize,
    max_port: u32,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// The meshd child process, killed when dropped.
struct Meshd(Child);

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// What the assignment in `bytes` holds.
fn seen(bytes: &[u8], at: Instant) -> Option<Seen> {
    let assignment = ClusterLoadAssignment::decode(bytes).ok()?;
    let mut endpoints = 0;
    let mut max_port = 0;
    for locality in &assignment.endpoints {
        for lb in &locality.lb_endpoints {
            endpoints += 1;
            let port = match &lb.host_identifier {
                Some(HostIdentifier::Endpoint(endpoint)) => endpoint
                    .address
                    .as_ref()
                    .and_then(|a| a.address.as_ref())
                    .and_then(|a| match a {
                        Address::SocketAddress(s) => s.port_specifier.as_ref(),
                        _ => None,
                    })
                    .and_then(|port| match port {
                        PortSpecifier::PortValue(p) => Some(*p),
                        PortSpecifier::NamedPort(_) => None,
                    }),
                _ => None,
            };
            max_port = max_port.max(port.unwrap_or(0));
        }
    }
    Some(Seen {
        at,
        endpoints,
        max_port,
    })
}

/// One SotW stream as Envoy's: CDS wildcard and the cluster's EDS, every response ACKed.
async fn stream(channel: Channel, index: usize, nodes: usize, log: Log) -> Result<(), BoxError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let names = |type_url: &str| {
        if type_url == EDS {
            vec![CLUSTER.to_string()]
        } else {
            Vec::new()
        }
    };
    for (i, type_url) in [CDS, EDS].into_iter().enumerate() {
        tx.send(DiscoveryRequest {
            node: (i == 0).then(|| Node {
                id: format!("mesh/{MESH}/virtualNode/client-{}", index % nodes),
                cluster: format!("client-{index}"),
                ..Default::default()
            }),
            type_url: type_url.to_string(),
            resource_names: names(type_url),
            ..Default::default()
        })?;
    }
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut responses = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(response) = responses.message().await? {
        let at = Instant::now();
        if response.type_url == EDS
            && let Some(seen) = response
                .resources
                .first()
                .and_then(|any| seen(&any.value, at))
        {
            log.lock().push(seen);
        }
        tx.send(DiscoveryRequest {
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: names(&response.type_url),
            type_url: response.type_url,
            ..Default::default()
        })?;
    }
    Ok(())
}

/// Calls a Cloud Map operation of meshd's registry.
async fn cloud_map(
    http: &reqwest::Client,
    api: SocketAddr,
    operation: &str,
    body: Value,
) -> Result<Value, BoxError> {
    let response = http
        .post(format!("http://{api}/"))
        .header(
            "x-amz-target",
            format!("Route53AutoNaming_v20170314.{operation}"),
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    if !status.is_success() {
        return Err(format!("{operation}: {status} {answer}").into());
    }
    Ok(answer)
}

/// Calls an App Mesh operation (`PUT path` with `body`).
async fn appmesh(
    http: &reqwest::Client,
    api: SocketAddr,
    path: &str,
    body: Value,
) -> Result<(), BoxError> {
    let response = http
        .put(format!("http://{api}/v20190125/meshes{path}"))
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("PUT {path}: {}", response.text().await?).into());
    }
    Ok(())
}

/// The mesh: node `api` (Cloud Map `api.bench.local`) providing `api.bench`, and
/// `client-0..nodes` calling it. The namespace and service in meshd's registry.
/// Answers the service id.
async fn set_up(http: &reqwest::Client, api: SocketAddr, nodes: usize) -> Result<String, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("http://{api}/v20190125/meshes"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("meshd's API did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cloud_map(
        http,
        api,
        "CreateHttpNamespace",
        json!({"Name": "bench.local"}),
    )
    .await?;
    let namespaces = cloud_map(http, api, "ListNamespaces", json!({})).await?;
    let namespace = namespaces["Namespaces"][0]["Id"].clone();
    let service = cloud_map(
        http,
        api,
        "CreateService",
        json!({"Name": "api", "NamespaceId": namespace}),
    )
    .await?;
    let service_id = service["Service"]["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    appmesh(http, api, "", json!({"meshName": MESH})).await?;
    appmesh(
        http,
        api,
        &format!("/{MESH}/virtualNodes"),
        json!({"virtualNodeName": "api", "spec": {
            "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
            "serviceDiscovery": {"awsCloudMap": {"namespaceName": "bench.local", "serviceName": "api"}},
        }}),
    )
    .await?;
    appmesh(
        http,
        api,
        &format!("/{MESH}/virtualServices"),
        json!({"virtualServiceName": "api.bench", "spec": {"provider": {"virtualNode": {"virtualNodeName": "api"}}}}),
    )
    .await?;
    for index in 0..nodes {
        appmesh(
            http,
            api,
            &format!("/{MESH}/virtualNodes"),
            json!({"virtualNodeName": format!("client-{index}"), "spec": {
                "backends": [{"virtualService": {"virtualServiceName": "api.bench"}}],
            }}),
        )
        .await?;
    }
    Ok(service_id)
}

async fn register(
    http: &reqwest::Client,
    api: SocketAddr,
    service: &str,
    id: &str,
    ip: &str,
    port: u32,
) -> Result<(), BoxError> {
    cloud_map(
        http,
        api,
        "RegisterInstance",
        json!({"ServiceId": service, "InstanceId": id, "Attributes": {
            "AWS_INSTANCE_IPV4": ip, "AWS_INSTANCE_PORT": port.to_string(),
        }}),
    )
    .await
    .map(|_| ())
}

/// Waits until every log's latest entry satisfies `done`; when that happened (the
/// latest of the first such entries), or `None` after `timeout`.
async fn all_reach(
    logs: &[Log],
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let firsts: Vec<Option<Instant>> = logs
            .iter()
            .map(|log| log.lock().iter().find(|s| done(s)).map(|s| s.at))
            .collect();
        if firsts.iter().all(Option::is_some) {
            return firsts.into_iter().flatten().max();
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    if cli.instances + CHURNED > 10_000 || cli.rate * cli.seconds > 45_000 {
        return Err("--instances is at most 9,990 and --rate × --seconds at most 45,000".into());
    }
    let meshd_path = match cli.meshd {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .and_then(|examples| examples.parent())
            .map(|profile| profile.join("meshd"))
            .ok_or("no target directory")?,
    };
    let (api, xds) = (free_addr()?, free_addr()?);
    let meshd = Meshd(
        Command::new(&meshd_path)
            .args([
                "serve",
                "--store",
                "memory",
                "--console-addr",
                "127.0.0.1:0",
            ])
            .args([
                "--api-addr",
                &api.to_string(),
                "--xds-addr",
                &xds.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|err| {
                format!(
                    "cannot start {} ({err}); build it: cargo build --release --bin meshd",
                    meshd_path.display()
                )
            })?,
    );
    let http = reqwest::Client::new();
    let service = set_up(&http, api, cli.nodes).await?;
    for i in 0..CHURNED {
        register(
            &http,
            api,
            &service,
            &format!("churn-{i}"),
            &format!("10.1.0.{}", i + 1),
            CHURN_PORT,
        )
        .await?;
    }

    let mut logs = Vec::new();
    let mut channel = None;
    for index in 0..cli.proxies {
        if index % STREAMS_PER_CONNECTION == 0 {
            channel = Some(
                Endpoint::from_shared(format!("http://{xds}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?,
            );
        }
        let log: Log = Arc::default();
        logs.push(log.clone());
        let channel = channel.clone().expect("connected");
        let nodes = cli.nodes;
        tokio::spawn(async move {
            if let Err(err) = stream(channel, index, nodes, log).await {
                eprintln!("stream {index} ended: {err}");
            }
        });
    }
    all_reach(&logs, Duration::from_secs(120), |s| s.endpoints == CHURNED)
        .await
        .ok_or("not every proxy got the first assignment within 2 minutes")?;

    // Churn: change k re-registers instance k mod 10 with port CHURN_PORT + k.
    let changes = (cli.rate * cli.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / cli.rate as f64);
    let started = Instant::now();
    let mut answered = Vec::with_capacity(changes);
    let mut api_ms = Vec::with_capacity(changes);
    for k in 1..=changes {
        let due = started + interval * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let before = Instant::now();
        let i = k % CHURNED;
        register(
            &http,
            api,
            &service,
            &format!("churn-{i}"),
            &format!("10.1.0.{}", i + 1),
            CHURN_PORT + k as u32,
        )
        .await?;
        let at = Instant::now();
        api_ms.push((at - before).as_secs_f64() * 1e3);
        answered.push((CHURN_PORT + k as u32, at));
    }
    let achieved_rate = changes as f64 / started.elapsed().as_secs_f64();
    let last_port = CHURN_PORT + changes as u32;
    all_reach(&logs, Duration::from_secs(60), |s| s.max_port >= last_port)
        .await
        .ok_or("not every proxy got the last change within a minute")?;
    let mut push_ms = Vec::with_capacity(changes * logs.len());
    for log in &logs {
        let log = log.lock();
        for (port, at) in &answered {
            if let Some(seen) = log.iter().find(|s| s.max_port >= *port) {
                push_ms.push(seen.at.saturating_duration_since(*at).as_secs_f64() * 1e3);
            }
        }
    }
    push_ms.sort_by(f64::total_cmp);
    api_ms.sort_by(f64::total_cmp);
    println!(
        "churn proxies={} nodes={} changes={changes} rate_per_s={achieved_rate:.0} push_p50_ms={:.1} push_p99_ms={:.1} push_max_ms={:.1} api_p50_ms={:.1} api_p99_ms={:.1}",
        cli.proxies,
        cli.nodes,
        percentile(&push_ms, 50.0),
        percentile(&push_ms, 99.0),
        push_ms.last().copied().unwrap_or(0.0),
        percentile(&api_ms, 50.0),
        percentile(&api_ms, 99.0),
    );

    // Burst: every instance registered at once, 32 calls in flight.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, service, next) = (http.clone(), service.clone(), next.clone());
        let instances = cli.instances;
        writers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= instances {
                    return Ok::<(), BoxError>(());
                }
                let ip = format!("10.2.{}.{}", i / 250, i % 250 + 1);
                register(&http, api, &service, &format!("burst-{i}"), &ip, 8080).await?;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    let register_ms = started.elapsed().as_secs_f64() * 1e3;
    let total = cli.instances + CHURNED;
    let held = all_reach(&logs, Duration::from_secs(120), |s| s.endpoints == total)
        .await
        .ok_or("not every proxy got every instance within 2 minutes")?;
    println!(
        "burst proxies={} instances={} all_hold_ms={:.0} register_ms={register_ms:.0}",
        cli.proxies,
        cli.instances,
        (held - started).as_secs_f64() * 1e3,
    );
    drop(meshd);
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for figures worth recording");
    }
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloud_map_load: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
