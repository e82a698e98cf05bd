//! Mesh definition files: a JSON list of App Mesh resources in the API's own shapes
//! (each as `describe-*` prints it, wrapped as `{"virtualNode": {…}}` or not), loaded
//! into a store through the same validation as the API. Used by `meshd compile`, the
//! examples, the tests and the benchmarks.

use serde_json::Value;

use crate::model::validate::check_resource_name;
use crate::model::{ResourceKey, ResourceKind, Spec, rules};
use crate::store::{Store, StoreError, Write};

/// Why a definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The file is not a JSON list of objects.
    #[error("a mesh definition is a JSON list of App Mesh resources: {0}")]
    Shape(String),
    /// A resource's spec is invalid.
    #[error("resource {index} ({key}): {message}")]
    Invalid {
        /// Position in the list.
        index: usize,
        /// Which resource.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The store refused a resource.
    #[error("resource {index} ({key}): {source}")]
    Store {
        /// Position in the list.
        index: usize,
        /// Which resource.
        key: String,
        /// The store's reason.
        source: StoreError,
    },
}

const WRAPPERS: [(&str, ResourceKind); 7] = [
    ("mesh", ResourceKind::Mesh),
    ("virtualNode", ResourceKind::VirtualNode),
    ("virtualRouter", ResourceKind::VirtualRouter),
    ("route", ResourceKind::Route),
    ("virtualService", ResourceKind::VirtualService),
    ("virtualGateway", ResourceKind::VirtualGateway),
    ("gatewayRoute", ResourceKind::GatewayRoute),
];

fn kind_of(object: &serde_json::Map<String, Value>) -> Option<ResourceKind> {
    // The most specific name member decides: a route carries meshName, virtualRouterName and routeName.
    [
        ResourceKind::Route,
        ResourceKind::GatewayRoute,
        ResourceKind::VirtualNode,
        ResourceKind::VirtualRouter,
        ResourceKind::VirtualService,
        ResourceKind::VirtualGateway,
        ResourceKind::Mesh,
    ]
    .into_iter()
    .find(|kind| object.contains_key(kind.name_field()))
}

fn text<'a>(object: &'a serde_json::Map<String, Value>, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str)
}

/// Parses one resource into its key and validated spec (defaults filled in).
pub fn parse_resource(value: &Value) -> Result<(ResourceKey, Spec), String> {
    let mut object = value.as_object().ok_or("a resource is a JSON object")?;
    for (wrapper, _) in WRAPPERS {
        if let Some(inner) = object.get(wrapper).and_then(Value::as_object) {
            object = inner;
        }
    }
    let kind =
        kind_of(object).ok_or("no meshName, virtualNodeName, … member names the resource")?;
    let mesh = text(object, "meshName").ok_or("meshName is missing")?;
    let name = text(object, kind.name_field()).ok_or("the resource's name is missing")?;
    let named =
        |value: &str, field: &str| check_resource_name(value, field).map_err(|err| err.to_string());
    named(mesh, "meshName")?;
    named(name, kind.name_field())?;
    let key = match kind.parent_kind() {
        Some(parent) => {
            let parent_name =
                text(object, parent.name_field()).ok_or("the parent's name is missing")?;
            named(parent_name, parent.name_field())?;
            ResourceKey::child(kind, mesh, parent_name, name)
        }
        None if kind == ResourceKind::Mesh => ResourceKey::mesh(mesh),
        None => ResourceKey::in_mesh(kind, mesh, name),
    };
    let spec_value = object
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut spec = parse_spec(kind, spec_value)?;
    rules::validate_spec(&spec, "spec").map_err(|e| e.to_string())?;
    rules::fill_defaults(&mut spec);
    Ok((key, spec))
}

fn parse_spec(kind: ResourceKind, value: Value) -> Result<Spec, String> {
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
        serde_path_to_error::deserialize(value)
            .map_err(|e| format!("spec.{}: {}", e.path(), e.inner()))
    }
    Ok(match kind {
        ResourceKind::Mesh => Spec::Mesh(typed(value)?),
        ResourceKind::VirtualNode => Spec::VirtualNode(typed(value)?),
        ResourceKind::VirtualRouter => Spec::VirtualRouter(typed(value)?),
        ResourceKind::Route => Spec::Route(typed(value)?),
        ResourceKind::VirtualService => Spec::VirtualService(typed(value)?),
        ResourceKind::VirtualGateway => Spec::VirtualGateway(typed(value)?),
        ResourceKind::GatewayRoute => Spec::GatewayRoute(typed(value)?),
    })
}

/// Creates the resource `value` describes (in the definition format), or replaces the
/// spec of the existing one; returns its key.
pub fn put(store: &Store, value: &Value) -> Result<ResourceKey, String> {
    let (key, spec) = parse_resource(value)?;
    let write = if store.snapshot().get(&key).is_some() {
        Write::Update {
            key: key.clone(),
            spec,
        }
    } else {
        Write::Create {
            key: key.clone(),
            spec,
            tags: Vec::new(),
        }
    };
    store.apply(write, None).map_err(|err| err.to_string())?;
    Ok(key)
}

/// Creates every resource of `definition` in `store`, in the order given (parents first).
pub fn load(store: &Store, definition: &Value) -> Result<usize, DefinitionError> {
    let items = definition
        .as_array()
        .ok_or_else(|| DefinitionError::Shape("the top level is not a list".into()))?;
    for (index, item) in items.iter().enumerate() {
        let (key, spec) = parse_resource(item).map_err(|message| DefinitionError::Invalid {
            index,
            key: item.to_string().chars().take(80).collect(),
            message,
        })?;
        let label = key.to_string();
        store
            .apply(
                Write::Create {
                    key,
                    spec,
                    tags: Vec::new(),
                },
                None,
            )
            .map_err(|source| DefinitionError::Store {
                index,
                key: label,
                source,
            })?;
    }
    Ok(items.len())
}
