//! The fan-out load generator behind `examples/fanout` (and `tests/fanout_tool.rs`,
//! which includes this file with `#[path]`): starts the meshd binary in its own process,
//! builds a mesh through the App Mesh API, opens N ADS streams that behave like Envoy
//! (CDS and LDS wildcard, RDS by name, every response ACKed), makes K route-weight
//! changes that reach every proxy, and measures change → receipt and change → ACK.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_appmesh::Client;
use aws_sdk_appmesh::types::RouteSpec;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// The SDK client and spec builders the tests use (they need nothing but the SDK).
#[path = "../../tests/common/sdk.rs"]
#[allow(dead_code)]
mod sdk;

const MESH: &str = "fanout";
const SERVICE: &str = "svc.fanout.local";
const ROUTER: &str = "router";
const ROUTE: &str = "route";
/// Every node listens on this port and the router too, so each proxy has the route
/// configurations `rds_ingress_http_9080` and `rds_egress_http_9080`.
const PORT: i32 = 9080;
const ROUTE_NAMES: [&str; 2] = ["rds_egress_http_9080", "rds_ingress_http_9080"];
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// ADS streams per HTTP/2 connection.
const STREAMS_PER_CONNECTION: usize = 100;
/// How long one change may take to reach every proxy before it counts as missing.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Node `node-0`'s route weight is the change's marker: 1 initially, `1 + k` after change
/// `k` (node-1 keeps 100), so at most this many changes.
pub const MAX_CHANGES: usize = 98;

/// Which ADS variant the streams speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// State of the world (`StreamAggregatedResources`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`).
    Delta,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Args {
    /// ADS streams (proxies).
    pub proxies: usize,
    /// Virtual nodes the proxies' ids are spread over.
    pub nodes: usize,
    /// Route-weight changes to measure.
    pub changes: usize,
    /// SotW or delta.
    pub mode: Mode,
    /// The meshd binary.
    pub meshd: PathBuf,
    /// meshd's `--debounce-ms`, if not its default.
    pub debounce_ms: Option<u64>,
    /// Also measure the baseline with this `xds_replay` binary: the same response bytes
    /// written to N streams by a minimal tonic ADS server, in its own process, with no
    /// control plane behind it.
    pub baseline: Option<PathBuf>,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Report {
    /// The run's parameters.
    pub mode: Mode,
    /// ADS streams.
    pub proxies: usize,
    /// Virtual nodes.
    pub nodes: usize,
    /// Changes made.
    pub changes: usize,
    /// Change (API response) → receipt of the new RDS version, sorted, in ms, one per
    /// proxy and change that arrived.
    pub receipt_ms: Vec<f64>,
    /// Change → its ACK handed to the stream, sorted, in ms.
    pub ack_ms: Vec<f64>,
    /// (proxy, change) pairs that never arrived within the timeout.
    pub missing: usize,
    /// Streams that ended with an error before the run was over.
    pub failed_streams: usize,
    /// Responses' encoded bytes during the change phase per (proxy, change).
    pub bytes_per_push: f64,
    /// meshd's resident memory with every stream open, MiB.
    pub server_rss_mib: f64,
    /// (RSS with N streams − RSS before any stream) / N, KiB.
    pub rss_per_proxy_kib: f64,
    /// meshd's user + system CPU time over the whole run, seconds.
    pub server_cpu_s: f64,
    /// Time from opening the first stream to every proxy holding its first route configuration.
    pub connect_s: f64,
    /// Per proxy, from opening the first stream (all open at once) to holding its first
    /// route configuration, sorted, in seconds.
    pub first_config_s: Vec<f64>,
    /// The baseline's change → receipt p99 (ms), if measured.
    pub baseline_p99_ms: Option<f64>,
}

/// The `p`-th percentile (0–100) of sorted `values` (0 if empty).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() as f64 * p / 100.0) as usize).min(values.len() - 1);
    values[index]
}

impl Report {
    /// The result line, in the form issue 6 fixes.
    pub fn line(&self) -> String {
        let r = &self.receipt_ms;
        format!(
            "fanout mode={} proxies={} nodes={} changes={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} bytes_per_push={:.0} server_rss_mib={:.1} rss_per_proxy_kib={:.1} server_cpu_s={:.2}",
            self.mode.label(),
            self.proxies,
            self.nodes,
            self.changes,
            percentile(r, 50.0),
            percentile(r, 90.0),
            percentile(r, 99.0),
            r.last().copied().unwrap_or(0.0),
            self.bytes_per_push,
            self.server_rss_mib,
            self.rss_per_proxy_kib,
            self.server_cpu_s,
        ) + &self
            .baseline_p99_ms
            .map(|baseline| {
                format!(
                    " baseline_p99_ms={baseline:.2} ratio={:.2}",
                    percentile(r, 99.0) / baseline.max(0.001)
                )
            })
            .unwrap_or_default()
    }

    /// The cold start: every stream opened at once, and how long until each proxy held its
    /// first configuration (printed before the result line).
    pub fn cold_start_line(&self) -> String {
        let f = &self.first_config_s;
        format!(
            "cold_start proxies={} configured={} all_configured_s={:.2} p50_s={:.2} p99_s={:.2} max_s={:.2}",
            self.proxies,
            f.len(),
            self.connect_s,
            percentile(f, 50.0),
            percentile(f, 99.0),
            f.last().copied().unwrap_or(0.0),
        )
    }

    /// A line with the ACK percentiles and the connect time (printed before the result line).
    pub fn detail_line(&self) -> String {
        let a = &self.ack_ms;
        format!(
            "detail ack_p50_ms={:.2} ack_p99_ms={:.2} ack_max_ms={:.2} missing={} failed_streams={} connect_s={:.2}",
            percentile(a, 50.0),
            percentile(a, 99.0),
            a.last().copied().unwrap_or(0.0),
            self.missing,
            self.failed_streams,
            self.connect_s,
        )
    }
}

/// The meshd child process, stopped when dropped: SIGTERM first (meshd, or a profiler
/// wrapped around it with `--meshd`, ends cleanly), SIGKILL after 5 s.
struct Meshd {
    child: Child,
}

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct ports that were free a moment ago (both are bound at once, so the kernel
/// cannot hand out the same port twice).
fn two_free_ports() -> std::io::Result<(SocketAddr, SocketAddr)> {
    let first = TcpListener::bind("127.0.0.1:0")?;
    let second = TcpListener::bind("127.0.0.1:0")?;
    Ok((first.local_addr()?, second.local_addr()?))
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    // Fields after the command: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// The route: `node-0` with weight `marker`, `node-1` with 100.
fn route_spec(marker: i32) -> RouteSpec {
    sdk::http_route_spec("/", &[("node-0", marker), ("node-1", 100)], None)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The mesh: router `router` (http 9080) providing `svc.fanout.local`, M nodes
/// `node-<i>` (http 9080) each with that service as backend, and last the route.
async fn create_mesh(client: &Client, nodes: usize) -> Result<(), BoxError> {
    client.create_mesh().mesh_name(MESH).send().await?;
    client
        .create_virtual_router()
        .mesh_name(MESH)
        .virtual_router_name(ROUTER)
        .spec(sdk::router_spec(&[PORT]))
        .send()
        .await?;
    client
        .create_virtual_service()
        .mesh_name(MESH)
        .virtual_service_name(SERVICE)
        .spec(sdk::router_provided(ROUTER))
        .send()
        .await?;
    for index in 0..nodes {
        let name = format!("node-{index}");
        let spec = sdk::node_spec(PORT, &format!("{name}.fanout.local"), &[SERVICE]);
        client
            .create_virtual_node()
            .mesh_name(MESH)
            .virtual_node_name(&name)
            .spec(spec)
            .send()
            .await?;
    }
    client
        .create_route()
        .mesh_name(MESH)
        .virtual_router_name(ROUTER)
        .route_name(ROUTE)
        .spec(route_spec(1))
        .send()
        .await?;
    Ok(())
}

/// A new route version seen by one stream.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    marker: u32,
    received: Instant,
    acked: Instant,
}

/// What every stream reports into.
struct Shared {
    /// Per marker, how many streams have received it.
    counts: Vec<AtomicUsize>,
    /// Encoded bytes of every response received.
    bytes: AtomicU64,
    /// Streams that ended with an error.
    failed: AtomicUsize,
    /// Set when the run is over and meshd is being stopped (streams ending is expected).
    stopping: AtomicBool,
    /// Stream 0's route responses by marker: the baseline replays these very bytes.
    captured: Mutex<HashMap<u32, Captured>>,
}

/// A route response as meshd sent it.
#[derive(Debug, Clone)]
enum Captured {
    Sotw(DiscoveryResponse),
    Delta(DeltaDiscoveryResponse),
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Shared {
            counts: (0..=MAX_CHANGES + 2).map(|_| AtomicUsize::new(0)).collect(),
            bytes: AtomicU64::new(0),
            failed: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            captured: Mutex::new(HashMap::new()),
        })
    }
}

/// The smallest weight in the weighted clusters of the route configurations in
/// `resources` (node-0's weight: the change marker), if any.
fn marker<'a>(resources: impl Iterator<Item = &'a [u8]>) -> Option<u32> {
    let mut found: Option<u32> = None;
    for bytes in resources {
        let Ok(config) = RouteConfiguration::decode(bytes) else {
            continue;
        };
        for host in &config.virtual_hosts {
            for route in &host.routes {
                if let Some(Action::Route(action)) = &route.action
                    && let Some(ClusterSpecifier::WeightedClusters(weighted)) =
                        &action.cluster_specifier
                {
                    for cluster in &weighted.clusters {
                        if let Some(weight) = &cluster.weight {
                            found = Some(found.map_or(weight.value, |f| f.min(weight.value)));
                        }
                    }
                }
            }
        }
    }
    found
}

fn node(index: usize, nodes: usize) -> Node {
    Node {
        id: format!("mesh/{MESH}/virtualNode/node-{}", index % nodes),
        cluster: format!("proxy-{index}"),
        ..Default::default()
    }
}

/// What both kinds of stream do with each response: count its bytes, keep stream 0's
/// route responses for the baseline to replay, and log each new route version (marker)
/// with when it was received and ACKed.
struct Tracker {
    index: usize,
    shared: Arc<Shared>,
    log: Arc<Mutex<Vec<Receipt>>>,
    last_marker: Option<u32>,
}

impl Tracker {
    fn new(index: usize, shared: Arc<Shared>, log: Arc<Mutex<Vec<Receipt>>>) -> Self {
        Tracker {
            index,
            shared,
            log,
            last_marker: None,
        }
    }

    /// A response of `encoded_len` bytes arrived, carrying route marker `seen` if any.
    fn on_response(
        &self,
        encoded_len: usize,
        seen: Option<u32>,
        capture: impl FnOnce() -> Captured,
    ) {
        self.shared
            .bytes
            .fetch_add(encoded_len as u64, Ordering::Relaxed);
        if self.index == 0
            && let Some(seen) = seen
        {
            self.shared
                .captured
                .lock()
                .entry(seen)
                .or_insert_with(capture);
        }
    }

    /// The response received at `received`, with marker `seen`, has just been ACKed.
    fn on_acked(&mut self, seen: Option<u32>, received: Instant) {
        let acked = Instant::now();
        if let Some(seen) = seen
            && self.last_marker != Some(seen)
        {
            self.last_marker = Some(seen);
            self.log.lock().push(Receipt {
                marker: seen,
                received,
                acked,
            });
            if let Some(count) = self.shared.counts.get(seen as usize) {
                count.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// One SotW stream until the server ends it: CDS and LDS wildcard, RDS by name, every
/// response ACKed.
async fn sotw_stream(
    channel: Channel,
    index: usize,
    nodes: usize,
    shared: Arc<Shared>,
    log: Arc<Mutex<Vec<Receipt>>>,
) -> Result<(), BoxError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let names = |type_url: &str| -> Vec<String> {
        if type_url == RDS {
            ROUTE_NAMES.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        }
    };
    for (i, type_url) in [CDS, LDS, RDS].into_iter().enumerate() {
        tx.send(DiscoveryRequest {
            node: (i == 0).then(|| node(index, nodes)),
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
    let mut tracker = Tracker::new(index, shared, log);
    while let Some(response) = responses.message().await? {
        let received = Instant::now();
        let seen = (response.type_url == RDS)
            .then(|| marker(response.resources.iter().map(|any| any.value.as_slice())))
            .flatten();
        tracker.on_response(response.encoded_len(), seen, || {
            Captured::Sotw(response.clone())
        });
        tx.send(DiscoveryRequest {
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            resource_names: names(&response.type_url),
            type_url: response.type_url,
            ..Default::default()
        })?;
        tracker.on_acked(seen, received);
    }
    Ok(())
}

/// One delta stream until the server ends it.
async fn delta_stream(
    channel: Channel,
    index: usize,
    nodes: usize,
    shared: Arc<Shared>,
    log: Arc<Mutex<Vec<Receipt>>>,
) -> Result<(), BoxError> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, type_url) in [CDS, LDS, RDS].into_iter().enumerate() {
        tx.send(DeltaDiscoveryRequest {
            node: (i == 0).then(|| node(index, nodes)),
            type_url: type_url.to_string(),
            resource_names_subscribe: if type_url == RDS {
                ROUTE_NAMES.iter().map(|s| s.to_string()).collect()
            } else {
                Vec::new()
            },
            ..Default::default()
        })?;
    }
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut responses = client
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut tracker = Tracker::new(index, shared, log);
    while let Some(response) = responses.message().await? {
        let received = Instant::now();
        let seen = (response.type_url == RDS)
            .then(|| {
                marker(
                    response
                        .resources
                        .iter()
                        .filter_map(|r| r.resource.as_ref())
                        .map(|any| any.value.as_slice()),
                )
            })
            .flatten();
        tracker.on_response(response.encoded_len(), seen, || {
            Captured::Delta(response.clone())
        });
        tx.send(DeltaDiscoveryRequest {
            type_url: response.type_url,
            response_nonce: response.nonce,
            ..Default::default()
        })?;
        tracker.on_acked(seen, received);
    }
    Ok(())
}

/// Waits until `count` reaches `target` or `timeout` passes; whether it did.
async fn wait_for(count: &AtomicUsize, target: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while count.load(Ordering::Acquire) < target {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

async fn wait_for_api(client: &Client) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.list_meshes().send().await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() > deadline => {
                return Err(format!("meshd's API did not come up: {err}").into());
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn connect(xds: SocketAddr) -> Result<Channel, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Endpoint::from_shared(format!("http://{xds}"))?
            .tcp_nodelay(true)
            .connect()
            .await
        {
            Ok(channel) => return Ok(channel),
            Err(err) if Instant::now() > deadline => return Err(err.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs the whole benchmark once.
pub async fn run(args: Args) -> Result<Report, BoxError> {
    if args.nodes < 2 {
        return Err("--nodes must be at least 2 (the route splits node-0 and node-1)".into());
    }
    if args.changes > MAX_CHANGES {
        return Err(format!("--changes is at most {MAX_CHANGES}").into());
    }
    let (api, xds) = two_free_ports()?;
    let mut command = Command::new(&args.meshd);
    command
        .args(["serve", "--store", "memory"])
        .args([
            "--api-addr",
            &api.to_string(),
            "--xds-addr",
            &xds.to_string(),
            "--console-addr",
            "127.0.0.1:0",
        ])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(ms) = args.debounce_ms {
        command.args(["--debounce-ms", &ms.to_string()]);
    }
    let meshd = Meshd {
        child: command
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", args.meshd.display()))?,
    };
    let pid = meshd.child.id();

    let client = sdk::sdk_client(api);
    wait_for_api(&client).await?;
    create_mesh(&client, args.nodes).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib(pid);

    let (shared, logs, tasks, started) = open_fleet(xds, &args).await?;
    let connect_s = started.elapsed_to_all;
    let first_config_s = first_configurations(&logs, started.at);
    // Let the initial pushes and ACKs settle before measuring memory and changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_kib(pid);
    let bytes_before = shared.bytes.load(Ordering::Relaxed);

    let mut changed_at = Vec::with_capacity(args.changes);
    let mut missing = 0;
    for change in 1..=args.changes {
        let marker = change + 1;
        client
            .update_route()
            .mesh_name(MESH)
            .virtual_router_name(ROUTER)
            .route_name(ROUTE)
            .spec(route_spec(marker as i32))
            .send()
            .await?;
        changed_at.push((marker as u32, Instant::now()));
        if !wait_for(&shared.counts[marker], args.proxies, CHANGE_TIMEOUT).await {
            missing += args.proxies - shared.counts[marker].load(Ordering::Acquire);
        }
    }
    // Late responses (other types pushed with the last change) count towards the bytes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bytes = shared.bytes.load(Ordering::Relaxed) - bytes_before;
    let server_cpu_s = cpu_seconds(pid);
    let failed_streams = shared.failed.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Release);
    for task in &tasks {
        task.abort();
    }
    drop(meshd);

    let (receipt_ms, ack_ms) = latencies(&logs, &changed_at);
    let baseline_p99_ms = match &args.baseline {
        Some(replay) => {
            let captured = std::mem::take(&mut *shared.captured.lock());
            Some(baseline::run(&args, replay, captured).await?)
        }
        None => None,
    };
    let pushes = (args.proxies * args.changes).max(1);
    Ok(Report {
        mode: args.mode,
        proxies: args.proxies,
        nodes: args.nodes,
        changes: args.changes,
        receipt_ms,
        ack_ms,
        missing,
        failed_streams,
        bytes_per_push: bytes as f64 / pushes as f64,
        server_rss_mib: rss_connected / 1024.0,
        rss_per_proxy_kib: (rss_connected - rss_before) / args.proxies.max(1) as f64,
        server_cpu_s,
        connect_s,
        first_config_s,
        baseline_p99_ms,
    })
}

type Logs = Vec<Arc<Mutex<Vec<Receipt>>>>;
type Fleet = (Arc<Shared>, Logs, Vec<tokio::task::JoinHandle<()>>, Opened);

/// When the fleet's streams were opened, and how long until all held a configuration.
struct Opened {
    at: Instant,
    elapsed_to_all: f64,
}

/// Per proxy, seconds from `opened` to its first route configuration, sorted.
fn first_configurations(logs: &Logs, opened: Instant) -> Vec<f64> {
    let mut seconds: Vec<f64> = logs
        .iter()
        .filter_map(|log| {
            let log = log.lock();
            log.iter()
                .find(|r| r.marker == 1)
                .map(|r| r.received.saturating_duration_since(opened).as_secs_f64())
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    seconds
}

/// Opens N streams to the ADS server at `xds` (one HTTP/2 connection per 100 streams) and
/// waits until each holds its first route configuration; also returns how long that took.
async fn open_fleet(xds: SocketAddr, args: &Args) -> Result<Fleet, BoxError> {
    let shared = Shared::new();
    let connections = args.proxies.div_ceil(STREAMS_PER_CONNECTION).max(1);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(connect(xds).await?);
    }
    let logs: Logs = (0..args.proxies)
        .map(|_| Arc::new(Mutex::new(Vec::with_capacity(args.changes + 1))))
        .collect();
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(args.proxies);
    for (index, log) in logs.iter().enumerate() {
        let channel = channels[index / STREAMS_PER_CONNECTION].clone();
        let (shared, log, nodes, mode) = (shared.clone(), log.clone(), args.nodes, args.mode);
        tasks.push(tokio::spawn(async move {
            let result = match mode {
                Mode::Sotw => sotw_stream(channel, index, nodes, shared.clone(), log).await,
                Mode::Delta => delta_stream(channel, index, nodes, shared.clone(), log).await,
            };
            // Count the failure; report the first one only.
            if let Err(err) = result
                && !shared.stopping.load(Ordering::Acquire)
                && shared.failed.fetch_add(1, Ordering::Relaxed) == 0
            {
                eprintln!("stream {index} failed: {err}");
            }
        }));
    }
    if !wait_for(&shared.counts[1], args.proxies, CHANGE_TIMEOUT).await {
        return Err(format!(
            "only {} of {} proxies got their first configuration ({} streams failed)",
            shared.counts[1].load(Ordering::Acquire),
            args.proxies,
            shared.failed.load(Ordering::Relaxed)
        )
        .into());
    }
    let opened = Opened {
        at: connect_started,
        elapsed_to_all: connect_started.elapsed().as_secs_f64(),
    };
    Ok((shared, logs, tasks, opened))
}

/// Change → receipt and change → ACK in ms, each sorted, for every (proxy, change) that
/// arrived; `changed_at` holds each change's marker and when it was made.
fn latencies(logs: &Logs, changed_at: &[(u32, Instant)]) -> (Vec<f64>, Vec<f64>) {
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let (mut receipt_ms, mut ack_ms) = (Vec::new(), Vec::new());
    for log in logs {
        let log = log.lock();
        for &(marker, at) in changed_at {
            if let Some(receipt) = log.iter().find(|r| r.marker == marker) {
                receipt_ms.push(ms(at, receipt.received));
                ack_ms.push(ms(at, receipt.acked));
            }
        }
    }
    receipt_ms.sort_by(f64::total_cmp);
    ack_ms.sort_by(f64::total_cmp);
    (receipt_ms, ack_ms)
}

/// The byte-copy limit: meshd's own route responses (captured by stream 0, the same
/// bytes) written to every stream by `xds_replay`, a minimal tonic ADS server in its own
/// process (as meshd is) with no control plane behind it.
mod baseline {
    use super::*;

    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    /// The `xds_replay` child process, killed when dropped.
    struct Replay {
        child: tokio::process::Child,
        stdin: tokio::process::ChildStdin,
        stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    }

    impl Replay {
        /// Starts `binary` and returns it with the address it serves ADS on.
        async fn start(binary: &std::path::Path) -> Result<(Replay, SocketAddr), BoxError> {
            let mut child = tokio::process::Command::new(binary)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let line = lines
                .next_line()
                .await?
                .ok_or("xds_replay exited before listening")?;
            let address = line
                .strip_prefix("listening ")
                .ok_or_else(|| format!("xds_replay said {line:?}"))?
                .parse()?;
            let replay = Replay {
                child,
                stdin,
                stdout: lines,
            };
            Ok((replay, address))
        }

        /// Sends one command and waits until it is carried out.
        async fn command(&mut self, line: String) -> Result<(), BoxError> {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.write_all(b"\n").await?;
            self.stdin.flush().await?;
            match self.stdout.next_line().await? {
                Some(answer) if answer == "ok" => Ok(()),
                answer => Err(format!("xds_replay answered {answer:?} to {line:.40}").into()),
            }
        }
    }

    impl Drop for Replay {
        fn drop(&mut self) {
            let _ = self.child.start_kill();
        }
    }

    /// Runs the same N streams and K changes against `xds_replay`; its p99 (ms).
    pub async fn run(
        args: &Args,
        binary: &std::path::Path,
        captured: HashMap<u32, Captured>,
    ) -> Result<f64, BoxError> {
        let (mut replay, address) = Replay::start(binary).await?;
        let mut markers: Vec<_> = captured.keys().copied().collect();
        markers.sort_unstable();
        for marker in markers {
            let bytes = match &captured[&marker] {
                Captured::Sotw(response) => response.encode_to_vec(),
                Captured::Delta(response) => response.encode_to_vec(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            replay.command(format!("load {marker} {encoded}")).await?;
        }
        if !captured.contains_key(&1) {
            return Err("no first route response from meshd to replay".into());
        }
        replay.command("initial 1".into()).await?;
        let (shared, logs, tasks, _) = open_fleet(address, args).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut changed_at = Vec::with_capacity(args.changes);
        for change in 1..=args.changes {
            let marker = change as u32 + 1;
            if !captured.contains_key(&marker) {
                return Err(format!("no route response from meshd for change {marker}").into());
            }
            let at = Instant::now();
            replay.command(format!("push {marker}")).await?;
            changed_at.push((marker, at));
            wait_for(
                &shared.counts[marker as usize],
                args.proxies,
                CHANGE_TIMEOUT,
            )
            .await;
        }
        shared.stopping.store(true, Ordering::Release);
        for task in &tasks {
            task.abort();
        }
        drop(replay);
        let (receipt_ms, _) = latencies(&logs, &changed_at);
        if receipt_ms.len() < args.proxies * args.changes {
            return Err("the baseline did not reach every proxy".into());
        }
        Ok(percentile(&receipt_ms, 99.0))
    }
}
