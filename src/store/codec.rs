//! How the durable backends (the embedded file and etcd) write a resource down: its key
//! as JSON (`{"mesh":…,"kind":…,"parent":…,"name":…}`) and the resource itself as JSON,
//! and how they read it back, refusing a resource stored under another's key.

use crate::model::{Resource, ResourceKey};

/// The stored form of `key`.
pub(super) fn encode_key(key: &ResourceKey) -> String {
    serde_json::to_string(key).expect("resource keys serialise")
}

/// The stored form of `resource`.
pub(super) fn encode_resource(resource: &Resource) -> Vec<u8> {
    serde_json::to_vec(resource).expect("resources serialise")
}

/// Reads back a stored key.
pub(super) fn decode_key(key: &str) -> Result<ResourceKey, String> {
    serde_json::from_str(key)
        .map_err(|err| format!("the resource key {key:?} cannot be read: {err}"))
}

/// Reads back a stored resource, which must be stored under its own key.
pub(super) fn decode_resource(key: &str, value: &[u8]) -> Result<Resource, String> {
    let stored_key = decode_key(key)?;
    let resource: Resource = serde_json::from_slice(value)
        .map_err(|err| format!("resource {stored_key} cannot be read: {err}"))?;
    if resource.key != stored_key {
        return Err(format!(
            "resource {} is stored under the key of {stored_key}",
            resource.key
        ));
    }
    Ok(resource)
}
