//! Referential integrity: the rules that tie one resource to others. A resource names
//! only resources that exist, and nothing that is named can be deleted.

use crate::model::rules::{
    gateway_route_target, listener_ports, match_port, route_targets, validate_spec,
};
use crate::model::{FieldError, ResourceKey, ResourceKind, Spec, Status};

use super::{Snapshot, StoreError};

/// The mesh of `key` exists, and so does the router or gateway of a route.
pub(super) fn check_parents(current: &Snapshot, key: &ResourceKey) -> Result<(), StoreError> {
    if key.kind == ResourceKind::Mesh {
        return Ok(());
    }
    let mesh = key.mesh_key();
    if current.get(&mesh).is_none() {
        return Err(StoreError::NotFound(mesh));
    }
    if let Some(parent) = key.parent_key()
        && current.get(&parent).is_none()
    {
        return Err(StoreError::NotFound(parent));
    }
    Ok(())
}

/// Everything `spec` names exists, and its ports agree with its parent's listeners.
pub(super) fn check_references(
    current: &Snapshot,
    key: &ResourceKey,
    spec: &Spec,
) -> Result<(), StoreError> {
    let must_exist = |kind: ResourceKind, name: &str| {
        let referenced = ResourceKey::in_mesh(kind, key.mesh.clone(), name);
        match current.get(&referenced) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(referenced)),
        }
    };
    match spec {
        Spec::VirtualService(service) => {
            if let Some(provider) = &service.provider {
                if let Some(node) = &provider.virtual_node {
                    must_exist(ResourceKind::VirtualNode, &node.virtual_node_name)?;
                }
                if let Some(router) = &provider.virtual_router {
                    must_exist(ResourceKind::VirtualRouter, &router.virtual_router_name)?;
                }
            }
        }
        Spec::Route(route) => {
            for target in route_targets(route) {
                must_exist(ResourceKind::VirtualNode, target)?;
            }
            check_match_port(current, key, spec)?;
        }
        Spec::GatewayRoute(route) => {
            if let Some(service) = gateway_route_target(route) {
                must_exist(ResourceKind::VirtualService, service)?;
            }
            check_match_port(current, key, spec)?;
        }
        Spec::VirtualRouter(_) | Spec::VirtualGateway(_) => {
            check_children_ports(current, key, spec)?
        }
        Spec::Mesh(_) | Spec::VirtualNode(_) => {}
    }
    Ok(())
}

/// A route's match names a port of its parent's listeners, and must name one when the
/// parent has several listeners.
fn check_match_port(current: &Snapshot, key: &ResourceKey, spec: &Spec) -> Result<(), StoreError> {
    let Some(parent) = key
        .parent_key()
        .and_then(|parent| current.get(&parent).cloned())
    else {
        return Ok(());
    };
    let ports = listener_ports(&parent.spec);
    let Some((port, path)) = match_port(spec) else {
        return Ok(());
    };
    match port {
        None if ports.len() > 1 => Err(StoreError::Invalid(FieldError::new(
            path,
            format!(
                "must be set: all {}s of {} {} must name a port because it has more than one listener",
                key.kind.words(),
                parent.key.kind.words(),
                parent.key.name
            ),
        ))),
        Some(port) if !ports.contains(&port) => Err(StoreError::Invalid(FieldError::new(
            path,
            format!(
                "port {port} is not a listener port of {} {}",
                parent.key.kind.words(),
                parent.key.name
            ),
        ))),
        _ => Ok(()),
    }
}

/// A router or gateway whose listeners change keeps its routes valid.
fn check_children_ports(
    current: &Snapshot,
    key: &ResourceKey,
    spec: &Spec,
) -> Result<(), StoreError> {
    let Some(child_kind) = key.kind.child_kind() else {
        return Ok(());
    };
    let ports = listener_ports(spec);
    for child in current.list(&key.mesh, child_kind, &key.name, None) {
        let Some((port, _)) = match_port(&child.spec) else {
            continue;
        };
        let broken = match port {
            None => ports.len() > 1,
            Some(port) => !ports.contains(&port),
        };
        if broken {
            return Err(StoreError::Invalid(FieldError::new(
                "spec.listeners",
                format!(
                    "{} {} must name one of these listener ports in its match; every {} must when there is more than one listener",
                    child_kind.words(),
                    child.key.name,
                    child_kind.words()
                ),
            )));
        }
    }
    Ok(())
}

/// Nothing depends on `key`: no resource lives under it or names it.
pub(super) fn check_unused(current: &Snapshot, key: &ResourceKey) -> Result<(), StoreError> {
    let in_use = |user: &ResourceKey| {
        Err(StoreError::InUse {
            resource: Box::new(key.clone()),
            user: Box::new(user.clone()),
        })
    };
    match key.kind {
        ResourceKind::Mesh => {
            if let Some(child) = current.mesh_contents(&key.mesh).next() {
                return in_use(&child.key);
            }
        }
        ResourceKind::VirtualRouter | ResourceKind::VirtualGateway => {
            let child_kind = key
                .kind
                .child_kind()
                .expect("routers and gateways have routes");
            if let Some(child) = current.list(&key.mesh, child_kind, &key.name, None).next() {
                return in_use(&child.key);
            }
        }
        _ => {}
    }
    for resource in current.mesh_contents(&key.mesh) {
        let names_it = match (&resource.spec, key.kind) {
            (Spec::VirtualService(service), ResourceKind::VirtualNode) => service
                .provider
                .as_ref()
                .and_then(|p| p.virtual_node.as_ref())
                .is_some_and(|node| node.virtual_node_name == key.name),
            (Spec::VirtualService(service), ResourceKind::VirtualRouter) => service
                .provider
                .as_ref()
                .and_then(|p| p.virtual_router.as_ref())
                .is_some_and(|router| router.virtual_router_name == key.name),
            (Spec::Route(route), ResourceKind::VirtualNode) => {
                route_targets(route).contains(&key.name.as_str())
            }
            (Spec::GatewayRoute(route), ResourceKind::VirtualService) => {
                gateway_route_target(route) == Some(key.name.as_str())
            }
            _ => false,
        };
        if names_it {
            return in_use(&resource.key);
        }
    }
    Ok(())
}

/// A restored snapshot that breaks a rule every committed write keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct Inconsistency {
    /// The resource at fault.
    pub key: ResourceKey,
    /// What is wrong with it.
    pub reason: String,
}

impl Snapshot {
    /// Checks what [`Snapshot::restore`] built: every resource is active, has a valid spec of its kind, at most [`MAX_TAGS`](super::MAX_TAGS) tags
    /// and a version of at least 1, and satisfies referential integrity (its mesh and
    /// parent exist, everything it names exists, its ports agree with its parent's).
    pub fn check_consistent(&self) -> Result<(), Inconsistency> {
        for (key, resource) in &self.resources {
            let fail = |reason: String| {
                Err(Inconsistency {
                    key: key.clone(),
                    reason,
                })
            };
            if resource.spec.kind() != key.kind {
                return fail(format!(
                    "has the spec of a {}",
                    resource.spec.kind().words()
                ));
            }
            if resource.status != Status::Active {
                return fail(format!("has status {}", resource.status.as_str()));
            }
            if resource.metadata.version < 1 {
                return fail(format!("has version {}", resource.metadata.version));
            }
            if resource.tags.len() > super::MAX_TAGS {
                return fail(format!("has {} tags", resource.tags.len()));
            }
            if let Err(err) = validate_spec(&resource.spec, "spec") {
                return fail(format!("invalid spec: {err}"));
            }
            if let Err(err) =
                check_parents(self, key).and_then(|()| check_references(self, key, &resource.spec))
            {
                return fail(err.to_string());
            }
        }
        Ok(())
    }
}
