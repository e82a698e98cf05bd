//! meshd's Prometheus metrics: one registry for the process, typed recording functions
//! that the API, the store, the hub and the xDS server call, and the gauges worked out
//! when `/metrics` is scraped from what the server holds then (the store's revision and
//! resources, the connected streams).
//!
//! The registry is the process's (one meshd per process; in-process servers in tests
//! share it, so their counters add up).
//!
//! Label values are bounded sets (operations, status codes, kinds, xDS types, refusal
//! reasons): never a node id or a resource name. Per-proxy detail stays in the status
//! view (`GET /meshd/v1/proxies`) and the console.

mod api_operation;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::access::RefusalReason;
use crate::model::ResourceKind;
use crate::store::Store;
use crate::xds::{StreamKind, StreamRegistry};

pub use api_operation::operation;

/// How long a proxy may hold a sent configuration it has not acknowledged before it
/// counts as out of sync.
pub const OUT_OF_SYNC_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets from 100 µs to about 52 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Every metric meshd exports.
struct Metrics {
    registry: Registry,
    api_requests: Family<RequestLabels, Counter>,
    api_duration: HistogramFamily<OperationLabel>,
    store_writes: Counter,
    store_write_duration: Histogram,
    store_revision: Gauge,
    resources: Family<KindLabel, Gauge>,
    xds_streams: Family<ModeLabel, Gauge>,
    xds_pushes: Family<TypeLabel, Counter>,
    xds_push_duration: Histogram,
    xds_ack_duration: Histogram,
    xds_nacks: Family<TypeLabel, Counter>,
    xds_refused: Family<ReasonLabel, Counter>,
    xds_out_of_sync: Gauge,
    compile_passes: Counter,
    compile_duration: Histogram,
    compile_proxies: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            api_requests: Family::default(),
            api_duration: Family::new_with_constructor(latency),
            store_writes: Counter::default(),
            store_write_duration: latency(),
            store_revision: Gauge::default(),
            resources: Family::default(),
            xds_streams: Family::default(),
            xds_pushes: Family::default(),
            xds_push_duration: latency(),
            xds_ack_duration: latency(),
            xds_nacks: Family::default(),
            xds_refused: Family::default(),
            xds_out_of_sync: Gauge::default(),
            compile_passes: Counter::default(),
            compile_duration: latency(),
            compile_proxies: Counter::default(),
            registry: Registry::default(),
        };
        // Counters are registered without `_total`: the encoder appends it.
        let r = &mut registry;
        r.register(
            "meshd_api_requests",
            "App Mesh API requests, by operation and HTTP status code",
            metrics.api_requests.clone(),
        );
        r.register(
            "meshd_api_request_duration_seconds",
            "Time to answer an App Mesh API request, by operation",
            metrics.api_duration.clone(),
        );
        r.register(
            "meshd_store_writes",
            "Writes committed to the store",
            metrics.store_writes.clone(),
        );
        r.register(
            "meshd_store_write_duration_seconds",
            "Time for one committed store write (checks, commit, publication)",
            metrics.store_write_duration.clone(),
        );
        r.register(
            "meshd_store_revision",
            "The store's revision (one more for every committed write)",
            metrics.store_revision.clone(),
        );
        r.register(
            "meshd_resources",
            "Resources in the store, by kind",
            metrics.resources.clone(),
        );
        r.register(
            "meshd_xds_streams",
            "Connected xDS streams, by mode (sotw, delta)",
            metrics.xds_streams.clone(),
        );
        r.register(
            "meshd_xds_pushes",
            "xDS responses sent to proxies, by type",
            metrics.xds_pushes.clone(),
        );
        r.register(
            "meshd_xds_push_duration_seconds",
            "Time from a store change to the response carrying it being sent",
            metrics.xds_push_duration.clone(),
        );
        r.register(
            "meshd_xds_ack_duration_seconds",
            "Time from a store change to the proxy acknowledging the response carrying it",
            metrics.xds_ack_duration.clone(),
        );
        r.register(
            "meshd_xds_nacks",
            "Configurations proxies rejected, by type",
            metrics.xds_nacks.clone(),
        );
        r.register(
            "meshd_xds_refused_streams",
            "xDS streams refused, by reason",
            metrics.xds_refused.clone(),
        );
        r.register(
            "meshd_xds_proxies_out_of_sync",
            "Proxies holding a sent configuration unacknowledged for more than 30 s",
            metrics.xds_out_of_sync.clone(),
        );
        r.register(
            "meshd_compile_passes",
            "Compile passes over a store change",
            metrics.compile_passes.clone(),
        );
        r.register(
            "meshd_compile_duration_seconds",
            "Time for one compile pass (recompiling and publishing the affected proxies)",
            metrics.compile_duration.clone(),
        );
        r.register(
            "meshd_compile_proxies",
            "Proxies recompiled by compile passes",
            metrics.compile_proxies.clone(),
        );
        // Every bounded series exists from the start, at zero.
        for reason in RefusalReason::ALL {
            let _ = metrics.xds_refused.get_or_create(&ReasonLabel {
                reason: reason.label(),
            });
        }
        for kind in crate::compile::ResourceType::ALL {
            let label = TypeLabel {
                r#type: crate::xds::type_label(kind),
            };
            let _ = metrics.xds_pushes.get_or_create(&label);
            let _ = metrics.xds_nacks.get_or_create(&label);
        }
        Self {
            registry,
            ..metrics
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// An API request of `operation` answered with `code` after `took`.
pub fn api_request(operation: &'static str, code: u16, took: Duration) {
    METRICS
        .api_requests
        .get_or_create(&RequestLabels {
            operation,
            code: code.to_string(),
        })
        .inc();
    METRICS
        .api_duration
        .get_or_create(&OperationLabel { operation })
        .observe(seconds(took));
}

/// A write committed to the store, `took` from taking the writer's lock to publishing.
pub fn store_write(took: Duration) {
    METRICS.store_writes.inc();
    METRICS.store_write_duration.observe(seconds(took));
}

/// A compile pass over a store change that recompiled `proxies` proxies in `took`.
pub fn compile_pass(proxies: usize, took: Duration) {
    METRICS.compile_passes.inc();
    METRICS.compile_proxies.inc_by(proxies as u64);
    METRICS.compile_duration.observe(seconds(took));
}

/// An xDS response of type `type_label` (`cluster`, `listener`, …) sent; `since_change`
/// is how long after the store change it carries, if it carries one.
pub fn xds_push(type_label: &'static str, since_change: Option<Duration>) {
    METRICS
        .xds_pushes
        .get_or_create(&TypeLabel { r#type: type_label })
        .inc();
    if let Some(took) = since_change {
        METRICS.xds_push_duration.observe(seconds(took));
    }
}

/// A proxy acknowledged a response `since_change` after the store change it carried.
pub fn xds_ack(since_change: Duration) {
    METRICS.xds_ack_duration.observe(seconds(since_change));
}

/// A proxy rejected a configuration of type `type_label`.
pub fn xds_nack(type_label: &'static str) {
    METRICS
        .xds_nacks
        .get_or_create(&TypeLabel { r#type: type_label })
        .inc();
}

/// An xDS stream was refused for `reason`.
pub fn xds_refused(reason: RefusalReason) {
    METRICS
        .xds_refused
        .get_or_create(&ReasonLabel {
            reason: reason.label(),
        })
        .inc();
}

/// What the gauges are read from when `/metrics` is scraped.
#[derive(Clone)]
pub struct Sources {
    /// The store (revision, resources by kind).
    pub store: Arc<Store>,
    /// The connected xDS streams (by mode; out of sync).
    pub streams: Arc<StreamRegistry>,
}

impl Sources {
    /// Sets the gauges from what the server holds now.
    fn refresh(&self) {
        let snapshot = self.store.snapshot();
        METRICS.store_revision.set(snapshot.revision() as i64);
        let mut by_kind = [0i64; ResourceKind::ALL.len()];
        for resource in snapshot.iter() {
            if let Some(index) = ResourceKind::ALL
                .iter()
                .position(|kind| *kind == resource.key.kind)
            {
                by_kind[index] += 1;
            }
        }
        for (kind, count) in ResourceKind::ALL.iter().zip(by_kind) {
            METRICS
                .resources
                .get_or_create(&KindLabel {
                    kind: kind.type_name(),
                })
                .set(count);
        }
        let (mut sotw, mut delta) = (0, 0);
        for kind in self.streams.kinds() {
            match kind {
                StreamKind::Sotw => sotw += 1,
                StreamKind::Delta => delta += 1,
            }
        }
        for (mode, count) in [("sotw", sotw), ("delta", delta)] {
            METRICS
                .xds_streams
                .get_or_create(&ModeLabel { mode })
                .set(count);
        }
        METRICS
            .xds_out_of_sync
            .set(self.streams.out_of_sync(OUT_OF_SYNC_AFTER) as i64);
    }

    /// Every metric in Prometheus' text format (0.0.4), the gauges as of now.
    pub fn render(&self) -> String {
        self.refresh();
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &METRICS.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `GET /metrics` over `sources`.
pub fn routes(sources: Sources) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move {
                let text = tokio::task::spawn_blocking(move || sources.render())
                    .await
                    .unwrap_or_default();
                (
                    [(
                        CONTENT_TYPE,
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    )],
                    text,
                )
                    .into_response()
            }
        }),
    )
}

/// Middleware counting and timing App Mesh API requests by operation and status code
/// (refused ones too: it goes outside the signature check). Requests that are not App
/// Mesh operations (`/metrics`, the status views) are not counted.
pub async fn count_api_requests(request: Request, next: Next) -> Response {
    let operation = operation(request.method(), request.uri().path());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(operation) = operation {
        api_request(operation, response.status().as_u16(), started.elapsed());
    }
    response
}
