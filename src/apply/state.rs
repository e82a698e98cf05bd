//! What meshd holds in a mesh, read through the API (list and describe every resource).

use serde_json::Value;

use super::client::{Client, ClientError};
use crate::model::{ResourceKey, ResourceKind, Spec};

/// One resource as meshd describes it.
#[derive(Debug, Clone)]
pub struct Actual {
    /// Which resource.
    pub key: ResourceKey,
    /// Its spec, as described.
    pub spec: Spec,
    /// Its ARN.
    pub arn: String,
    /// Its version.
    pub version: i64,
}

/// The spec of a typed `Spec` as JSON in the API's shapes.
pub fn spec_value(spec: &Spec) -> Value {
    // `Spec` is adjacently tagged: {"kind": …, "spec": {…}}.
    let mut tagged = serde_json::to_value(spec).expect("specs are plain data and serialise");
    tagged["spec"].take()
}

/// Describes `key`, or `None` if meshd does not hold it.
pub async fn describe(client: &Client, key: &ResourceKey) -> Result<Option<Actual>, ClientError> {
    let Some(value) = client.describe(key).await? else {
        return Ok(None);
    };
    let answer = |message: String| ClientError::Answer {
        url: key.to_string(),
        message,
    };
    let (described, spec) =
        crate::definition::parse_resource(&value).map_err(|e| answer(e.to_string()))?;
    let arn = value
        .pointer("/metadata/arn")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = value
        .pointer("/metadata/version")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    Ok(Some(Actual {
        key: described,
        spec,
        arn,
        version,
    }))
}

/// Every resource of `mesh` (the mesh first, then kind by kind, parents before their
/// routes), or `None` if there is no such mesh.
pub async fn read_mesh(client: &Client, mesh: &str) -> Result<Option<Vec<Actual>>, ClientError> {
    let Some(mesh_resource) = describe(client, &ResourceKey::mesh(mesh)).await? else {
        return Ok(None);
    };
    let mut out = vec![mesh_resource];
    for kind in [
        ResourceKind::VirtualNode,
        ResourceKind::VirtualRouter,
        ResourceKind::VirtualGateway,
        ResourceKind::VirtualService,
    ] {
        for name in client.list(kind, mesh, "").await? {
            if let Some(actual) = describe(client, &ResourceKey::in_mesh(kind, mesh, &name)).await?
            {
                out.push(actual);
            }
            if let Some(child) = kind.child_kind() {
                for child_name in client.list(child, mesh, &name).await? {
                    let key = ResourceKey::child(child, mesh, &name, child_name);
                    if let Some(actual) = describe(client, &key).await? {
                        out.push(actual);
                    }
                }
            }
        }
    }
    Ok(Some(out))
}

/// The account id in an App Mesh ARN (`arn:aws:appmesh:region:account:…`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}
