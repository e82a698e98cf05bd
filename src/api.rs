//! The App Mesh control-plane API (version 2019-01-25) on the AWS restJson1 protocol:
//! the routes, the shared state, and the response headers every answer carries.

mod auth;
mod credentials;
mod duplicates;
mod error;
mod limits;
mod pagination;
mod path;
mod render;
mod request;
mod resources;
mod sigv4;
mod tags;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};

use crate::model::ResourceKind;
use crate::store::Store;

pub use auth::{Authentication, Verifier};
pub use credentials::{Credentials, CredentialsError};
pub use error::{ApiError, ErrorType};
pub use render::Account;
/// A resource as the Describe operations render it (for the console).
pub use render::data as describe_data;
pub use render::list_member;
use request::Query;
use resources::Scope;

/// What every handler shares: the store and the account meshd answers as.
#[derive(Clone)]
pub struct App {
    /// The resource store.
    pub store: Arc<Store>,
    /// Region and account id, for ARNs and owners.
    pub account: Arc<Account>,
}

/// The collection segment of a resource kind that lives directly in a mesh.
fn mesh_collection(segment: &str) -> Result<ResourceKind, ApiError> {
    match segment {
        "virtualNodes" => Ok(ResourceKind::VirtualNode),
        "virtualRouters" => Ok(ResourceKind::VirtualRouter),
        "virtualServices" => Ok(ResourceKind::VirtualService),
        "virtualGateways" => Ok(ResourceKind::VirtualGateway),
        _ => Err(unknown_operation()),
    }
}

fn unknown_operation() -> ApiError {
    ApiError::new(
        ErrorType::UnknownOperation,
        "no App Mesh operation has this method and path",
    )
}

/// Answers a request with `handle`. One that `writes` runs on a blocking thread: a write
/// waits for the store's backend (with the embedded store, for the disk), and must not
/// hold up the async workers that serve every other request and the xDS streams.
async fn respond(writes: bool, handle: impl FnOnce() -> Response + Send + 'static) -> Response {
    if !writes {
        return handle();
    }
    match tokio::task::spawn_blocking(handle).await {
        Ok(response) => response,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => {
            ApiError::new(ErrorType::ServiceUnavailable, "meshd is shutting down").into_response()
        }
    }
}

fn scope(kind: ResourceKind, mesh: String, parent: String) -> Scope {
    Scope { kind, mesh, parent }
}

async fn mesh_collection_ops(
    State(app): State<App>,
    method: Method,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        let scope = scope(ResourceKind::Mesh, String::new(), String::new());
        match method {
            Method::PUT => resources::create(&app, scope, &query, &body).into_response(),
            _ => resources::list(&app, scope, &query).into_response(),
        }
    })
    .await
}

async fn mesh_item_ops(
    State(app): State<App>,
    method: Method,
    Path(mesh): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        item(
            &app,
            method,
            scope(ResourceKind::Mesh, mesh.clone(), String::new()),
            &mesh,
            &query,
            &body,
        )
    })
    .await
}

async fn child_collection_ops(
    State(app): State<App>,
    method: Method,
    Path((mesh, segment)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        let kind = match mesh_collection(&segment) {
            Ok(kind) => kind,
            Err(err) => return err.into_response(),
        };
        collection(
            &app,
            method,
            scope(kind, mesh, String::new()),
            &query,
            &body,
        )
    })
    .await
}

async fn child_item_ops(
    State(app): State<App>,
    method: Method,
    Path((mesh, segment, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        let kind = match mesh_collection(&segment) {
            Ok(kind) => kind,
            Err(err) => return err.into_response(),
        };
        item(
            &app,
            method,
            scope(kind, mesh, String::new()),
            &name,
            &query,
            &body,
        )
    })
    .await
}

/// `GET`/`PUT` on the routes of a virtual router, or the gateway routes of a virtual
/// gateway (`kind`): list or create.
async fn nested_collection_ops(
    kind: ResourceKind,
    State(app): State<App>,
    method: Method,
    Path((mesh, parent)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        collection(&app, method, scope(kind, mesh, parent), &query, &body)
    })
    .await
}

/// `GET`/`PUT`/`DELETE` on one route or gateway route (`kind`).
async fn nested_item_ops(
    kind: ResourceKind,
    State(app): State<App>,
    method: Method,
    Path((mesh, parent, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let writes = method != Method::GET;
    respond(writes, move || {
        let query = Query::parse(raw.as_deref());
        item(
            &app,
            method,
            scope(kind, mesh, parent),
            &name,
            &query,
            &body,
        )
    })
    .await
}

fn collection(app: &App, method: Method, scope: Scope, query: &Query, body: &[u8]) -> Response {
    match method {
        Method::PUT => resources::create(app, scope, query, body).into_response(),
        Method::GET => resources::list(app, scope, query).into_response(),
        _ => unknown_operation().into_response(),
    }
}

fn item(
    app: &App,
    method: Method,
    scope: Scope,
    name: &str,
    query: &Query,
    body: &[u8],
) -> Response {
    match method {
        Method::GET => resources::describe(app, scope, name, query).into_response(),
        Method::PUT => resources::update(app, scope, name, query, body).into_response(),
        Method::DELETE => resources::delete(app, scope, name, query).into_response(),
        _ => unknown_operation().into_response(),
    }
}

async fn tag_ops(State(app): State<App>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    respond(true, move || {
        tags::tag(&app, &Query::parse(raw.as_deref()), &body).into_response()
    })
    .await
}

async fn untag_ops(State(app): State<App>, RawQuery(raw): RawQuery, body: Bytes) -> Response {
    respond(true, move || {
        tags::untag(&app, &Query::parse(raw.as_deref()), &body).into_response()
    })
    .await
}

async fn list_tags_ops(State(app): State<App>, RawQuery(raw): RawQuery) -> Response {
    tags::list(&app, &Query::parse(raw.as_deref())).into_response()
}

/// `POST /` with a Cloud Map `X-Amz-Target`: meshd's Cloud Map registry.
async fn cloud_map_ops(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if !crate::cloud_map::api::is_cloud_map_request(&headers) {
        return unknown_operation().into_response();
    }
    respond(true, move || {
        crate::cloud_map::api::handle(
            &app.store,
            &app.account.region,
            &app.account.account_id,
            &headers,
            &body,
        )
    })
    .await
}

/// A Cloud Map operation on RPC v2 CBOR, which meshd does not serve.
async fn cloud_map_cbor(Path(operation): Path<String>) -> Response {
    crate::cloud_map::api::refuse_cbor(&operation)
}

async fn fallback() -> Response {
    unknown_operation().into_response()
}

/// Gives every response an `x-amzn-RequestId`, as AWS services do.
async fn request_id(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// The methods of a route or gateway route collection, served for `kind`.
fn nested_collection(kind: ResourceKind) -> MethodRouter<App> {
    let handler = move |state, method, path, query, body| {
        nested_collection_ops(kind, state, method, path, query, body)
    };
    get(handler).put(handler)
}

/// The methods of one route or gateway route, served for `kind`.
fn nested_item(kind: ResourceKind) -> MethodRouter<App> {
    let handler = move |state, method, path, query, body| {
        nested_item_ops(kind, state, method, path, query, body)
    };
    get(handler).put(handler).delete(handler)
}

/// The API's HTTP routes over `app`.
pub fn router(app: App) -> Router {
    let any_item = get(mesh_item_ops).put(mesh_item_ops).delete(mesh_item_ops);
    Router::new()
        .route(
            "/v20190125/meshes",
            get(mesh_collection_ops).put(mesh_collection_ops),
        )
        .route("/v20190125/meshes/{mesh}", any_item)
        .route(
            "/v20190125/meshes/{mesh}/{collection}",
            get(child_collection_ops).put(child_collection_ops),
        )
        .route(
            "/v20190125/meshes/{mesh}/{collection}/{name}",
            get(child_item_ops)
                .put(child_item_ops)
                .delete(child_item_ops),
        )
        .route(
            "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes",
            nested_collection(ResourceKind::Route),
        )
        .route(
            "/v20190125/meshes/{mesh}/virtualRouter/{router}/routes/{name}",
            nested_item(ResourceKind::Route),
        )
        .route(
            "/v20190125/meshes/{mesh}/virtualGateway/{gateway}/gatewayRoutes",
            nested_collection(ResourceKind::GatewayRoute),
        )
        .route(
            "/v20190125/meshes/{mesh}/virtualGateway/{gateway}/gatewayRoutes/{name}",
            nested_item(ResourceKind::GatewayRoute),
        )
        .route("/", post(cloud_map_ops))
        .route(
            "/service/Route53AutoNaming_v20170314/operation/{operation}",
            post(cloud_map_cbor),
        )
        .route("/v20190125/tag", put(tag_ops))
        .route("/v20190125/untag", put(untag_ops))
        .route("/v20190125/tags", get(list_tags_ops))
        .fallback(fallback)
        .method_not_allowed_fallback(fallback)
        .with_state(app)
}

/// `routes` (the API's and any others on its port) as served: paths with dot segments
/// refused first, then behind the signature check when there is a `verifier`; every
/// error answer in App Mesh's shape (a handler's panic too, as a 500), every answer
/// (refusals too) with a request id.
pub fn served(routes: Router, verifier: Option<Verifier>) -> Router {
    let routes = match verifier {
        Some(verifier) => routes.layer(middleware::from_fn_with_state(
            Arc::new(verifier),
            auth::require_signature,
        )),
        None => routes,
    };
    routes
        .layer(middleware::from_fn(path::refuse_dot_segments))
        .layer(middleware::from_fn(limits::within_limits))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ))
        .layer(middleware::from_fn(error::in_app_mesh_shape))
        .layer(middleware::from_fn(request_id))
}
