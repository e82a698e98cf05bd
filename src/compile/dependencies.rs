//! The resources a proxy's configuration was compiled from: a change to any other
//! resource cannot change it. Those of the virtual services a proxy reaches are held
//! once per compiled service and shared by every proxy that absorbed it, rather than
//! copied into each proxy's set.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::model::ResourceKey;

/// A proxy's dependency set.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    /// What the proxy's own compilation read.
    own: BTreeSet<ResourceKey>,
    /// What compiling each service it absorbed read.
    services: Vec<Arc<BTreeSet<ResourceKey>>>,
}

impl Dependencies {
    /// Records that `key` was read.
    pub fn insert(&mut self, key: ResourceKey) {
        self.own.insert(key);
    }

    /// Records everything that compiling a service read.
    pub fn absorb(&mut self, service: &Arc<BTreeSet<ResourceKey>>) {
        if !self.services.iter().any(|s| Arc::ptr_eq(s, service)) {
            self.services.push(service.clone());
        }
    }

    /// Records everything that `other` (a part of the same proxy compiled apart) read.
    pub fn merge(&mut self, other: &Dependencies) {
        self.own.extend(other.own.iter().cloned());
        for service in &other.services {
            self.absorb(service);
        }
    }

    /// Every resource read; a resource may come more than once.
    pub fn keys(&self) -> impl Iterator<Item = &ResourceKey> {
        self.own
            .iter()
            .chain(self.services.iter().flat_map(|s| s.iter()))
    }

    /// Every resource read, once each.
    pub fn to_set(&self) -> BTreeSet<ResourceKey> {
        self.distinct().into_iter().cloned().collect()
    }

    /// Whether `other` was read from the same resources, told without building either
    /// set when the proxy's own reads and its services' are equal one by one (as they
    /// are when a change altered content, not what is read). `false` may be answered
    /// for equal sets read in another order.
    pub fn same_reads_as(&self, other: &Dependencies) -> bool {
        self.own == other.own
            && self.services.len() == other.services.len()
            && self
                .services
                .iter()
                .zip(&other.services)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }

    /// Every resource read, once each, borrowed.
    pub fn distinct(&self) -> BTreeSet<&ResourceKey> {
        self.keys().collect()
    }
}
