//! Mesh definition files: a JSON list of App Mesh resources in the API's own shapes
//! (each as `describe-*` prints it, wrapped as `{"virtualNode": {…}}` or not), loaded
//! into a store through the same validation as the API. Used by `meshd compile`, the
//! examples, the tests and the benchmarks.

use serde_json::Value;

use crate::model::validate::{FieldError, check_resource_name};
use crate::model::{ResourceKey, ResourceKind, Spec, rules};
use crate::store::{Store, StoreError, Write};

/// Why a definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The file is not a JSON list of objects.
    #[error("a mesh definition is a JSON list of App Mesh resources: {0}")]
    Shape(String),
    /// A resource cannot be read, or its names or spec are invalid.
    #[error("resource {index} ({key}): {source}")]
    Invalid {
        /// Position in the list.
        index: usize,
        /// Which resource.
        key: String,
        /// What is wrong.
        source: ResourceError,
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

/// The kind of resource an object in the API's shapes names: the most specific name
/// member present (`routeName` over `virtualRouterName` over `meshName`).
pub fn kind_of(object: &serde_json::Map<String, Value>) -> Option<ResourceKind> {
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

/// Why one resource of a definition cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// It is not a JSON object.
    #[error("a resource is a JSON object")]
    NotAnObject,
    /// No name member says what kind of resource it is.
    #[error("no meshName, virtualNodeName, … member names the resource")]
    NoKind,
    /// A name member it needs is missing.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A name or the spec breaks a rule of the API (the field path says which).
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

/// Why [`put`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The resource cannot be read.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The store refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses one resource into its key and validated spec (defaults filled in).
pub fn parse_resource(value: &Value) -> Result<(ResourceKey, Spec), ResourceError> {
    let mut object = value.as_object().ok_or(ResourceError::NotAnObject)?;
    for (wrapper, _) in WRAPPERS {
        if let Some(inner) = object.get(wrapper).and_then(Value::as_object) {
            object = inner;
        }
    }
    let kind = kind_of(object).ok_or(ResourceError::NoKind)?;
    let named = |field: &'static str| -> Result<&str, ResourceError> {
        let value = text(object, field).ok_or(ResourceError::Missing(field))?;
        check_resource_name(value, field)?;
        Ok(value)
    };
    let mesh = named("meshName")?;
    let name = named(kind.name_field())?;
    let key = match kind.parent_kind() {
        Some(parent) => ResourceKey::child(kind, mesh, named(parent.name_field())?, name),
        None if kind == ResourceKind::Mesh => ResourceKey::mesh(mesh),
        None => ResourceKey::in_mesh(kind, mesh, name),
    };
    let spec_value = object
        .get("spec")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mut spec = parse_spec(kind, spec_value)?;
    rules::validate_spec(&spec, "spec")?;
    rules::fill_defaults(&mut spec);
    Ok((key, spec))
}

fn parse_spec(kind: ResourceKind, value: Value) -> Result<Spec, FieldError> {
    fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, FieldError> {
        serde_path_to_error::deserialize(value)
            .map_err(|e| FieldError::new(format!("spec.{}", e.path()), e.inner().to_string()))
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
pub fn put(store: &Store, value: &Value) -> Result<ResourceKey, PutError> {
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
    store.apply(write, None)?;
    Ok(key)
}

/// Creates every resource of `definition` in `store`, in the order given (parents first).
pub fn load(store: &Store, definition: &Value) -> Result<usize, DefinitionError> {
    let items = definition
        .as_array()
        .ok_or_else(|| DefinitionError::Shape("the top level is not a list".into()))?;
    for (index, item) in items.iter().enumerate() {
        let (key, spec) = parse_resource(item).map_err(|source| DefinitionError::Invalid {
            index,
            key: item.to_string().chars().take(80).collect(),
            source,
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
