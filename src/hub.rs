//! The hub between the store and the streams: it follows the store's change feed,
//! coalesces bursts of writes (debounce), recompiles only the proxies a change reaches,
//! encodes their configuration once, and hands it to their streams through one watch
//! channel per proxy (latest wins, so a slow proxy never holds up the others).
//!
//! A proxy's compiled state lives only while a stream holds it (a [`ProxyLease`]), and
//! for a grace period after the last one ends (a reconnecting proxy finds it still
//! there): proxies that do not exist, or have gone, cost nothing and are never
//! recompiled.
//!
//! Cloud Map clusters get their endpoints from an endpoint source ([`Endpoints`]): the
//! hub tells it which services its proxies' clusters name, fills their assignments from
//! what it found, and on a change of instances republishes only the endpoint
//! assignments (EDS) of the proxies whose clusters name that service.
//!
//! ACM certificates and trust come from a certificate source ([`Certificates`]) the same
//! way: the hub tells it which secrets its proxies name, serves each proxy the ones its
//! own configuration names, and republishes a proxy's secrets when they change.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use crate::certificates::{Certificates, SecretQuery};
use crate::compile::{
    Compiled, ProxyConfig, ProxyId, ResourceType, check_references, cloud_map, secrets,
};
use crate::discovery::{Endpoints, ServiceQuery};
use crate::feed::Followers;
use crate::store::Store;
use crate::xds::{Interner, ProxySnapshot};

/// How long a proxy's compiled state outlives its last stream by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The longest push window: a change after a quiet period is pushed at once; changes
/// that arrive within the window of the last push are coalesced into one push when it
/// ends. The window is twice as long as the last publication took, at most this.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(20);

/// The window after a publication that took `took`: twice that, so that a burst of
/// writes keeps the hub busy a third of the time at most, but never longer than
/// `longest`. A quick publication (a small change) leaves a short window, so a change
/// made right after the previous one reached the proxies does not wait for long.
fn push_window(took: Duration, longest: Duration) -> Duration {
    took.saturating_mul(2).min(longest)
}

/// What `changed` (a source's next change) yields; never, without a source.
async fn next_change<T>(changed: Option<impl std::future::Future<Output = T>>) -> T {
    match changed {
        Some(changed) => changed.await,
        None => std::future::pending().await,
    }
}

/// Where what the store does not hold comes from; either may be absent (its clusters
/// or secrets then stay empty, with a diagnostic).
#[derive(Clone, Default)]
pub struct Sources {
    /// Cloud Map clusters' endpoints.
    pub endpoints: Option<Arc<Endpoints>>,
    /// ACM certificates and trust.
    pub certificates: Option<Arc<Certificates>>,
}

/// Whether `config` passes meshd's reference check ([`check_references`]); logs each
/// dangling reference when it does not. Only a configuration that passes is published.
fn passes_check(proxy: &ProxyId, config: &ProxyConfig) -> bool {
    match check_references(config) {
        Ok(()) => true,
        Err(dangling) => {
            for reference in &dangling {
                tracing::error!(%proxy, "not publishing a configuration that fails the reference check: {reference}");
            }
            false
        }
    }
}

/// What one publication did.
struct Publication {
    /// How many proxies were recompiled.
    recompiled: usize,
    /// How long recompiling, encoding and handing them to their streams took.
    took: Duration,
}

/// A proxy's channel, how many streams hold it, and the configuration it was last sent.
struct Held {
    sender: watch::Sender<Arc<ProxySnapshot>>,
    holders: usize,
    /// The compiled configuration the channel's snapshot was made from (its Cloud Map
    /// clusters are filled again from it when their instances change).
    config: Arc<ProxyConfig>,
    /// Whether the proxy waits for its first compilation (queued while the compiler
    /// was busy): its channel holds [`waiting`] until then.
    waiting: bool,
}

/// What a proxy's streams hold before its first compilation: nothing to send (as for a
/// proxy whose resource does not exist yet), and why.
fn waiting() -> ProxySnapshot {
    ProxySnapshot {
        diagnostics: vec!["waiting for its first compilation".into()],
        ..ProxySnapshot::default()
    }
}

/// Work on the compiler asked for while another held it, done by whoever holds it next
/// before letting go (so that no stream ever waits for a pass to end).
enum Queued {
    /// A proxy's first compilation.
    Compile(ProxyId),
    /// Forgetting a proxy that no stream holds any more.
    Expire(ProxyId),
}

/// What the hub holds, for the status view: the figures that show whether per-proxy
/// state is bounded by the streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubCounts {
    /// Proxies with a configuration channel (held by a stream, or in their grace period).
    pub proxy_states: usize,
    /// Proxies whose configuration is compiled and kept up to date.
    pub compiled_proxies: usize,
    /// Proxies recompiled by the last publication that recompiled any.
    pub last_recompiled: u64,
    /// Publications since start.
    pub publications: u64,
    /// Distinct encoded resources held for all proxies.
    pub distinct_resources: usize,
}

/// A stream's hold on its proxy's configuration: while any is held, the hub keeps the
/// proxy compiled and current.
pub struct ProxyLease {
    hub: Arc<Hub>,
    proxy: ProxyId,
    /// The proxy's configuration, latest wins.
    pub updates: watch::Receiver<Arc<ProxySnapshot>>,
}

impl Drop for ProxyLease {
    fn drop(&mut self) {
        self.hub.release(&self.proxy);
    }
}

/// Shared state of the xDS server.
pub struct Hub {
    store: Arc<Store>,
    /// The compiler. Held by one pass at a time; a stream never waits for it (see
    /// [`Hub::watch`]): what it needs done meanwhile is queued in `queued`.
    compiled: Mutex<Compiled>,
    /// Work for the compiler's holder to do before it lets go.
    queued: Mutex<Vec<Queued>>,
    /// Proxies whose first compilation panicked, tried again at the next pass.
    retry: Mutex<Vec<ProxyId>>,
    /// How many proxies the compiler keeps (for [`Hub::counts`], which does not wait).
    compiled_proxies: AtomicUsize,
    interner: Interner,
    proxies: DashMap<ProxyId, Held>,
    debounce: Duration,
    grace: Duration,
    last_recompiled: AtomicU64,
    publications: AtomicU64,
    /// Where Cloud Map clusters' endpoints come from; none: they stay empty.
    endpoints: Option<Arc<Endpoints>>,
    /// The held proxies whose Cloud Map clusters ask for each service.
    followers: Mutex<Followers<ServiceQuery, ProxyId>>,
    /// Where ACM secrets come from; none: they are not served.
    certificates: Option<Arc<Certificates>>,
    /// The held proxies that name each secret.
    secret_followers: Mutex<Followers<SecretQuery, ProxyId>>,
}

impl Hub {
    /// A hub over `store`, compiling each proxy once a stream asks for it; a proxy's
    /// state outlives its last stream by `grace`.
    /// Cloud Map clusters have no endpoints and ACM secrets are not served (with a
    /// diagnostic each).
    pub fn new(store: Arc<Store>, debounce: Duration, grace: Duration) -> Arc<Self> {
        Self::with_sources(store, debounce, grace, Sources::default())
    }

    /// [`Hub::new`], with Cloud Map endpoints and ACM secrets from `sources`.
    pub fn with_sources(
        store: Arc<Store>,
        debounce: Duration,
        grace: Duration,
        sources: Sources,
    ) -> Arc<Self> {
        let compiled = Compiled::on_demand(store.snapshot());
        Arc::new(Self {
            store,
            compiled: Mutex::new(compiled),
            queued: Mutex::default(),
            retry: Mutex::default(),
            compiled_proxies: AtomicUsize::new(0),
            interner: Interner::default(),
            proxies: DashMap::new(),
            debounce,
            grace,
            last_recompiled: AtomicU64::new(0),
            publications: AtomicU64::new(0),
            endpoints: sources.endpoints,
            followers: Mutex::default(),
            certificates: sources.certificates,
            secret_followers: Mutex::default(),
        })
    }

    /// Holds `proxy`'s configuration channel, created (and its configuration compiled,
    /// even if its resource does not exist yet) on first use. Never waits for the
    /// compiler: when a pass holds it, the new proxy's first compilation is queued for
    /// the end of that pass, and its streams hold nothing to send until then.
    pub fn watch(self: &Arc<Self>, proxy: &ProxyId) -> ProxyLease {
        let lease = |updates| ProxyLease {
            hub: self.clone(),
            proxy: proxy.clone(),
            updates,
        };
        if let Some(mut held) = self.proxies.get_mut(proxy) {
            held.holders += 1;
            return lease(held.sender.subscribe());
        }
        let mut created = false;
        self.proxies
            .entry(proxy.clone())
            .or_insert_with(|| {
                created = true;
                Held {
                    sender: watch::channel(Arc::new(waiting())).0,
                    holders: 0,
                    config: Arc::new(ProxyConfig::default()),
                    waiting: true,
                }
            })
            .holders += 1;
        if created {
            // Compiled now if the compiler is free, before the stream subscribes: its
            // first configuration is then what it starts from, not a change.
            self.queue(Queued::Compile(proxy.clone()));
        }
        let updates = self
            .proxies
            .get(proxy)
            .expect("held: this lease counts as a holder")
            .sender
            .subscribe();
        lease(updates)
    }

    /// One stream of `proxy` let go; after the last, the proxy's state goes once the
    /// grace period has passed without a new stream.
    fn release(self: &Arc<Self>, proxy: &ProxyId) {
        let last = match self.proxies.get_mut(proxy) {
            Some(mut held) => {
                held.holders -= 1;
                held.holders == 0
            }
            None => false,
        };
        if !last {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !self.grace.is_zero() => {
                let (hub, proxy, grace) = (self.clone(), proxy.clone(), self.grace);
                runtime.spawn(async move {
                    tokio::time::sleep(grace).await;
                    hub.queue(Queued::Expire(proxy));
                });
            }
            _ => self.queue(Queued::Expire(proxy.clone())),
        }
    }

    /// Queues `work` for the compiler, and does it now if no one holds the compiler
    /// (never waiting for it).
    fn queue(&self, work: Queued) {
        self.queued.lock().push(work);
        self.work_queued_if_free();
    }

    /// Holds the compiler for `pass` (waiting for it: not on an async worker), then does
    /// the work queued meanwhile before letting go.
    fn with_compiler<R>(&self, pass: impl FnOnce(&mut Compiled) -> R) -> R {
        let mut compiled = self.compiled.lock();
        let result = pass(&mut compiled);
        self.work_queued(&mut compiled);
        drop(compiled);
        // Work queued between the last look and letting go, unless another holds it
        // now (who will do it).
        self.work_queued_if_free();
        result
    }

    /// Does the queued work, unless someone holds the compiler (who does it before
    /// letting go).
    fn work_queued_if_free(&self) {
        while !self.queued.lock().is_empty() {
            let Some(mut compiled) = self.compiled.try_lock() else {
                return;
            };
            self.work_queued(&mut compiled);
        }
    }

    /// Does the work queued for the compiler (held: `compiled`).
    fn work_queued(&self, compiled: &mut Compiled) {
        loop {
            let queued = std::mem::take(&mut *self.queued.lock());
            if queued.is_empty() {
                break;
            }
            for work in queued {
                match work {
                    Queued::Compile(proxy) => self.compile_first(compiled, &proxy),
                    Queued::Expire(proxy) => self.expire(compiled, &proxy),
                }
            }
        }
        compiled.drop_replaced();
        self.compiled_proxies
            .store(compiled.len(), Ordering::Relaxed);
    }

    /// Compiles `proxy` for the first time (if it is still held and waits for it) and
    /// hands the result to its streams. A configuration that fails the check is not
    /// sent; the proxy starts with nothing (as one whose resource does not exist yet).
    fn compile_first(&self, compiled: &mut Compiled, proxy: &ProxyId) {
        let Some(mut held) = self.proxies.get_mut(proxy) else {
            return;
        };
        if !held.waiting {
            return;
        }
        let config = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            compiled.get(proxy)
        })) {
            Ok(config) if passes_check(proxy, &config) => config,
            Ok(_) => Arc::new(ProxyConfig::default()),
            Err(_) => {
                tracing::error!(%proxy, "compiling the proxy panicked; it is sent nothing until the next pass");
                self.retry.lock().push(proxy.clone());
                return;
            }
        };
        self.follow(proxy, None, Some(&config));
        held.sender.send_replace(Arc::new(self.encode(&config)));
        held.config = config;
        held.waiting = false;
    }

    /// Forgets `proxy` if no stream holds it.
    fn expire(&self, compiled: &mut Compiled, proxy: &ProxyId) {
        if let Some((_, held)) = self.proxies.remove_if(proxy, |_, held| held.holders == 0) {
            self.follow(proxy, Some(&held.config), None);
            compiled.release(proxy);
        }
    }

    /// What the hub holds now.
    pub fn counts(&self) -> HubCounts {
        HubCounts {
            proxy_states: self.proxies.len(),
            compiled_proxies: self.compiled_proxies.load(Ordering::Relaxed),
            last_recompiled: self.last_recompiled.load(Ordering::Relaxed),
            publications: self.publications.load(Ordering::Relaxed),
            distinct_resources: self.interner.len(),
        }
    }

    /// Follows the store until it is dropped: after each change, recompiles the affected
    /// proxies and publishes their new configuration. A change after a quiet period goes
    /// out at once; changes within the push window of the last push (`push_window`:
    /// twice the time that publication took, at most `debounce`) wait for it to end and
    /// go out together (the latest snapshot wins), so a burst of writes costs one
    /// recompilation per window, not one per write.
    pub async fn run(self: Arc<Self>) {
        self.run_until(std::future::pending()).await
    }

    /// [`Hub::run`] until `stop` completes. A publication in progress is finished first,
    /// so that when this returns the hub holds no work that keeps the store alive.
    pub async fn run_until(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut feed = self.store.subscribe();
        // Writes made between `new` and now are not marked as changes: catch up first.
        feed.mark_changed();
        let mut window_end: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                changed = feed.changed() => if changed.is_err() { return },
                queries = next_change(self.endpoints.as_deref().map(Endpoints::changed)) => {
                    // Not coalesced with the store's changes, nor held up by their window:
                    // filling assignments is cheap, and its own publications are serial.
                    let hub = self.clone();
                    let republished =
                        tokio::task::spawn_blocking(move || hub.republish_endpoints(&queries)).await;
                    if let Err(err) = republished {
                        tracing::error!("publishing new Cloud Map endpoints failed: {err}");
                    }
                    continue;
                }
                queries = next_change(self.certificates.as_deref().map(Certificates::changed)) => {
                    let hub = self.clone();
                    let republished =
                        tokio::task::spawn_blocking(move || hub.republish_secrets(&queries)).await;
                    if let Err(err) = republished {
                        tracing::error!("publishing new certificates failed: {err}");
                    }
                    continue;
                }
                () = &mut stop => return,
            }
            // Latencies to proxies are measured from here: the change was seen.
            let changed_at = std::time::Instant::now();
            if let Some(end) = window_end {
                tokio::select! {
                    () = tokio::time::sleep_until(end) => {}
                    () = &mut stop => return,
                }
            }
            let started = tokio::time::Instant::now();
            let snapshot = feed.borrow_and_update().clone();
            let hub = self.clone();
            match tokio::task::spawn_blocking(move || hub.publish(snapshot, changed_at)).await {
                Ok(publication) if publication.recompiled == 0 => {}
                Ok(publication) => {
                    window_end = Some(started + push_window(publication.took, self.debounce));
                }
                Err(err) => tracing::error!("publishing a new configuration failed: {err}"),
            }
        }
    }

    /// Recompiles what `snapshot` changed and publishes it; says how many proxies were
    /// recompiled and how long it took until every stream was told. A pass that panics
    /// publishes nothing and leaves the compiler where it was, so the next pass
    /// recompiles what this one could not.
    fn publish(
        &self,
        snapshot: Arc<crate::store::Snapshot>,
        changed_at: std::time::Instant,
    ) -> Publication {
        let started = std::time::Instant::now();
        let retry = std::mem::take(&mut *self.retry.lock());
        self.queued
            .lock()
            .extend(retry.into_iter().map(Queued::Compile));
        self.with_compiler(|compiled| {
            let revision = snapshot.revision();
            let affected = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compiled.update(snapshot)
            })) {
                Ok(affected) => affected,
                Err(_) => {
                    tracing::error!(
                        revision,
                        "compiling the store's revision panicked; the proxies keep what they have"
                    );
                    return Publication {
                        recompiled: 0,
                        took: started.elapsed(),
                    };
                }
            };
            let mut pushed = 0;
            for proxy in &affected {
                if let Some(mut held) = self.proxies.get_mut(proxy)
                    && self.offer(&mut held, proxy, compiled.get(proxy), changed_at)
                {
                    pushed += 1;
                }
            }
            self.publications.fetch_add(1, Ordering::Relaxed);
            if !affected.is_empty() {
                self.last_recompiled
                    .store(affected.len() as u64, Ordering::Relaxed);
            }
            let took = started.elapsed();
            crate::metrics::compile_pass(affected.len(), took);
            tracing::debug!(
                recompiled = affected.len(),
                pushed,
                elapsed_us = took.as_micros() as u64,
                "published a store revision"
            );
            // Only now, with every stream told: freeing the old configurations takes a
            // while.
            compiled.drop_replaced();
            Publication {
                recompiled: affected.len(),
                took,
            }
        })
    }

    /// Sends `config` to `proxy`'s streams (`held`), unless they hold it already or it
    /// fails the reference check (then the proxy keeps what it has, and the failure is
    /// logged); says whether it was sent.
    fn offer(
        &self,
        held: &mut Held,
        proxy: &ProxyId,
        config: Arc<ProxyConfig>,
        changed_at: std::time::Instant,
    ) -> bool {
        if !passes_check(proxy, &config) {
            return false;
        }
        self.follow(proxy, Some(&held.config), Some(&config));
        let encoded = Arc::new(ProxySnapshot {
            changed_at: Some(changed_at),
            ..self.encode(&config)
        });
        held.config = config;
        if **held.sender.borrow() == *encoded {
            return false;
        }
        held.sender.send_replace(encoded);
        true
    }

    /// `config` encoded, its Cloud Map clusters filled with the instances found (or,
    /// with no endpoint source, left empty with a diagnostic each) and the secrets it
    /// names with those the certificate source has.
    fn encode(&self, config: &ProxyConfig) -> ProxySnapshot {
        if config.cloud_map.is_empty() && config.secrets.is_empty() {
            return self.interner.snapshot(config);
        }
        let mut diagnostics = Vec::new();
        let endpoints = match (&self.endpoints, config.cloud_map.is_empty()) {
            (_, true) => Cow::Borrowed(&config.endpoints),
            (Some(endpoints), false) => Cow::Owned(filled(config, endpoints)),
            (None, false) => {
                diagnostics.extend(config.cloud_map.iter().map(|(cluster, target)| {
                    format!(
                        "cluster {cluster} takes its endpoints from Cloud Map service {}, and no Cloud Map source is configured: it has none",
                        target.query
                    )
                }));
                Cow::Borrowed(&config.endpoints)
            }
        };
        let served = self.served_secrets(config, &mut diagnostics);
        let mut snapshot = self
            .interner
            .snapshot_filled(config, &endpoints, &served.secrets);
        snapshot.diagnostics.extend(diagnostics);
        snapshot.secret_expiry = served.expiry;
        snapshot
    }

    /// The secrets `config` names that the certificate source has; a diagnostic for
    /// each it cannot serve (not issued yet, or failing: then the last one is served).
    fn served_secrets(&self, config: &ProxyConfig, diagnostics: &mut Vec<String>) -> Served {
        let mut served = Served::default();
        for (name, query) in &config.secrets {
            let Some(certificates) = &self.certificates else {
                diagnostics.push(format!(
                    "secret {name} ({query}) comes from ACM, and no certificate source is configured: it is not served"
                ));
                continue;
            };
            let state = certificates.state(query);
            if let Some(failure) = state.as_ref().and_then(|s| s.failure.as_ref()) {
                diagnostics.push(format!("secret {name}: {failure}"));
            }
            match state.and_then(|s| s.answer) {
                Some(material) => {
                    served
                        .expiry
                        .insert(name.clone(), material.facts().not_after);
                    served
                        .secrets
                        .insert(name.clone(), secrets::secret(name, &material));
                }
                None => diagnostics.push(format!("secret {name} ({query}) is not available yet")),
            }
        }
        served
    }

    /// Records that `proxy`, which used the configuration `before`, now uses `after`;
    /// tells the sources when the services or secrets asked for change.
    fn follow(&self, proxy: &ProxyId, before: Option<&ProxyConfig>, after: Option<&ProxyConfig>) {
        if let Some(endpoints) = &self.endpoints {
            let queries = |config: Option<&ProxyConfig>| -> BTreeSet<ServiceQuery> {
                config
                    .into_iter()
                    .flat_map(|config| config.cloud_map.values())
                    .map(|target| target.query.clone())
                    .collect()
            };
            let (before, after) = (queries(before), queries(after));
            if before != after
                && let Some(wanted) = self.followers.lock().update(proxy, &before, &after)
            {
                endpoints.want(wanted);
            }
        }
        if let Some(certificates) = &self.certificates {
            let queries = |config: Option<&ProxyConfig>| -> BTreeSet<SecretQuery> {
                config
                    .into_iter()
                    .flat_map(|config| config.secrets.values())
                    .cloned()
                    .collect()
            };
            let (before, after) = (queries(before), queries(after));
            if before != after
                && let Some(wanted) = self.secret_followers.lock().update(proxy, &before, &after)
            {
                certificates.want(wanted);
            }
        }
    }

    /// After the secrets of `queries` changed: the snapshot of every proxy that names
    /// them, encoded again and sent where it differs (only the secrets, and what is said
    /// of them, can differ); says how many proxies were sent new ones.
    fn republish_secrets(&self, queries: &BTreeSet<SecretQuery>) -> usize {
        let proxies = self.secret_followers.lock().of(queries);
        self.republish(&proxies, "certificates", |held, _| {
            Some(self.encode(&held.config))
        })
    }

    /// After the instances of `queries` changed: the endpoint assignments of every proxy
    /// whose Cloud Map clusters ask for them, filled again and sent where they differ;
    /// says how many proxies were sent new ones. Nothing else of theirs changes.
    fn republish_endpoints(&self, queries: &BTreeSet<ServiceQuery>) -> usize {
        let Some(endpoints) = &self.endpoints else {
            return 0;
        };
        let proxies = self.followers.lock().of(queries);
        self.republish(&proxies, "Cloud Map endpoints", |held, current| {
            let assignments = self.interner.endpoints(&filled(&held.config, endpoints));
            if *current.of(ResourceType::Endpoint) == assignments {
                return None;
            }
            let mut next = current.clone();
            next.types.insert(ResourceType::Endpoint, assignments);
            Some(next)
        })
    }

    /// Sends each of `proxies` the snapshot `next` makes from its held state and current
    /// snapshot (`None`: nothing to send), where it differs from the current one; says
    /// how many were sent one.
    fn republish(
        &self,
        proxies: &BTreeSet<ProxyId>,
        what: &str,
        next: impl Fn(&Held, &ProxySnapshot) -> Option<ProxySnapshot>,
    ) -> usize {
        let changed_at = std::time::Instant::now();
        let mut pushed = 0;
        for proxy in proxies {
            let Some(held) = self.proxies.get(proxy) else {
                continue;
            };
            let current = held.sender.borrow().clone();
            let Some(next) = next(&held, &current) else {
                continue;
            };
            let next = ProxySnapshot {
                changed_at: Some(changed_at),
                ..next
            };
            if *current == next {
                continue;
            }
            held.sender.send_replace(Arc::new(next));
            pushed += 1;
        }
        tracing::debug!(
            proxies = proxies.len(),
            pushed,
            elapsed_us = changed_at.elapsed().as_micros() as u64,
            "published new {what}"
        );
        pushed
    }
}

/// The secrets served to one proxy, and when each expires.
#[derive(Default)]
struct Served {
    secrets: BTreeMap<String, Secret>,
    expiry: BTreeMap<String, i64>,
}

/// The endpoint assignments of `config`, its Cloud Map clusters' filled with the
/// instances `endpoints` found.
fn filled(config: &ProxyConfig, endpoints: &Endpoints) -> BTreeMap<String, ClusterLoadAssignment> {
    let mut assignments = config.endpoints.clone();
    for (cluster, target) in &config.cloud_map {
        let instances = endpoints.instances(&target.query);
        assignments.insert(
            cluster.clone(),
            cloud_map::assignment(cluster, target, &instances),
        );
    }
    assignments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_proxy;
    use crate::store::{Limits, StoreConfig};

    fn node_on_port(store: &Store, port: i64) {
        crate::definition::put(
            store,
            &serde_json::json!({
            "meshName": "m", "virtualNodeName": "a", "spec": {
                "listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
                "serviceDiscovery": {"dns": {"hostname": "a.local"}}}}),
        )
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_change_is_pushed_at_once_and_a_burst_ends_with_its_last_state() {
        let store = Arc::new(Store::in_memory(Default::default()));
        crate::definition::put(&store, &serde_json::json!({"meshName": "m"})).unwrap();
        node_on_port(&store, 8000);
        let window = Duration::from_secs(2);
        let hub = Hub::new(store.clone(), window, DEFAULT_GRACE);
        tokio::spawn(hub.clone().run());
        // Let the hub catch up with the store (nothing to push) before changing it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let proxy = ProxyId::virtual_node("m", "a");
        let lease = hub.watch(&proxy);
        let mut pushed = lease.updates.clone();
        let expected =
            |store: &Store| Interner::default().snapshot(&compile_proxy(&store.snapshot(), &proxy));

        // A change after a quiet period does not wait for the window.
        node_on_port(&store, 8001);
        tokio::time::timeout(window / 2, pushed.changed())
            .await
            .expect("a lone change is pushed before the window would have ended")
            .unwrap();
        assert_eq!(**pushed.borrow_and_update(), expected(&store));

        // Changes right after a push go out when the window ends (how many of them in
        // one push depends on how long that window is): the proxy ends with the last.
        for port in [8002, 8003, 8004] {
            node_on_port(&store, port);
        }
        let last = expected(&store);
        tokio::time::timeout(window * 3, async {
            while **pushed.borrow_and_update() != last {
                pushed.changed().await.unwrap();
            }
        })
        .await
        .expect("the burst's last state is pushed");
    }

    /// A configuration that fails meshd's own reference check is never published: the
    /// proxy keeps the last one that passed.
    #[test]
    fn a_configuration_with_a_dangling_reference_is_not_published() {
        use envoy_types::pb::envoy::config::route::v3::{
            Route, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
        };
        let store = Arc::new(Store::in_memory(Default::default()));
        crate::definition::put(&store, &serde_json::json!({"meshName": "m"})).unwrap();
        node_on_port(&store, 8000);
        let hub = Hub::new(store.clone(), Duration::ZERO, Duration::ZERO);
        let proxy = ProxyId::virtual_node("m", "a");
        let lease = hub.watch(&proxy);
        let mut pushed = lease.updates.clone();
        let before = pushed.borrow_and_update().clone();
        assert!(before.exists);

        let mut dangling = compile_proxy(&store.snapshot(), &proxy);
        dangling.route_configs.insert(
            "rds_broken".into(),
            Arc::new(RouteConfiguration {
                name: "rds_broken".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "all".into(),
                    domains: vec!["*".into()],
                    routes: vec![Route {
                        action: Some(route::Action::Route(RouteAction {
                            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                                "cds_no_such_cluster".into(),
                            )),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        );
        let mut held = hub.proxies.get_mut(&proxy).unwrap();
        assert!(
            !hub.offer(
                &mut held,
                &proxy,
                Arc::new(dangling),
                std::time::Instant::now()
            ),
            "it was published"
        );
        assert!(!pushed.has_changed().unwrap());
        assert_eq!(*pushed.borrow(), before);
    }

    fn expected(store: &Store, proxy: &ProxyId) -> ProxySnapshot {
        Interner::default().snapshot(&compile_proxy(&store.snapshot(), proxy))
    }

    /// A stream opened while a pass is compiling does not wait for the pass: it holds
    /// nothing to send until its proxy's first compilation, which the pass does before
    /// it ends.
    #[test]
    fn opening_a_stream_never_waits_for_a_pass_in_progress() {
        let store = Arc::new(Store::in_memory(Default::default()));
        let node = |name: &str, port: i64| {
            crate::definition::put(
                &store,
                &serde_json::json!({
                "meshName": "paused", "virtualNodeName": name, "spec": {
                    "listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
                    "serviceDiscovery": {"dns": {"hostname": format!("{name}.local")}}}}),
            )
            .unwrap();
        };
        crate::definition::put(&store, &serde_json::json!({"meshName": "paused"})).unwrap();
        node("a", 8000);
        node("b", 8000);
        let hub = Hub::new(store.clone(), Duration::ZERO, Duration::ZERO);
        let (a, b) = (
            ProxyId::virtual_node("paused", "a"),
            ProxyId::virtual_node("paused", "b"),
        );
        let _a = hub.watch(&a);
        node("a", 8001);
        let pause = crate::compile::fault::pause_when_compiling(&a);
        std::thread::scope(|scope| {
            let pass = scope.spawn(|| hub.publish(store.snapshot(), std::time::Instant::now()));
            pause.reached.recv().unwrap();
            // The pass is compiling a: b's stream opens all the same.
            let lease = hub.watch(&b);
            assert!(
                !lease.updates.borrow().exists,
                "nothing to send before b is compiled"
            );
            pause.resume.send(()).unwrap();
            assert_eq!(pass.join().unwrap().recompiled, 1);
            assert_eq!(**lease.updates.borrow(), expected(&store, &b));
        });
    }

    /// A pass whose compilation panics publishes nothing and leaves the compiler where
    /// it was: the next pass brings the proxies what the failed one could not.
    #[test]
    fn a_pass_that_panics_leaves_the_previous_state_in_force() {
        let store = Arc::new(Store::in_memory(Default::default()));
        let node = |port: i64| {
            crate::definition::put(
                &store,
                &serde_json::json!({
                "meshName": "panics", "virtualNodeName": "a", "spec": {
                    "listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
                    "serviceDiscovery": {"dns": {"hostname": "a.local"}}}}),
            )
            .unwrap();
        };
        crate::definition::put(&store, &serde_json::json!({"meshName": "panics"})).unwrap();
        node(8000);
        let hub = Hub::new(store.clone(), Duration::ZERO, Duration::ZERO);
        let proxy = ProxyId::virtual_node("panics", "a");
        let lease = hub.watch(&proxy);
        let before = lease.updates.borrow().clone();
        assert!(before.exists);

        node(8001);
        crate::compile::fault::panic_when_compiling(&proxy);
        let failed = hub.publish(store.snapshot(), std::time::Instant::now());
        crate::compile::fault::heal(&proxy);
        assert_eq!(failed.recompiled, 0);
        assert_eq!(
            *lease.updates.borrow(),
            before,
            "the proxy keeps what it had"
        );

        // No new write: the next pass compiles the change the failed one could not.
        let next = hub.publish(store.snapshot(), std::time::Instant::now());
        assert_eq!(next.recompiled, 1);
        assert_eq!(**lease.updates.borrow(), expected(&store, &proxy));
    }

    #[test]
    fn the_push_window_is_twice_the_publication_at_most_the_longest() {
        let longest = Duration::from_millis(20);
        assert_eq!(
            push_window(Duration::from_millis(3), longest),
            Duration::from_millis(6)
        );
        assert_eq!(push_window(Duration::from_millis(10), longest), longest);
        assert_eq!(push_window(Duration::from_millis(150), longest), longest);
        assert_eq!(push_window(Duration::ZERO, longest), Duration::ZERO);
    }

    /// A write that lands after the hub is made but before its task first runs (meshd
    /// just started, a client already writing) reaches the proxies all the same.
    #[tokio::test]
    async fn writes_before_the_hub_runs_are_published() {
        let store = Arc::new(Store::open(&StoreConfig::Memory, Limits::default()).unwrap());
        let hub = Hub::new(store.clone(), Duration::ZERO, Duration::ZERO);
        let definition = serde_json::json!([
            {"meshName": "m", "spec": {}},
            {"meshName": "m", "virtualNodeName": "n", "spec": {}},
        ]);
        crate::definition::load(&store, &definition).unwrap();
        let proxy = ProxyId::parse("mesh/m/virtualNode/n").unwrap();
        let lease = hub.watch(&proxy);
        let mut watch = lease.updates.clone();
        assert!(!watch.borrow().exists, "compiled when first watched");
        tokio::spawn(hub.clone().run());
        tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|s| s.exists))
            .await
            .expect("the write is published")
            .unwrap();
    }

    /// A proxy's state lives while a stream holds it: once the last lease is gone (no
    /// grace here), the proxy is neither kept nor recompiled.
    #[tokio::test]
    async fn a_proxy_is_forgotten_when_its_last_stream_lets_go() {
        let store = Arc::new(Store::in_memory(Default::default()));
        crate::definition::put(&store, &serde_json::json!({"meshName": "m"})).unwrap();
        let hub = Hub::new(store.clone(), Duration::ZERO, Duration::ZERO);
        let phantom = ProxyId::virtual_node("m", "nobody");
        let first = hub.watch(&phantom);
        let second = hub.watch(&phantom);
        assert_eq!(hub.counts().proxy_states, 1);
        assert_eq!(hub.counts().compiled_proxies, 1);
        drop(first);
        assert_eq!(hub.counts().proxy_states, 1, "one stream still holds it");
        drop(second);
        assert_eq!(hub.counts().proxy_states, 0);
        assert_eq!(hub.counts().compiled_proxies, 0);
        crate::definition::put(
            &store,
            &serde_json::json!({"meshName": "m", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}}),
        )
        .unwrap();
        assert_eq!(
            hub.publish(store.snapshot(), std::time::Instant::now())
                .recompiled,
            0
        );
    }
}
