//! What a proxy is served: its compiled configuration, encoded once into xDS resources
//! whose bytes are shared (by `Arc`) with every stream, and every other proxy, that
//! gets the same resource.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::compile::{ProxyConfig, ResourceType};

/// One encoded xDS resource.
#[derive(Debug, PartialEq, Eq)]
pub struct XdsResource {
    /// The resource's name.
    pub name: String,
    /// Its content version (a hash of its bytes).
    pub version: String,
    /// The protobuf encoding of the resource message.
    pub bytes: Vec<u8>,
}

/// The resources of one type that a proxy is served, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeSnapshot {
    /// Resources by name.
    pub resources: BTreeMap<String, Arc<XdsResource>>,
}

impl TypeSnapshot {
    /// The version of the resources `names` select (all of them for `None`): a hash of
    /// their names and versions, so equal content has an equal version in every process.
    pub fn version_of<'a>(
        &'a self,
        selected: impl Iterator<Item = &'a Arc<XdsResource>>,
    ) -> String {
        let mut hasher = Sha256::new();
        for resource in selected {
            hasher.update(resource.name.as_bytes());
            hasher.update([0]);
            hasher.update(resource.version.as_bytes());
            hasher.update([0]);
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

/// Everything one proxy is served, by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySnapshot {
    /// Clusters, endpoints, listeners and route configurations.
    pub types: BTreeMap<ResourceType, TypeSnapshot>,
    /// What the compiler left out, and why.
    pub diagnostics: Vec<String>,
    /// Whether the proxy's resource exists; nothing is sent while it does not.
    pub exists: bool,
}

impl ProxySnapshot {
    /// The resources of `kind`.
    pub fn of(&self, kind: ResourceType) -> &TypeSnapshot {
        static EMPTY: std::sync::OnceLock<TypeSnapshot> = std::sync::OnceLock::new();
        self.types
            .get(&kind)
            .unwrap_or_else(|| EMPTY.get_or_init(TypeSnapshot::default))
    }
}

/// Shares encoded resources: a resource with the same type, name and version is held
/// once, however many proxies are served it.
#[derive(Debug, Default)]
pub struct Interner {
    resources: Mutex<HashMap<(ResourceType, String, String), Weak<XdsResource>>>,
}

impl Interner {
    /// Encodes `config` into a snapshot, reusing resources already held.
    pub fn snapshot(&self, config: &ProxyConfig) -> ProxySnapshot {
        let mut types = BTreeMap::new();
        let mut held = self.resources.lock();
        for kind in ResourceType::ALL {
            let mut resources = BTreeMap::new();
            for encoded in config.encoded(kind) {
                let key = (kind, encoded.name.clone(), encoded.version.clone());
                let shared = held.get(&key).and_then(Weak::upgrade).unwrap_or_else(|| {
                    let fresh = Arc::new(XdsResource {
                        name: encoded.name.clone(),
                        version: encoded.version.clone(),
                        bytes: encoded.bytes,
                    });
                    held.insert(key, Arc::downgrade(&fresh));
                    fresh
                });
                resources.insert(encoded.name, shared);
            }
            types.insert(kind, TypeSnapshot { resources });
        }
        if held.len() > 1024 && held.len().is_multiple_of(1024) {
            held.retain(|_, weak| weak.strong_count() > 0);
        }
        ProxySnapshot {
            types,
            diagnostics: config.diagnostics.clone(),
            exists: config.exists,
        }
    }

    /// How many distinct resources are held.
    pub fn len(&self) -> usize {
        let mut held = self.resources.lock();
        held.retain(|_, weak| weak.strong_count() > 0);
        held.len()
    }

    /// Whether no resource is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
