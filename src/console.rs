//! The web console: a read-only view of the mesh and its proxies, server-rendered HTML
//! and SVG on its own listener (`--console-addr`). Pages: the meshes (`/`), one mesh
//! with its topology and resources (`/meshes/{mesh}`), one resource's spec and metadata
//! (`/resource?arn=...`), the connected proxies with what they were sent, accepted and
//! rejected (`/proxies`). Each page re-reads itself every second and swaps its content
//! in place, so it follows changes without a reload. Everything it serves is in the
//! binary.
//!
//! Off loopback it needs a login (`--console-token-file`: the token, typed once into a
//! form, gives a session cookie) or `--console-insecure`; meshd refuses to start without
//! either.

mod login;
mod pages;
mod topology;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;

use crate::api::Account;
use crate::model::ResourceKey;
use crate::store::Store;
use crate::xds::StreamRegistry;

pub use login::ConsoleLogin;

/// The default console address.
pub const DEFAULT_CONSOLE_ADDR: &str = "127.0.0.1:8081";

/// Where and how the console is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The address it listens on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// A file holding the token that logs in (its content, trimmed).
    pub token_file: Option<PathBuf>,
    /// Serve a non-loopback address without a login.
    pub insecure: bool,
}

/// Why the console cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleConfigError {
    /// A non-loopback address with no login.
    #[error(
        "--console-addr {0} is not a loopback address and no login is configured: anyone who reaches it could read the whole mesh. Give --console-token-file (a file with the token to log in with), or --console-insecure to serve it openly"
    )]
    OpenOnNetwork(SocketAddr),
    /// The token file cannot be read.
    #[error("cannot read --console-token-file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds nothing but whitespace.
    #[error("--console-token-file {0} is empty: it must hold the token to log in with")]
    EmptyToken(PathBuf),
}

impl ConsoleConfig {
    /// The console on `addr`, without a login.
    pub fn on(addr: SocketAddr) -> Self {
        Self {
            addr,
            token_file: None,
            insecure: false,
        }
    }

    /// Checks the settings and reads the token: the login pages need, if any. Refuses a
    /// non-loopback address that has neither a token nor `insecure`.
    pub fn check(&self) -> Result<Option<ConsoleLogin>, ConsoleConfigError> {
        if let Some(path) = &self.token_file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConsoleConfigError::TokenFile {
                    path: path.clone(),
                    source,
                })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(ConsoleConfigError::EmptyToken(path.clone()));
            }
            return Ok(Some(ConsoleLogin::new(token)));
        }
        if self.addr.ip().is_loopback() || self.insecure {
            Ok(None)
        } else {
            Err(ConsoleConfigError::OpenOnNetwork(self.addr))
        }
    }
}

/// What the console shows: the store and the connected streams.
#[derive(Clone)]
pub struct Sources {
    /// The store.
    pub store: Arc<Store>,
    /// The connected xDS streams.
    pub streams: Arc<StreamRegistry>,
    /// The account ARNs are rendered in.
    pub account: Arc<Account>,
}

/// The console's routes over `sources`, behind `login` if there is one.
pub fn router(sources: Sources, login: Option<ConsoleLogin>) -> Router {
    let pages = Router::new()
        .route("/", get(start_page))
        .route("/meshes/{mesh}", get(mesh_page))
        .route("/resource", get(resource_page))
        .route("/proxies", get(proxies_page))
        .with_state(sources);
    match login {
        Some(login) => login::protect(pages, login),
        None => pages,
    }
}

/// A page, rendered on a blocking thread (it walks the store or every stream).
async fn render(page: impl FnOnce() -> Markup + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(page).await {
        Ok(markup) => markup.into_response(),
        Err(err) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {err}"),
        )
            .into_response(),
    }
}

async fn start_page(State(sources): State<Sources>) -> Response {
    render(move || pages::start(&sources.store.snapshot(), sources.streams.len())).await
}

async fn mesh_page(State(sources): State<Sources>, Path(mesh): Path<String>) -> Response {
    render(move || pages::mesh(&sources.store.snapshot(), &mesh)).await
}

/// The query of a resource page: the resource's ARN path (`mesh/m/virtualNode/n`).
#[derive(serde::Deserialize)]
struct ResourceQuery {
    arn: String,
}

async fn resource_page(
    State(sources): State<Sources>,
    Query(query): Query<ResourceQuery>,
) -> Response {
    render(move || {
        let snapshot = sources.store.snapshot();
        let resource =
            ResourceKey::from_arn_resource(&query.arn).and_then(|key| snapshot.get(&key).cloned());
        pages::resource(&sources.account, &query.arn, resource.as_deref())
    })
    .await
}

async fn proxies_page(State(sources): State<Sources>) -> Response {
    render(move || {
        let mut streams = sources.streams.snapshots();
        streams.sort_by(|a, b| (&a.0.resource, &a.0.node_id).cmp(&(&b.0.resource, &b.0.node_id)));
        pages::proxies(&streams)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_needs_a_login_or_insecure() {
        let open: SocketAddr = "0.0.0.0:8081".parse().unwrap();
        let err = ConsoleConfig::on(open).check().unwrap_err();
        assert!(err.to_string().contains("--console-token-file"), "{err}");
        assert!(err.to_string().contains("--console-insecure"), "{err}");
        let insecure = ConsoleConfig {
            insecure: true,
            ..ConsoleConfig::on(open)
        };
        assert!(insecure.check().unwrap().is_none());
        assert!(
            ConsoleConfig::on("127.0.0.1:0".parse().unwrap())
                .check()
                .unwrap()
                .is_none()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  \n").unwrap();
        let empty = ConsoleConfig {
            token_file: Some(file.clone()),
            ..ConsoleConfig::on(open)
        };
        assert!(matches!(
            empty.check(),
            Err(ConsoleConfigError::EmptyToken(_))
        ));
        std::fs::write(&file, "s3cret\n").unwrap();
        assert!(empty.check().unwrap().is_some());
    }
}
