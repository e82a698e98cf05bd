//! Keeping every proxy's configuration current as the store changes, recompiling only
//! the proxies that a change can reach (each proxy's dependency set says which
//! resources its configuration was compiled from).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::model::{ResourceKey, ResourceKind};
use crate::store::Snapshot;

use super::dependencies::Dependencies;
use super::shared::SharedClusters;
use super::shared_services::SharedServices;
use super::shared_sides::{SharedEgress, SharedIngress};
use super::{
    ProxyConfig, ProxyId, ProxyKind, Sharing, all_proxies, compile_many, compile_sharing,
    dependency_key,
};

/// Which proxies a [`Compiled`] keeps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every proxy of the store (and any other asked for).
    #[default]
    Every,
    /// Only those asked for ([`Compiled::get`]) and not yet released.
    Held,
}

/// The compiled configuration of proxies of the store, kept up to date: every proxy
/// ([`Compiled::new`]), or only those held by a stream ([`Compiled::on_demand`]).
#[derive(Debug, Default)]
pub struct Compiled {
    scope: Scope,
    snapshot: Arc<Snapshot>,
    proxies: BTreeMap<ProxyId, Arc<ProxyConfig>>,
    dependencies: BTreeMap<ProxyId, Dependencies>,
    /// Reverse index: which proxies depend on a resource (hashed: it is only looked up,
    /// never iterated in an order that could show).
    dependents: FxHashMap<ResourceKey, FxHashSet<ProxyId>>,
    /// Egress clusters shared between proxies, kept while their inputs are current.
    shared: SharedClusters,
    /// Virtual nodes' inbound sides, kept while their inputs are current.
    ingress: SharedIngress,
    /// Services and outbound sides compiled from `snapshot`, shared by the proxies
    /// compiled from it (the next snapshot may change any of them).
    services: SharedServices,
    egress: SharedEgress,
    /// Configurations replaced by the last update, dropped by [`Compiled::drop_replaced`]
    /// (or at the next update) so that freeing them need not delay publishing the new
    /// ones.
    replaced: Vec<Arc<ProxyConfig>>,
}

impl Compiled {
    /// Compiles every proxy of `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let mut compiled = Compiled {
            snapshot: Arc::new(Snapshot::default()),
            ..Default::default()
        };
        compiled.update(snapshot);
        compiled
    }

    /// Compiles no proxy until one is asked for ([`Compiled::get`]), and keeps each
    /// only until it is released ([`Compiled::release`]): what a server needs, whose
    /// streams come and go and may name proxies that do not exist.
    pub fn on_demand(snapshot: Arc<Snapshot>) -> Self {
        Compiled {
            scope: Scope::Held,
            snapshot,
            ..Default::default()
        }
    }

    /// Forgets `proxy`'s configuration (kept on demand): later changes no longer
    /// recompile it. Returns whether it was kept.
    pub fn release(&mut self, proxy: &ProxyId) -> bool {
        let Some(config) = self.proxies.remove(proxy) else {
            return false;
        };
        self.replaced.push(config);
        if proxy.kind == ProxyKind::VirtualNode {
            self.ingress.forget(&proxy.mesh, &proxy.name);
        }
        if let Some(dependencies) = self.dependencies.remove(proxy) {
            self.unindex(proxy, &dependencies);
        }
        true
    }

    /// How many proxies' configurations are kept.
    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    /// Whether no proxy's configuration is kept.
    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }

    /// The configuration of `proxy`, compiled on demand if it is not kept (on demand,
    /// or because the store has no such proxy yet: a proxy that connects before its
    /// virtual node exists gets an empty one).
    pub fn get(&mut self, proxy: &ProxyId) -> Arc<ProxyConfig> {
        if let Some(config) = self.proxies.get(proxy) {
            return config.clone();
        }
        self.compile_one(proxy);
        self.proxies[proxy].clone()
    }

    /// Every compiled proxy.
    pub fn proxies(&self) -> impl Iterator<Item = (&ProxyId, &Arc<ProxyConfig>)> {
        self.proxies.iter()
    }

    /// The snapshot the configurations were compiled from.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Compiles `proxy`, sharing services and outbound sides with the others compiled
    /// from the same snapshot.
    fn compile_one(&mut self, proxy: &ProxyId) {
        let sharing = Sharing {
            clusters: &self.shared,
            services: &self.services,
            egress: &self.egress,
            ingress: &self.ingress,
        };
        let (config, dependencies) = compile_sharing(&self.snapshot, proxy, Some(sharing));
        self.record(proxy.clone(), config, dependencies);
    }

    /// Keeps `config` as `proxy`'s, and indexes the resources it was compiled from.
    fn record(&mut self, proxy: ProxyId, config: ProxyConfig, dependencies: Dependencies) {
        if let Some(old) = self.proxies.insert(proxy.clone(), Arc::new(config)) {
            self.replaced.push(old);
        }
        let reads_as_before = match self.dependencies.remove(&proxy) {
            // A change of content, not of what is read: the index holds these already.
            Some(old) if old.same_reads_as(&dependencies) => true,
            Some(old) => {
                self.unindex(&proxy, &old);
                false
            }
            None => false,
        };
        if !reads_as_before {
            self.index(&proxy, &dependencies);
        }
        self.dependencies.insert(proxy, dependencies);
    }

    /// Indexes `proxy` under every resource it was compiled from.
    fn index(&mut self, proxy: &ProxyId, dependencies: &Dependencies) {
        for key in dependencies.distinct() {
            match self.dependents.get_mut(key) {
                Some(set) => {
                    if !set.contains(proxy) {
                        set.insert(proxy.clone());
                    }
                }
                None => {
                    self.dependents
                        .insert(key.clone(), FxHashSet::from_iter([proxy.clone()]));
                }
            }
        }
    }

    /// Removes `proxy` from the index entries of the resources it was compiled from.
    fn unindex(&mut self, proxy: &ProxyId, dependencies: &Dependencies) {
        for key in dependencies.distinct() {
            if let Some(set) = self.dependents.get_mut(key) {
                set.remove(proxy);
                if set.is_empty() {
                    self.dependents.remove(key);
                }
            }
        }
    }

    /// Frees the configurations the last updates replaced (those no stream holds).
    pub fn drop_replaced(&mut self) {
        self.replaced.clear();
    }

    /// Moves to `snapshot`, recompiling only the proxies whose inputs changed. Returns
    /// the proxies whose configuration was recompiled (including new ones).
    ///
    /// Nothing is kept of a pass that panics: the compiler stays at the snapshot it had
    /// (only its caches, which hold nothing a snapshot does not decide, may have moved),
    /// so the next update recompiles what this one could not.
    pub fn update(&mut self, snapshot: Arc<Snapshot>) -> BTreeSet<ProxyId> {
        self.drop_replaced();
        let changes = snapshot.changes_since(&self.snapshot);
        if !changes.is_empty() {
            self.shared.retain_current(&snapshot);
            self.ingress.retain_current(&snapshot);
        }
        let mut affected = BTreeSet::new();
        if self.scope == Scope::Every && self.proxies.is_empty() {
            affected.extend(all_proxies(&snapshot));
        }
        for change in &changes {
            let key = change.key();
            let seen_as = dependency_key(key);
            if let Some(dependents) = self.dependents.get(&seen_as) {
                affected.extend(dependents.iter().cloned());
            }
            match key.kind {
                ResourceKind::VirtualNode => {
                    affected.insert(ProxyId::virtual_node(&key.mesh, &key.name))
                }
                ResourceKind::VirtualGateway => {
                    affected.insert(ProxyId::virtual_gateway(&key.mesh, &key.name))
                }
                _ => false,
            };
        }
        if self.scope == Scope::Held {
            affected.retain(|proxy| self.proxies.contains_key(proxy));
        }
        // Services and outbound sides are shared within one update only: the next may
        // change any of them.
        let services = SharedServices::default();
        let egress = SharedEgress::default();
        let sharing = Sharing {
            clusters: &self.shared,
            services: &services,
            egress: &egress,
            ingress: &self.ingress,
        };
        let proxies: Vec<ProxyId> = affected.iter().cloned().collect();
        // Compiled before anything is kept, so that a panic leaves the previous state.
        let compiled = compile_many(&snapshot, &proxies, sharing);
        if !changes.is_empty() {
            self.services = services;
            self.egress = egress;
        }
        self.snapshot = snapshot;
        for (proxy, (config, dependencies)) in proxies.into_iter().zip(compiled) {
            self.record(proxy, config, dependencies);
        }
        affected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn apply(store: &Store, value: serde_json::Value) {
        crate::definition::put(store, &value).unwrap();
    }

    #[test]
    fn a_route_change_recompiles_only_the_proxies_that_reach_it() {
        let store = Store::in_memory(Default::default());
        apply(&store, serde_json::json!({"meshName": "m"}));
        for name in ["a", "b", "target"] {
            apply(
                &store,
                serde_json::json!({"meshName": "m", "virtualNodeName": name, "spec": {
                    "listeners": [{"portMapping": {"port": 80, "protocol": "http"}}],
                    "serviceDiscovery": {"dns": {"hostname": format!("{name}.local")}},
                    "backends": if name == "a" { serde_json::json!([{"virtualService": {"virtualServiceName": "svc"}}]) } else { serde_json::json!([]) }
                }}),
            );
        }
        apply(
            &store,
            serde_json::json!({"meshName": "m", "virtualRouterName": "r", "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}}),
        );
        let route = |weight: i64| {
            serde_json::json!({"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"httpRoute": {
            "match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "target", "weight": weight}]}}}})
        };
        apply(&store, route(1));
        apply(
            &store,
            serde_json::json!({"meshName": "m", "virtualServiceName": "svc", "spec": {"provider": {"virtualRouter": {"virtualRouterName": "r"}}}}),
        );
        let mut compiled = Compiled::new(store.snapshot());
        assert_eq!(compiled.proxies().count(), 3);
        let before = compiled.get(&ProxyId::virtual_node("m", "a"));

        apply(&store, route(2));
        let affected = compiled.update(store.snapshot());
        assert_eq!(affected, BTreeSet::from([ProxyId::virtual_node("m", "a")]));
        assert_ne!(compiled.get(&ProxyId::virtual_node("m", "a")), before);

        // Creating a node that no one uses compiles only that node.
        apply(
            &store,
            serde_json::json!({"meshName": "m", "virtualNodeName": "c", "spec": {}}),
        );
        let affected = compiled.update(store.snapshot());
        assert_eq!(affected, BTreeSet::from([ProxyId::virtual_node("m", "c")]));
    }

    #[test]
    fn on_demand_only_the_proxies_asked_for_are_kept_and_recompiled() {
        let store = Store::in_memory(Default::default());
        apply(&store, serde_json::json!({"meshName": "m"}));
        apply(
            &store,
            serde_json::json!({"meshName": "m", "virtualNodeName": "a", "spec": {}}),
        );
        apply(
            &store,
            serde_json::json!({"meshName": "m", "virtualNodeName": "b", "spec": {}}),
        );
        let mut compiled = Compiled::on_demand(store.snapshot());
        assert_eq!(
            compiled.len(),
            0,
            "nothing is compiled before it is asked for"
        );
        let a = ProxyId::virtual_node("m", "a");
        let phantom = ProxyId::virtual_node("m", "nobody");
        compiled.get(&a);
        compiled.get(&phantom);
        assert_eq!(compiled.len(), 2);

        // A change to the mesh reaches every proxy of it: only the kept ones recompile.
        apply(
            &store,
            serde_json::json!({"meshName": "m", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}}),
        );
        assert_eq!(
            compiled.update(store.snapshot()),
            BTreeSet::from([a.clone(), phantom.clone()])
        );
        assert!(compiled.release(&phantom));
        assert!(!compiled.release(&phantom));
        apply(
            &store,
            serde_json::json!({"meshName": "m", "spec": {"egressFilter": {"type": "DROP_ALL"}}}),
        );
        assert_eq!(compiled.update(store.snapshot()), BTreeSet::from([a]));
        assert_eq!(compiled.len(), 1);
    }
}
