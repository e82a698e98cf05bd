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

use crate::compile::{Compiled, ProxyId};
use crate::store::Store;

use super::snapshot::{Interner, ProxySnapshot};
use super::status::StreamStatus;

/// How long the hub waits after a change for more changes before it pushes.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(20);

/// Shared state of the xDS server.
pub struct Hub {
    store: Arc<Store>,
    compiled: Mutex<Compiled>,
    interner: Interner,
    proxies: DashMap<ProxyId, watch::Sender<Arc<ProxySnapshot>>>,
    streams: DashMap<u64, Arc<Mutex<StreamStatus>>>,
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
            watch::channel(Arc::new(self.interner.snapshot(&config))).0
        });
        sender.subscribe()
    }

    /// Follows the store until it is dropped: after each change (and a debounce for the
    /// changes that follow it), recompiles the affected proxies and publishes their new
    /// configuration.
    pub async fn run(self: Arc<Self>) {
        let mut feed = self.store.subscribe();
        // A new receiver counts the current snapshot as seen, but writes made between
        // `Hub::new` and this first poll are not compiled yet: look at it once.
        feed.mark_changed();
        loop {
            if feed.changed().await.is_err() {
                return;
            }
            if !self.debounce.is_zero() {
                tokio::time::sleep(self.debounce).await;
            }
            let snapshot = feed.borrow_and_update().clone();
            let hub = self.clone();
            let published = tokio::task::spawn_blocking(move || hub.publish(snapshot)).await;
            if let Err(err) = published {
                tracing::error!("publishing a new configuration failed: {err}");
            }
        }
    }

    fn publish(&self, snapshot: Arc<crate::store::Snapshot>) {
        let mut compiled = self.compiled.lock();
        let affected = compiled.update(snapshot);
        let mut pushed = 0;
        for proxy in &affected {
            if let Some(sender) = self.proxies.get(proxy) {
                let config = compiled.get(proxy);
                let encoded = Arc::new(self.interner.snapshot(&config));
                if **sender.borrow() != *encoded {
                    sender.send_replace(encoded);
                    pushed += 1;
                }
            }
        }
        tracing::debug!(
            recompiled = affected.len(),
            pushed,
            "published a store revision"
        );
    }

    /// Registers a stream's status; returns its id.
    pub fn register(&self, status: StreamStatus) -> (u64, Arc<Mutex<StreamStatus>>) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Mutex::new(status));
        self.streams.insert(id, shared.clone());
        (id, shared)
    }

    /// Forgets a closed stream.
    pub fn unregister(&self, id: u64) {
        self.streams.remove(&id);
    }

    /// Every connected stream's status, by stream id.
    pub fn statuses(&self) -> BTreeMap<u64, StreamStatus> {
        self.streams
            .iter()
            .map(|entry| (*entry.key(), entry.value().lock().clone()))
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
    use crate::store::{Limits, StoreConfig};

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
