//! The hub between the store and the streams: it follows the store's change feed,
//! coalesces bursts of writes (debounce), recompiles only the proxies a change reaches,
//! encodes their configuration once, and hands it to their streams through one watch
//! channel per proxy (latest wins, so a slow proxy never holds up the others).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::compile::{Compiled, ProxyConfig, ProxyId, check_references};
use crate::store::Store;

use super::snapshot::{Interner, ProxySnapshot};
use super::status::{StatusSource, StreamStatus};

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

/// Shared state of the xDS server.
pub struct Hub {
    store: Arc<Store>,
    compiled: Mutex<Compiled>,
    interner: Interner,
    proxies: DashMap<ProxyId, watch::Sender<Arc<ProxySnapshot>>>,
    streams: DashMap<u64, Arc<dyn StatusSource>>,
    next_stream: AtomicU64,
    debounce: Duration,
}

impl Hub {
    /// A hub over `store`, compiling every proxy it defines now.
    pub fn new(store: Arc<Store>, debounce: Duration) -> Arc<Self> {
        let compiled = Compiled::new(store.snapshot());
        Arc::new(Self {
            store,
            compiled: Mutex::new(compiled),
            interner: Interner::default(),
            proxies: DashMap::new(),
            streams: DashMap::new(),
            next_stream: AtomicU64::new(1),
            debounce,
        })
    }

    /// The configuration channel of `proxy`, created (and its configuration compiled,
    /// even if its resource does not exist yet) on first use.
    pub fn watch(&self, proxy: &ProxyId) -> watch::Receiver<Arc<ProxySnapshot>> {
        if let Some(sender) = self.proxies.get(proxy) {
            return sender.subscribe();
        }
        let mut compiled = self.compiled.lock();
        let sender = self.proxies.entry(proxy.clone()).or_insert_with(|| {
            let config = compiled.get(proxy);
            // A configuration that fails the check is not sent; the proxy starts with
            // nothing (as one whose resource does not exist yet).
            let config = if passes_check(proxy, &config) {
                config
            } else {
                Arc::new(ProxyConfig::default())
            };
            watch::channel(Arc::new(self.interner.snapshot(&config))).0
        });
        sender.subscribe()
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
                () = &mut stop => return,
            }
            if let Some(end) = window_end {
                tokio::select! {
                    () = tokio::time::sleep_until(end) => {}
                    () = &mut stop => return,
                }
            }
            let started = tokio::time::Instant::now();
            let snapshot = feed.borrow_and_update().clone();
            let hub = self.clone();
            match tokio::task::spawn_blocking(move || hub.publish(snapshot)).await {
                Ok(publication) if publication.recompiled == 0 => {}
                Ok(publication) => {
                    window_end = Some(started + push_window(publication.took, self.debounce));
                }
                Err(err) => tracing::error!("publishing a new configuration failed: {err}"),
            }
        }
    }

    /// Recompiles what `snapshot` changed and publishes it; says how many proxies were
    /// recompiled and how long it took until every stream was told.
    fn publish(&self, snapshot: Arc<crate::store::Snapshot>) -> Publication {
        let started = std::time::Instant::now();
        let mut compiled = self.compiled.lock();
        let affected = compiled.update(snapshot);
        let mut pushed = 0;
        for proxy in &affected {
            if let Some(sender) = self.proxies.get(proxy)
                && self.offer(&sender, proxy, &compiled.get(proxy))
            {
                pushed += 1;
            }
        }
        let took = started.elapsed();
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
    }

    /// Sends `config` to `proxy`'s streams through `sender`, unless they hold it
    /// already or it fails the reference check (then the proxy keeps what it has, and
    /// the failure is logged); says whether it was sent.
    fn offer(
        &self,
        sender: &watch::Sender<Arc<ProxySnapshot>>,
        proxy: &ProxyId,
        config: &ProxyConfig,
    ) -> bool {
        if !passes_check(proxy, config) {
            return false;
        }
        let encoded = Arc::new(self.interner.snapshot(config));
        if **sender.borrow() == *encoded {
            return false;
        }
        sender.send_replace(encoded);
        true
    }

    /// Registers a stream, whose status is read from `source` when asked for; returns
    /// its id.
    pub fn register(&self, source: Arc<dyn StatusSource>) -> u64 {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        self.streams.insert(id, source);
        id
    }

    /// Forgets a closed stream.
    pub fn unregister(&self, id: u64) {
        self.streams.remove(&id);
    }

    /// Every connected stream's status, by stream id.
    pub fn statuses(&self) -> BTreeMap<u64, StreamStatus> {
        self.streams
            .iter()
            .map(|entry| (*entry.key(), entry.value().status()))
            .collect()
    }

    /// The current snapshot of `proxy`, if it has a channel.
    pub fn current(&self, proxy: &ProxyId) -> Option<Arc<ProxySnapshot>> {
        self.proxies
            .get(proxy)
            .map(|sender| sender.borrow().clone())
    }

    /// How many distinct encoded resources are held for all proxies.
    pub fn distinct_resources(&self) -> usize {
        self.interner.len()
    }
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
        let hub = Hub::new(store.clone(), window);
        tokio::spawn(hub.clone().run());
        // Let the hub catch up with the store (nothing to push) before changing it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let proxy = ProxyId::virtual_node("m", "a");
        let mut pushed = hub.watch(&proxy);
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
        let hub = Hub::new(store.clone(), Duration::ZERO);
        let proxy = ProxyId::virtual_node("m", "a");
        let mut pushed = hub.watch(&proxy);
        let before = pushed.borrow_and_update().clone();
        assert!(before.exists);

        let mut dangling = compile_proxy(&store.snapshot(), &proxy);
        dangling.route_configs.insert(
            "rds_broken".into(),
            RouteConfiguration {
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
            },
        );
        let sender = hub.proxies.get(&proxy).unwrap();
        assert!(!hub.offer(&sender, &proxy, &dangling), "it was published");
        assert!(!pushed.has_changed().unwrap());
        assert_eq!(*pushed.borrow(), before);
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
        let hub = Hub::new(store.clone(), Duration::ZERO);
        let definition = serde_json::json!([
            {"meshName": "m", "spec": {}},
            {"meshName": "m", "virtualNodeName": "n", "spec": {}},
        ]);
        crate::definition::load(&store, &definition).unwrap();
        let proxy = ProxyId::parse("mesh/m/virtualNode/n").unwrap();
        let mut watch = hub.watch(&proxy);
        assert!(!watch.borrow().exists, "compiled when the hub was made");
        tokio::spawn(hub.clone().run());
        tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|s| s.exists))
            .await
            .expect("the write is published")
            .unwrap();
    }
}
