//! The 35 resource operations (create, describe, update, delete and list of the seven
//! kinds), written once over the kind: the kinds differ only in names, paths and specs.

use axum::Json;
use serde_json::Value;

use crate::model::{ResourceKey, ResourceKind};
use crate::store::{Idempotency, Write};

use super::App;
use super::error::ApiError;
use super::pagination;
use super::render;
use super::request::{Body, Query, check_name, take_spec, take_tags};

/// Where an operation acts: a kind of resource in a mesh, under a router or gateway for
/// routes and gateway routes.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The kind of resource.
    pub kind: ResourceKind,
    /// The mesh (empty for listing or creating meshes).
    pub mesh: String,
    /// The router or gateway of a route or gateway route; empty otherwise.
    pub parent: String,
}

impl Scope {
    fn key(&self, name: &str) -> ResourceKey {
        match self.kind {
            ResourceKind::Mesh => ResourceKey::mesh(name),
            kind => ResourceKey::child(kind, self.mesh.clone(), self.parent.clone(), name),
        }
    }

    /// Checks the names in the path against the model's lengths.
    fn check_path_names(&self) -> Result<(), ApiError> {
        if self.kind != ResourceKind::Mesh {
            check_name(&self.mesh, "meshName")?;
        }
        if let Some(parent) = self.kind.parent_kind() {
            check_name(&self.parent, parent.name_field())?;
        }
        Ok(())
    }

    /// Checks the path names and the resource's own name (a path label too) against the
    /// model's lengths.
    fn check_item_path_names(&self, name: &str) -> Result<(), ApiError> {
        self.check_path_names()?;
        check_name(name, self.kind.name_field())
    }
}

/// A mesh owner other than meshd's own account has no meshes here.
fn check_owner(app: &App, scope: &Scope, query: &Query) -> Result<(), ApiError> {
    match query.mesh_owner()? {
        Some(owner) if owner != app.account.account_id => {
            Err(crate::store::StoreError::NotFound(ResourceKey::mesh(scope.mesh.clone())).into())
        }
        _ => Ok(()),
    }
}

fn idempotency(
    token: Option<String>,
    body: &Body,
    operation: &str,
    key: &ResourceKey,
) -> Option<Idempotency> {
    token.map(|token| Idempotency {
        fingerprint: body.fingerprint(operation, &key.arn_resource()),
        token,
    })
}

/// `Create*`: a `PUT` to the collection.
pub fn create(
    app: &App,
    scope: Scope,
    query: &Query,
    bytes: &[u8],
) -> Result<Json<Value>, ApiError> {
    scope.check_path_names()?;
    check_owner(app, &scope, query)?;
    let name_field = scope.kind.name_field();
    let mut body = Body::parse(bytes, &["clientToken", name_field, "spec", "tags"])?;
    let fingerprint_body = body.clone();
    let token = body.client_token()?;
    let name: String = body.require(name_field)?;
    check_name(&name, name_field)?;
    let spec = take_spec(&mut body, scope.kind)?;
    let tags = take_tags(&mut body, "tags")?;
    let key = scope.key(&name);
    let idempotency = idempotency(token, &fingerprint_body, "create", &key);
    let resource = app
        .store
        .apply(Write::Create { key, spec, tags }, idempotency)?;
    Ok(Json(render::data(&app.account, &resource)))
}

/// `Describe*`: a `GET` of the item.
pub fn describe(
    app: &App,
    scope: Scope,
    name: &str,
    query: &Query,
) -> Result<Json<Value>, ApiError> {
    scope.check_item_path_names(name)?;
    check_owner(app, &scope, query)?;
    let key = scope.key(name);
    let snapshot = app.store.snapshot();
    if let Some(parent) = key.parent_key()
        && snapshot.get(&parent).is_none()
    {
        return Err(crate::store::StoreError::NotFound(parent).into());
    }
    match snapshot.get(&key) {
        Some(resource) => Ok(Json(render::data(&app.account, resource))),
        None => {
            let mesh = key.mesh_key();
            let missing = if snapshot.get(&mesh).is_none() {
                mesh
            } else {
                key
            };
            Err(crate::store::StoreError::NotFound(missing).into())
        }
    }
}

/// `Update*`: a `PUT` to the item.
pub fn update(
    app: &App,
    scope: Scope,
    name: &str,
    query: &Query,
    bytes: &[u8],
) -> Result<Json<Value>, ApiError> {
    scope.check_item_path_names(name)?;
    check_owner(app, &scope, query)?;
    let mut body = Body::parse(bytes, &["clientToken", "spec"])?;
    let fingerprint_body = body.clone();
    let token = body.client_token()?;
    let spec = take_spec(&mut body, scope.kind)?;
    let key = scope.key(name);
    let idempotency = idempotency(token, &fingerprint_body, "update", &key);
    let resource = app.store.apply(Write::Update { key, spec }, idempotency)?;
    Ok(Json(render::data(&app.account, &resource)))
}

/// `Delete*`: a `DELETE` of the item; answers with the resource, status `DELETED`.
pub fn delete(app: &App, scope: Scope, name: &str, query: &Query) -> Result<Json<Value>, ApiError> {
    scope.check_item_path_names(name)?;
    check_owner(app, &scope, query)?;
    let resource = app.store.apply(
        Write::Delete {
            key: scope.key(name),
        },
        None,
    )?;
    Ok(Json(render::data(&app.account, &resource)))
}

/// `List*`: a `GET` of the collection, in name order, `limit` (1 to 100) at a time.
pub fn list(app: &App, scope: Scope, query: &Query) -> Result<render::JsonBody, ApiError> {
    scope.check_path_names()?;
    check_owner(app, &scope, query)?;
    let limit = query.limit(100)?;
    let after = query.get("nextToken").map(pagination::decode).transpose()?;
    let snapshot = app.store.snapshot();
    let (items, next) = if scope.kind == ResourceKind::Mesh {
        let meshes = snapshot.meshes().filter(|mesh| {
            after
                .as_deref()
                .is_none_or(|after| mesh.key.name.as_str() > after)
        });
        pagination::page(meshes, limit, |mesh| mesh.key.name.clone())
    } else {
        if snapshot
            .get(&ResourceKey::mesh(scope.mesh.clone()))
            .is_none()
        {
            return Err(
                crate::store::StoreError::NotFound(ResourceKey::mesh(scope.mesh.clone())).into(),
            );
        }
        if let Some(parent) = scope.kind.parent_kind() {
            let parent = ResourceKey::in_mesh(parent, scope.mesh.clone(), scope.parent.clone());
            if snapshot.get(&parent).is_none() {
                return Err(crate::store::StoreError::NotFound(parent).into());
            }
        }
        let items = snapshot.list(&scope.mesh, scope.kind, &scope.parent, after.as_deref());
        pagination::page(items, limit, |resource| resource.key.name.clone())
    };
    Ok(render::list_page(
        &app.account,
        scope.kind,
        &items,
        next.as_deref(),
    ))
}
