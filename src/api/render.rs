//! Writing resources as the API's output shapes: `*Data` for create, describe, update
//! and delete, and `*Ref` for list items.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
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

/// The `*Ref` shape of a list item, as a JSON value: what [`list_page`] writes without
/// building it, kept as the plain statement of the shape its test compares with.
#[cfg(test)]
fn reference(account: &Account, resource: &Resource) -> Value {
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

/// An answer already written as JSON bytes (`Content-Type: application/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBody(pub Vec<u8>);

impl axum::response::IntoResponse for JsonBody {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// A value of a `*Ref` member, written without an intermediate JSON tree.
enum RefValue<'a> {
    Str(&'a str),
    Arn(&'a Account, &'a ResourceKey),
    Seconds(f64),
    Int(i64),
}

impl Serialize for RefValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RefValue::Str(text) => serializer.serialize_str(text),
            RefValue::Arn(account, key) => serializer.collect_str(&ArnDisplay(account, key)),
            RefValue::Seconds(seconds) => serializer.serialize_f64(*seconds),
            RefValue::Int(number) => serializer.serialize_i64(*number),
        }
    }
}

/// The ARN of a resource as text, formatted straight into the output.
struct ArnDisplay<'a>(&'a Account, &'a ResourceKey);

impl std::fmt::Display for ArnDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ArnDisplay(account, key) = self;
        write!(
            f,
            "arn:aws:appmesh:{}:{}:mesh/{}",
            account.region, account.account_id, key.mesh
        )?;
        match key.kind {
            ResourceKind::Mesh => Ok(()),
            kind => {
                if let Some(parent) = kind.parent_kind() {
                    write!(f, "/{}/{}", parent.arn_segment(), key.parent)?;
                }
                write!(f, "/{}/{}", kind.arn_segment(), key.name)
            }
        }
    }
}

/// The `*Ref` shape of a list item, serialised with its members in the order a JSON
/// object of them is written in (by name), so that the bytes are those of
/// [`reference`]'s value.
struct Reference<'a> {
    account: &'a Account,
    resource: &'a Resource,
}

impl Serialize for Reference<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let key = &self.resource.key;
        let metadata = &self.resource.metadata;
        let owner = self.account.account_id.as_str();
        let mut members: [(&str, RefValue<'_>); 9] = [
            ("arn", RefValue::Arn(self.account, key)),
            (
                "createdAt",
                RefValue::Seconds(metadata.created_at.epoch_seconds()),
            ),
            (
                "lastUpdatedAt",
                RefValue::Seconds(metadata.last_updated_at.epoch_seconds()),
            ),
            ("meshName", RefValue::Str(&key.mesh)),
            ("meshOwner", RefValue::Str(owner)),
            ("resourceOwner", RefValue::Str(owner)),
            ("version", RefValue::Int(metadata.version)),
            // The parent's and the resource's own names; unused slots sort last and
            // are not written.
            ("~", RefValue::Int(0)),
            ("~", RefValue::Int(0)),
        ];
        let mut used = 7;
        if let Some(parent) = key.kind.parent_kind() {
            members[used] = (parent.name_field(), RefValue::Str(&key.parent));
            used += 1;
        }
        if key.kind != ResourceKind::Mesh {
            members[used] = (key.kind.name_field(), RefValue::Str(&key.name));
            used += 1;
        }
        let members = &mut members[..used];
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(members.len()))?;
        for (name, value) in members.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The items of a list page, as a JSON array of `*Ref`s.
struct References<'a> {
    account: &'a Account,
    resources: &'a [&'a Arc<Resource>],
}

impl Serialize for References<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.resources.iter().map(|resource| Reference {
            account: self.account,
            resource,
        }))
    }
}

/// A `List*` answer: the page's `*Ref`s under [`list_member`] of `kind`, and the
/// `nextToken` if more remain, written straight to JSON bytes (the same bytes as the
/// object of [`reference`] values would give).
pub fn list_page(
    account: &Account,
    kind: ResourceKind,
    resources: &[&Arc<Resource>],
    next_token: Option<&str>,
) -> JsonBody {
    let items = References { account, resources };
    let member = list_member(kind);
    // An object's members are written in name order; `nextToken` sorts before or after
    // the items' member depending on the kind.
    let mut out = Vec::with_capacity(64 + resources.len() * 320);
    let write = |out: &mut Vec<u8>| -> serde_json::Result<()> {
        let mut serializer = serde_json::Serializer::new(out);
        let mut map = serializer.serialize_map(Some(1 + usize::from(next_token.is_some())))?;
        match next_token {
            Some(token) if "nextToken" < member => {
                map.serialize_entry("nextToken", token)?;
                map.serialize_entry(member, &items)?;
            }
            Some(token) => {
                map.serialize_entry(member, &items)?;
                map.serialize_entry("nextToken", token)?;
            }
            None => map.serialize_entry(member, &items)?,
        }
        map.end()
    };
    write(&mut out).expect("list pages are plain data and always serialise; this is a bug");
    JsonBody(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::MeshSpec;
    use crate::model::{Metadata, Status, Timestamp};

    fn resource(key: ResourceKey, version: i64) -> Arc<Resource> {
        Arc::new(Resource {
            key,
            spec: Spec::Mesh(MeshSpec::default()),
            metadata: Metadata {
                uid: "4f1c0a52-3d7e-4b8e-9a77-2a5c1f0e9b11".into(),
                version,
                created_at: Timestamp(1_700_000_000_123),
                last_updated_at: Timestamp(1_700_000_456_789),
            },
            tags: Vec::new(),
            status: Status::Active,
        })
    }

    #[test]
    fn a_list_page_is_the_json_object_of_its_references() {
        let account = Account {
            region: "eu-west-1".into(),
            account_id: "111122223333".into(),
        };
        for kind in ResourceKind::ALL {
            let names = ["a", "b\"quoted\" \u{e9}", "c-3"];
            let items: Vec<Arc<Resource>> = names
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let key = match kind {
                        ResourceKind::Mesh => ResourceKey::mesh(*name),
                        kind => ResourceKey::child(
                            kind,
                            "m",
                            if kind.parent_kind().is_some() {
                                "p"
                            } else {
                                ""
                            },
                            *name,
                        ),
                    };
                    resource(key, index as i64 + 1)
                })
                .collect();
            let refs: Vec<&Arc<Resource>> = items.iter().collect();
            for next in [None, Some("bWVzaGQxOmM")] {
                let mut expected = Map::new();
                expected.insert(
                    list_member(kind).into(),
                    Value::Array(items.iter().map(|item| reference(&account, item)).collect()),
                );
                if let Some(next) = next {
                    expected.insert("nextToken".into(), json!(next));
                }
                let expected = serde_json::to_vec(&Value::Object(expected)).unwrap();
                let written = list_page(&account, kind, &refs, next).0;
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{kind}, next token {next:?}"
                );
            }
            assert_eq!(
                list_page(&account, kind, &[], None).0,
                format!("{{\"{}\":[]}}", list_member(kind)).into_bytes()
            );
        }
    }
}
