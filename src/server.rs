//! Running meshd: the App Mesh API and the xDS server in one process over one store,
//! until told to stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_server::ClientStatusDiscoveryServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, Account, App, Authentication, CredentialsError, Verifier};
use crate::listen::{self, ConnectionLimits};
use crate::store::{Limits, OpenError, Store, StoreConfig};
use crate::xds::{Hub, XdsService};

/// What a meshd server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the App Mesh API listens (port 0 picks a free port).
    pub api_addr: SocketAddr,
    /// Where the xDS server listens over TCP, if it does.
    pub xds_addr: Option<SocketAddr>,
    /// Where the xDS server listens on a Unix socket, if it does.
    pub xds_uds: Option<PathBuf>,
    /// How long to wait after a change for more before pushing to proxies.
    pub debounce: Duration,
    /// The region and account meshd answers as.
    pub account: Account,
    /// Limits on the number of resources.
    pub limits: Limits,
    /// Where the store keeps its resources.
    pub store: StoreConfig,
    /// How API requests are authenticated.
    pub authentication: Authentication,
    /// The bounds of the API port's connections.
    pub api_connections: ConnectionLimits,
}

impl ServerConfig {
    /// The API on `api_addr` only, with default settings and an in-memory store.
    pub fn api_only(api_addr: SocketAddr, account: Account) -> Self {
        Self {
            api_addr,
            xds_addr: None,
            xds_uds: None,
            debounce: crate::xds::DEFAULT_DEBOUNCE,
            account,
            limits: Limits::default(),
            store: StoreConfig::Memory,
            authentication: Authentication::None,
            api_connections: ConnectionLimits::default(),
        }
    }
}

/// A server that is running; [`RunningServer::shutdown`] stops it.
pub struct RunningServer {
    /// The address the API listener is bound to.
    pub api_addr: SocketAddr,
    /// The address the xDS listener is bound to, if any.
    pub xds_addr: Option<SocketAddr>,
    /// The store the server serves.
    pub store: Arc<Store>,
    /// The xDS hub (compiled configuration and stream status).
    pub hub: Arc<Hub>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Stops accepting requests and streams, lets requests in flight finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await
                .unwrap_or_else(|err| Err(std::io::Error::other(err)))?;
        }
        Ok(())
    }
}

/// Why meshd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The credentials file of `--auth sigv4` cannot be used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// Opening the store did not finish (its thread panicked or the runtime stopped).
    #[error("opening the store did not finish: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
    /// A listener cannot be bound.
    #[error("cannot serve {what} on {address}: {source}")]
    Bind {
        /// Which server (`the API`, `xDS`).
        what: &'static str,
        /// The address or socket path.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the configured store (loading back what a durable one holds), binds the
/// listeners and starts serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    // A credentials file that cannot be used stops meshd before it opens anything.
    let verifier = config.authentication.verifier(&config.account.region)?;
    // Opening waits for the disk or for etcd: not on an async worker.
    let (store_config, limits) = (config.store.clone(), config.limits);
    let store = tokio::task::spawn_blocking(move || Store::open(&store_config, limits)).await??;
    if let StoreConfig::Embedded { data_dir } = &config.store {
        let snapshot = store.snapshot();
        tracing::info!(
            data_dir = %data_dir.display(),
            resources = snapshot.len(),
            revision = snapshot.revision(),
            "loaded {} resources (revision {}) from {}",
            snapshot.len(),
            snapshot.revision(),
            data_dir.display()
        );
    }
    serve(config, Arc::new(store), verifier).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Binds the listeners and starts serving `store`, the API behind `verifier` if any.
async fn serve(
    config: ServerConfig,
    store: Arc<Store>,
    verifier: Option<Verifier>,
) -> Result<RunningServer, StartError> {
    let (stop, stop_rx) = watch::channel(false);
    let hub = Hub::new(store.clone(), config.debounce);
    let mut tasks = Vec::new();
    {
        let hub = hub.clone();
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            hub.run_until(stopped(stop)).await;
            Ok(())
        }));
    }

    let bind_error = |what, address: String| {
        move |source| StartError::Bind {
            what,
            address,
            source,
        }
    };
    let listener = TcpListener::bind(config.api_addr)
        .await
        .map_err(bind_error("the API", config.api_addr.to_string()))?;
    let api_addr = listener
        .local_addr()
        .map_err(bind_error("the API", config.api_addr.to_string()))?;
    let app = App {
        store: store.clone(),
        account: Arc::new(config.account),
    };
    let status_hub = hub.clone();
    let routes = api::router(app).merge(axum::Router::new().route(
        "/meshd/v1/proxies",
        get(move || {
            let hub = status_hub.clone();
            async move { Json(hub.statuses().into_values().collect::<Vec<_>>()) }
        }),
    ));
    let router = api::served(routes, verifier);
    let stop_api = stop_rx.clone();
    let api_connections = config.api_connections;
    tasks.push(tokio::spawn(async move {
        listen::serve(listener, router, api_connections, stopped(stop_api)).await
    }));

    let service = XdsService::new(hub.clone()).with_shutdown(stop_rx.clone());
    let mut xds_addr = None;
    if let Some(addr) = config.xds_addr {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(bind_error("xDS", addr.to_string()))?;
        xds_addr = Some(
            listener
                .local_addr()
                .map_err(bind_error("xDS", addr.to_string()))?,
        );
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let service = service.clone();
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            grpc_router(service)
                .serve_with_incoming_shutdown(incoming, stopped(stop))
                .await
                .map_err(std::io::Error::other)
        }));
    }
    if let Some(path) = config.xds_uds.clone() {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(bind_error("xDS", path.display().to_string()))?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let result = grpc_router(service)
                .serve_with_incoming_shutdown(incoming, stopped(stop))
                .await
                .map_err(std::io::Error::other);
            let _ = std::fs::remove_file(&path);
            result
        }));
    }
    Ok(RunningServer {
        api_addr,
        xds_addr,
        store,
        hub,
        stop,
        tasks,
    })
}

fn grpc_router(service: XdsService) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(
            AggregatedDiscoveryServiceServer::new(service.clone())
                .max_decoding_message_size(64 << 20),
        )
        .add_service(ClientStatusDiscoveryServiceServer::new(service))
}
