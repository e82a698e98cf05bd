//! Writing resources as the API's output shapes: `*Data` for create, describe, update
//! and delete, and `*Ref` for list items.

use serde_json::{Map, Value, json};

use crate::model::{Resource, ResourceKey, ResourceKind, Spec};

/// The account and region meshd answers as: they appear in ARNs and as the owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The region in ARNs (`us-east-1`).
    pub region: String,
    /// The 12-digit account id, `meshOwner` and `resourceOwner` of everything.
    pub account_id: String,
}

impl Account {
    /// The full ARN of `key`.
    pub fn arn(&self, key: &ResourceKey) -> String {
        format!(
            "arn:aws:appmesh:{}:{}:{}",
            self.region,
            self.account_id,
            key.arn_resource()
        )
    }

    /// The key an ARN of this account and region names, if it names one.
    pub fn parse_arn(&self, arn: &str) -> Option<ResourceKey> {
        let prefix = format!("arn:aws:appmesh:{}:{}:", self.region, self.account_id);
        ResourceKey::from_arn_resource(arn.strip_prefix(&prefix)?)
    }
}

/// The names that identify a resource in its output shapes: `meshName`, plus the
/// parent's name and the resource's own name under their JSON members.
fn names(key: &ResourceKey) -> Map<String, Value> {
    let mut names = Map::new();
    names.insert("meshName".into(), Value::String(key.mesh.clone()));
    if let Some(parent) = key.kind.parent_kind() {
        names.insert(
            parent.name_field().into(),
            Value::String(key.parent.clone()),
        );
    }
    if key.kind != ResourceKind::Mesh {
        names.insert(
            key.kind.name_field().into(),
            Value::String(key.name.clone()),
        );
    }
    names
}

fn spec_json(spec: &Spec) -> Value {
    let value = match spec {
        Spec::Mesh(spec) => serde_json::to_value(spec),
        Spec::VirtualNode(spec) => serde_json::to_value(spec),
        Spec::VirtualRouter(spec) => serde_json::to_value(spec),
        Spec::Route(spec) => serde_json::to_value(spec),
        Spec::VirtualService(spec) => serde_json::to_value(spec),
        Spec::VirtualGateway(spec) => serde_json::to_value(spec),
        Spec::GatewayRoute(spec) => serde_json::to_value(spec),
    };
    value.expect("specs are plain data and always serialise; this is a bug")
}

/// The `*Data` shape: names, metadata, spec and status.
pub fn data(account: &Account, resource: &Resource) -> Value {
    let mut out = names(&resource.key);
    let metadata = &resource.metadata;
    out.insert(
        "metadata".into(),
        json!({
            "arn": account.arn(&resource.key),
            "createdAt": metadata.created_at.epoch_seconds(),
            "lastUpdatedAt": metadata.last_updated_at.epoch_seconds(),
            "meshOwner": account.account_id,
            "resourceOwner": account.account_id,
            "uid": metadata.uid,
            "version": metadata.version,
        }),
    );
    out.insert("spec".into(), spec_json(&resource.spec));
    out.insert(
        "status".into(),
        json!({ "status": resource.status.as_str() }),
    );
    Value::Object(out)
}

/// The `*Ref` shape of a list item.
pub fn reference(account: &Account, resource: &Resource) -> Value {
    let mut out = names(&resource.key);
    let metadata = &resource.metadata;
    out.insert("arn".into(), Value::String(account.arn(&resource.key)));
    out.insert(
        "createdAt".into(),
        json!(metadata.created_at.epoch_seconds()),
    );
    out.insert(
        "lastUpdatedAt".into(),
        json!(metadata.last_updated_at.epoch_seconds()),
    );
    out.insert(
        "meshOwner".into(),
        Value::String(account.account_id.clone()),
    );
    out.insert(
        "resourceOwner".into(),
        Value::String(account.account_id.clone()),
    );
    out.insert("version".into(), json!(metadata.version));
    Value::Object(out)
}

/// The member of a list output that holds the items (`virtualNodes`), also the
/// collection's path segment.
pub fn list_member(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Mesh => "meshes",
        ResourceKind::VirtualNode => "virtualNodes",
        ResourceKind::VirtualRouter => "virtualRouters",
        ResourceKind::Route => "routes",
        ResourceKind::VirtualService => "virtualServices",
        ResourceKind::VirtualGateway => "virtualGateways",
        ResourceKind::GatewayRoute => "gatewayRoutes",
    }
}
