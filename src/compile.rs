//! The compiler: a pure function from a store snapshot and a proxy's identity to that
//! proxy's Envoy resources (listeners, clusters, route configurations, endpoints), as
//! App Mesh's managed control plane produced them. No async, no I/O, no clock: the
//! same snapshot always compiles to the same bytes, and versions are content hashes.
//! (The caches that one pass shares between the proxies it compiles on several threads,
//! `shared.rs` and `shared_services.rs`, sit behind locks; what they hold depends only on
//! the snapshot.)
//!
//! `docs/envoy-mapping.md` is the specification of the mapping.

mod backend;
mod check;
pub mod cloud_map;
mod cluster;
mod context;
mod dependencies;
mod envoy;
mod gateway;
mod incremental;
pub mod json;
mod listener;
pub mod names;
mod node;
mod output;
mod proxy;
mod route;
pub mod secrets;
mod shared;
mod shared_services;
mod shared_sides;
mod tls;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{ResourceKey, ResourceKind};
use crate::store::Snapshot;

pub use check::{DanglingReference, check_references};
pub use incremental::Compiled;
pub use output::{
    CompiledProxy, EncodedResource, ProxyConfig, ResourceType, content_version, set_version,
};
pub use proxy::{InvalidProxyId, ProxyId, ProxyKind};

/// Compiles the configuration of `proxy` from `snapshot`. A proxy whose resource does
/// not exist (yet) gets an empty configuration and a diagnostic saying so.
pub fn compile_proxy(snapshot: &Snapshot, proxy: &ProxyId) -> ProxyConfig {
    compile_with_dependencies(snapshot, proxy).0
}

/// Compiles `proxy` and returns, with its configuration, every resource it was compiled
/// from (routes and gateway routes count as their router or gateway): a change to any
/// other resource cannot change this proxy's configuration.
pub fn compile_with_dependencies(
    snapshot: &Snapshot,
    proxy: &ProxyId,
) -> (ProxyConfig, BTreeSet<ResourceKey>) {
    let (config, dependencies) = compile_sharing(snapshot, proxy, None);
    (config, dependencies.to_set())
}

/// What the proxies of one compilation pass share: egress clusters, virtual services
/// as their clients reach them, and virtual nodes' outbound sides; and what is kept
/// from earlier passes: inbound sides.
#[derive(Clone, Copy)]
struct Sharing<'s> {
    clusters: &'s shared::SharedClusters,
    services: &'s shared_services::SharedServices,
    egress: &'s shared_sides::SharedEgress,
    ingress: &'s shared_sides::SharedIngress,
}

/// Compiles `proxy`, taking egress clusters and compiled services from (and adding them
/// to) `shared`, so that the proxies of one pass build each of them once.
fn compile_sharing(
    snapshot: &Snapshot,
    proxy: &ProxyId,
    shared: Option<Sharing<'_>>,
) -> (ProxyConfig, dependencies::Dependencies) {
    #[cfg(test)]
    fault::check(proxy);
    let mut ctx = context::Context::new(snapshot, &proxy.mesh);
    if let Some(shared) = shared {
        ctx = ctx
            .with_shared(shared.clusters)
            .with_services(shared.services)
            .with_egress(shared.egress)
            .with_ingress(shared.ingress);
    }
    if ctx.mesh_spec().is_none() {
        ctx.diagnose(format!("mesh {} does not exist", proxy.mesh));
    } else {
        match proxy.kind {
            ProxyKind::VirtualNode => node::compile(&mut ctx, &proxy.name),
            ProxyKind::VirtualGateway => gateway::compile(&mut ctx, &proxy.name),
        }
        let kind = match proxy.kind {
            ProxyKind::VirtualNode => ResourceKind::VirtualNode,
            ProxyKind::VirtualGateway => ResourceKind::VirtualGateway,
        };
        ctx.out.exists = snapshot
            .get(&ResourceKey::in_mesh(kind, &proxy.mesh, &proxy.name))
            .is_some();
        let subject = certificate_subject(&mut ctx, proxy);
        ctx.out.secrets = secrets::named(&ctx.out, &subject);
    }
    (ctx.out, ctx.dependencies)
}

/// Who the certificates a proxy's listeners serve are for: its SPIFFE id and, for a
/// virtual node, its service-discovery name (the DNS hostname, or `<service>.<namespace>`
/// for Cloud Map), which App Mesh's clients check by default.
fn certificate_subject(
    ctx: &mut context::Context<'_>,
    proxy: &ProxyId,
) -> crate::certificates::Subject {
    let dns_names = match proxy.kind {
        ProxyKind::VirtualNode => ctx
            .virtual_node(&proxy.name)
            .and_then(|node| node.service_discovery.as_ref())
            .and_then(
                |discovery| match (&discovery.dns, &discovery.aws_cloud_map) {
                    (Some(dns), _) => Some(dns.hostname.clone()),
                    (None, Some(map)) => {
                        Some(format!("{}.{}", map.service_name, map.namespace_name))
                    }
                    (None, None) => None,
                },
            )
            .into_iter()
            .collect(),
        ProxyKind::VirtualGateway => Vec::new(),
    };
    crate::certificates::Subject {
        proxy: proxy.clone(),
        dns_names,
    }
}

/// Every proxy the store defines: each virtual node and each virtual gateway.
pub fn all_proxies(snapshot: &Snapshot) -> Vec<ProxyId> {
    snapshot
        .iter()
        .filter_map(|resource| match resource.key.kind {
            ResourceKind::VirtualNode => Some(ProxyId::virtual_node(
                &resource.key.mesh,
                &resource.key.name,
            )),
            ResourceKind::VirtualGateway => Some(ProxyId::virtual_gateway(
                &resource.key.mesh,
                &resource.key.name,
            )),
            _ => None,
        })
        .collect()
}

/// Compiles every proxy of the store, spreading the proxies over the machine's cores
/// (compilation is pure, so the result does not depend on how they are spread).
pub fn compile_all(snapshot: &Snapshot) -> BTreeMap<ProxyId, ProxyConfig> {
    let proxies = all_proxies(snapshot);
    let clusters = shared::SharedClusters::default();
    let services = shared_services::SharedServices::default();
    let egress = shared_sides::SharedEgress::default();
    let ingress = shared_sides::SharedIngress::default();
    let shared = Sharing {
        clusters: &clusters,
        services: &services,
        egress: &egress,
        ingress: &ingress,
    };
    let compiled = compile_many(snapshot, &proxies, shared);
    proxies
        .into_iter()
        .zip(compiled)
        .map(|(proxy, (config, _))| (proxy, config))
        .collect()
}

/// Fewer proxies than this are compiled on the calling thread: starting threads would
/// cost more than it saves.
const PARALLEL_FROM: usize = 32;

/// How many cores the machine gives this process, asked once: asking reads the cgroup
/// files each time, which took longer than compiling a small pass.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Compiles `proxies` (with their dependency sets), in order, spread over the machine's
/// cores when there are enough of them.
fn compile_many(
    snapshot: &Snapshot,
    proxies: &[ProxyId],
    shared: Sharing<'_>,
) -> Vec<(ProxyConfig, dependencies::Dependencies)> {
    let compile = |part: &[ProxyId]| -> Vec<_> {
        part.iter()
            .map(|proxy| compile_sharing(snapshot, proxy, Some(shared)))
            .collect()
    };
    let threads = cores().min(proxies.len().div_ceil(PARALLEL_FROM)).max(1);
    if threads == 1 {
        return compile(proxies);
    }
    let chunk = proxies.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = proxies
            .chunks(chunk)
            .map(|part| scope.spawn(move || compile(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("compiling a proxy does not panic"))
            .collect()
    })
}

/// The resource a change to `key` is seen through by the compiler's dependency sets: a
/// route through its router, a gateway route through its gateway, anything else itself.
pub fn dependency_key(key: &ResourceKey) -> ResourceKey {
    key.parent_key().unwrap_or_else(|| key.clone())
}

/// Faults for tests: compiling a proxy named here panics, as a bug in the compiler
/// would, or pauses until the test lets it go on.
#[cfg(test)]
pub(crate) mod fault {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::mpsc;

    use parking_lot::Mutex;

    use super::ProxyId;

    static PANICKING: Mutex<BTreeSet<ProxyId>> = Mutex::new(BTreeSet::new());
    static PAUSING: Mutex<BTreeMap<ProxyId, Paused>> = Mutex::new(BTreeMap::new());

    /// The compiler's side of a pause.
    struct Paused {
        reached: mpsc::Sender<()>,
        resume: mpsc::Receiver<()>,
    }

    /// The test's side of a pause: `reached` receives once compiling the proxy has
    /// begun, which then waits until `resume` is sent to.
    pub struct Pause {
        /// Says that the compilation is paused.
        pub reached: mpsc::Receiver<()>,
        /// Lets it go on.
        pub resume: mpsc::Sender<()>,
    }

    /// From now on (until [`heal`]), compiling `proxy` panics.
    pub fn panic_when_compiling(proxy: &ProxyId) {
        PANICKING.lock().insert(proxy.clone());
    }

    /// Compiling `proxy` no longer panics.
    pub fn heal(proxy: &ProxyId) {
        PANICKING.lock().remove(proxy);
    }

    /// The next compilation of `proxy` pauses (once).
    pub fn pause_when_compiling(proxy: &ProxyId) -> Pause {
        let (reached, reached_rx) = mpsc::channel();
        let (resume_tx, resume) = mpsc::channel();
        PAUSING
            .lock()
            .insert(proxy.clone(), Paused { reached, resume });
        Pause {
            reached: reached_rx,
            resume: resume_tx,
        }
    }

    pub(super) fn check(proxy: &ProxyId) {
        let paused = PAUSING.lock().remove(proxy);
        if let Some(paused) = paused {
            let _ = paused.reached.send(());
            let _ = paused.resume.recv();
        }
        if PANICKING.lock().contains(proxy) {
            panic!("compiling {proxy} panics (a fault injected by a test)");
        }
    }
}
