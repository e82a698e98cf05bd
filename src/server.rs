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

use crate::access::{AccessConfig, Gate, TokenFileError};
use crate::api::{self, Account, App, Authentication, CredentialsError, Verifier};
use crate::certificates::{self, Certificates};
use crate::console::{ConsoleConfig, ConsoleConfigError, ConsoleLogin};
use crate::discovery::{self, Endpoints, SourceConfig};
use crate::hub::{Hub, Sources};
use crate::listen::{self, ConnectionLimits};
use crate::metrics;
use crate::net::{ListenerLimits, ListenerStats, ServerTls, TlsError, serve_connections};
use crate::store::{Limits, OpenError, Store, StoreConfig};
use crate::xds::XdsService;

/// TLS on the xDS TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsTls {
    /// meshd's certificate chain (PEM), re-read when it changes.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that proxies' client certificates must chain to, if they may present one.
    pub client_ca: Option<PathBuf>,
}

/// How the xDS server is secured and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdsConfig {
    /// TLS on the TCP port, if any.
    pub tls: Option<XdsTls>,
    /// The bearer tokens proxies may present, if any.
    pub tokens_file: Option<PathBuf>,
    /// The SPIFFE trust domain of proxies' certificates.
    pub trust_domain: String,
    /// Serve a non-loopback address without any credential (`--xds-insecure`).
    pub insecure: bool,
    /// Connections on the TCP port (and the Unix socket).
    pub listener: ListenerLimits,
    /// The most concurrent streams on one connection.
    pub max_streams_per_connection: u32,
    /// The most streams one identity may hold at once.
    pub max_streams_per_identity: usize,
    /// How long a proxy's compiled state outlives its last stream.
    pub grace: Duration,
}

impl Default for XdsConfig {
    fn default() -> Self {
        Self {
            tls: None,
            tokens_file: None,
            trust_domain: crate::access::DEFAULT_TRUST_DOMAIN.into(),
            insecure: false,
            listener: ListenerLimits::default(),
            max_streams_per_connection: 128,
            max_streams_per_identity: crate::access::DEFAULT_MAX_STREAMS_PER_IDENTITY,
            grace: crate::hub::DEFAULT_GRACE,
        }
    }
}

/// Why the xDS server would not be safe to start as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdsConfigError {
    /// A non-loopback address with no way for proxies to prove who they are.
    #[error(
        "--xds-addr {0} is not a loopback address, and no proxy credential is configured: anyone who reaches it could read every proxy's configuration. Give --xds-tls-cert/--xds-tls-key with --xds-client-ca and/or --xds-tokens (see \"Securing xDS\" in the README), or --xds-insecure to serve it openly"
    )]
    OpenOnNetwork(SocketAddr),
    /// Bearer tokens on a non-loopback address without TLS.
    #[error(
        "--xds-addr {0} is not a loopback address and --xds-tokens is given without --xds-tls-cert: the tokens would cross the network in the clear. Add --xds-tls-cert/--xds-tls-key, or --xds-insecure"
    )]
    TokensInTheClear(SocketAddr),
}

impl XdsConfig {
    /// The access rules these settings make.
    pub fn access(&self) -> AccessConfig {
        AccessConfig {
            client_certificates: self.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some()),
            tokens_file: self.tokens_file.clone(),
            trust_domain: self.trust_domain.clone(),
            max_streams_per_identity: self.max_streams_per_identity,
        }
    }

    /// Refuses settings that would expose proxies' configuration on `addr`: secure by
    /// default off loopback.
    pub fn check(&self, addr: SocketAddr) -> Result<(), XdsConfigError> {
        if addr.ip().is_loopback() || self.insecure {
            return Ok(());
        }
        if !self.access().requires_credentials() {
            return Err(XdsConfigError::OpenOnNetwork(addr));
        }
        if self.tokens_file.is_some() && self.tls.is_none() {
            return Err(XdsConfigError::TokensInTheClear(addr));
        }
        Ok(())
    }
}

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
    /// How the xDS server is secured and bounded.
    pub xds: XdsConfig,
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
    /// Where `GET /metrics` is served instead of the API port, if elsewhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The web console, if it is served.
    pub console: Option<ConsoleConfig>,
    /// Where Cloud Map services' instances come from.
    pub cloud_map: SourceConfig,
    /// Where ACM certificates and trust come from.
    pub acm: certificates::SourceConfig,
}

impl ServerConfig {
    /// The API on `api_addr` only, with default settings and an in-memory store.
    pub fn api_only(api_addr: SocketAddr, account: Account) -> Self {
        Self {
            api_addr,
            xds_addr: None,
            xds_uds: None,
            debounce: crate::hub::DEFAULT_DEBOUNCE,
            xds: XdsConfig::default(),
            account,
            limits: Limits::default(),
            store: StoreConfig::Memory,
            authentication: Authentication::None,
            api_connections: ConnectionLimits::default(),
            metrics_addr: None,
            console: None,
            cloud_map: SourceConfig::Local,
            acm: certificates::SourceConfig::default(),
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
    /// The xDS hub (compiled configuration).
    pub hub: Arc<Hub>,
    /// The xDS gate (who may stream what; refusals).
    pub gate: Arc<Gate>,
    /// The xDS streams.
    pub xds: XdsService,
    /// The xDS TCP listener's connection counts.
    pub xds_listener: Arc<ListenerStats>,
    /// The address `GET /metrics` has a listener of its own on, if it has one.
    pub metrics_addr: Option<SocketAddr>,
    /// The address the console listens on, if it is served.
    pub console_addr: Option<SocketAddr>,
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
    /// The xDS server would be open to the network.
    #[error(transparent)]
    Xds(#[from] XdsConfigError),
    /// The xDS TLS certificate, key or client CA cannot be used.
    #[error("xDS TLS: {0}")]
    Tls(#[from] TlsError),
    /// The xDS token file cannot be used.
    #[error(transparent)]
    Tokens(#[from] TokenFileError),
    /// The console would be open to the network, or its token file cannot be used.
    #[error(transparent)]
    Console(#[from] ConsoleConfigError),
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
    // A credentials file that cannot be used, or an xDS port that would be open to the
    // network, stops meshd before it opens anything.
    let verifier = config.authentication.verifier(&config.account.region)?;
    if let Some(addr) = config.xds_addr {
        config.xds.check(addr)?;
    }
    let console_login = match &config.console {
        Some(console) => console.check()?,
        None => None,
    };
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
    serve(config, Arc::new(store), verifier, console_login).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Binds the listeners and starts serving `store`, the API behind `verifier` if any.
async fn serve(
    config: ServerConfig,
    store: Arc<Store>,
    verifier: Option<Verifier>,
    console_login: Option<ConsoleLogin>,
) -> Result<RunningServer, StartError> {
    let (stop, stop_rx) = watch::channel(false);
    let tls = match &config.xds.tls {
        Some(tls) => Some(Arc::new(ServerTls::new(
            &tls.cert,
            &tls.key,
            tls.client_ca.as_deref(),
        )?)),
        None => None,
    };
    let endpoints = Endpoints::new(config.cloud_map.kind());
    let certificates = Certificates::new(config.acm.kind());
    let hub = Hub::with_sources(
        store.clone(),
        config.debounce,
        config.xds.grace,
        Sources {
            endpoints: Some(endpoints.clone()),
            certificates: Some(certificates.clone()),
        },
    );
    let gate = Arc::new(Gate::new(hub.clone(), config.xds.access())?);
    let mut tasks = Vec::new();
    {
        let hub = hub.clone();
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            hub.run_until(stopped(stop)).await;
            Ok(())
        }));
    }
    tasks.push(tokio::spawn(follow_cloud_map(
        config.cloud_map.clone(),
        store.clone(),
        endpoints.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(follow_certificates(
        config.acm.clone(),
        store.clone(),
        certificates.clone(),
        stop_rx.clone(),
    )));
    if config.xds.tokens_file.is_some() {
        tasks.push(tokio::spawn(reload_tokens_on_hangup(
            gate.clone(),
            stop_rx.clone(),
        )));
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
    let app_account = Arc::new(config.account.clone());
    let app = App {
        store: store.clone(),
        account: app_account.clone(),
    };
    let service = XdsService::new(gate.clone()).with_shutdown(stop_rx.clone());
    let xds_listener = Arc::new(ListenerStats::default());
    let mut routes = api::router(app).merge(status_routes(
        service.clone(),
        gate.clone(),
        xds_listener.clone(),
        endpoints,
        certificates,
    ));
    let metrics = metrics::routes(metrics::Sources {
        store: store.clone(),
        streams: service.streams().clone(),
    });
    let mut metrics_addr = None;
    match config.metrics_addr {
        None => routes = routes.merge(metrics),
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(bind_error("metrics", addr.to_string()))?;
            metrics_addr = Some(
                listener
                    .local_addr()
                    .map_err(bind_error("metrics", addr.to_string()))?,
            );
            let router = api::served(metrics, verifier.clone());
            tasks.push(serve_http(listener, router, stop_rx.clone()));
        }
    }
    let router =
        api::served(routes, verifier).layer(axum::middleware::from_fn(metrics::count_api_requests));
    let stop_api = stop_rx.clone();
    let api_connections = config.api_connections;
    tasks.push(tokio::spawn(async move {
        listen::serve(listener, router, api_connections, stopped(stop_api)).await
    }));
    let mut console_addr = None;
    if let Some(console) = &config.console {
        let listener = TcpListener::bind(console.addr)
            .await
            .map_err(bind_error("the console", console.addr.to_string()))?;
        console_addr = Some(
            listener
                .local_addr()
                .map_err(bind_error("the console", console.addr.to_string()))?,
        );
        let router = crate::console::router(
            crate::console::Sources {
                store: store.clone(),
                streams: service.streams().clone(),
                account: app_account.clone(),
            },
            console_login,
        );
        tasks.push(serve_http(listener, router, stop_rx.clone()));
    }

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
        let incoming = serve_connections(listener, tls, config.xds.listener, xds_listener.clone());
        let router = grpc_router(service.clone(), &config.xds);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, stopped(stop))
                .await
                .map_err(std::io::Error::other)
        }));
    }
    if let Some(path) = config.xds_uds.clone() {
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(bind_error("xDS", path.display().to_string()))?;
        let incoming = serve_connections(
            listener,
            None,
            config.xds.listener,
            Arc::new(ListenerStats::default()),
        );
        let router = grpc_router(service.clone(), &config.xds);
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let result = router
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
        gate,
        xds: service,
        xds_listener,
        metrics_addr,
        console_addr,
        stop,
        tasks,
    })
}

/// Serves `router` on `listener` until `stop`.
fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped(stop))
            .await
    })
}

/// meshd's own views on the API port: `GET /meshd/v1/proxies` (each connected stream:
/// what it was sent, accepted and rejected) and `GET /meshd/v1/xds` (the xDS server's
/// counts: per-proxy states, refused streams by reason and the latest refusals,
/// connections).
fn status_routes(
    service: XdsService,
    gate: Arc<Gate>,
    listener: Arc<ListenerStats>,
    endpoints: Arc<Endpoints>,
    certificates: Arc<Certificates>,
) -> axum::Router {
    let streams = service.streams().clone();
    let bundle_of = certificates.clone();
    axum::Router::new()
        .route(
            "/meshd/v1/proxies",
            get(move || {
                let streams = streams.clone();
                async move { Json(streams.statuses().into_values().collect::<Vec<_>>()) }
            }),
        )
        .route(
            "/meshd/v1/cloud-map",
            get(move || {
                let endpoints = endpoints.clone();
                async move { Json(endpoints.status()) }
            }),
        )
        .route(
            "/meshd/v1/certificates",
            get(move || {
                let certificates = certificates.clone();
                async move { Json(certificates.status()) }
            }),
        )
        .route(
            "/meshd/v1/ca/bundle",
            get(move || {
                let certificates = bundle_of.clone();
                async move { ca_bundle(&certificates) }
            }),
        )
        .route(
            "/meshd/v1/xds",
            get(move || {
                let (service, gate, listener) = (service.clone(), gate.clone(), listener.clone());
                async move {
                    Json(serde_json::json!({
                        "streams": service.streams().len(),
                        "gate": gate.view(),
                        "connections": listener.counts(),
                    }))
                }
            }),
        )
}

/// Follows the Cloud Map source `config` names for what the hub's proxies need, until
/// `stop`.
async fn follow_cloud_map(
    config: SourceConfig,
    store: Arc<Store>,
    endpoints: Arc<Endpoints>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let follow = async move {
        match config {
            SourceConfig::Local => {
                discovery::local::follow(store, endpoints, crate::cloud_map::discover).await
            }
            SourceConfig::Aws(aws) => {
                let client = discovery::aws::client(&aws).await;
                discovery::aws::follow(client, endpoints, aws.interval).await
            }
        }
    };
    tokio::select! {
        () = follow => {}
        () = stopped(stop) => {}
    }
    Ok(())
}

/// `GET /meshd/v1/ca/bundle`: the CA certificates meshd's own CA issues from, for
/// clients outside the mesh (`meshd ca bundle`).
fn ca_bundle(certificates: &Certificates) -> axum::response::Response {
    use axum::response::IntoResponse;
    match certificates.bundle() {
        Some(bundle) => Json(serde_json::json!({ "bundle": bundle })).into_response(),
        None => api::ApiError::new(
            api::ErrorType::NotFound,
            match certificates.source() {
                certificates::SourceKind::Aws => {
                    "meshd takes certificates from ACM (--acm aws): it has no CA of its own"
                }
                certificates::SourceKind::Local => {
                "meshd's CA is made when a proxy first needs an ACM certificate or trust, and no proxy has yet"
            }
            },
        )
        .into_response(),
    }
}

/// Follows the certificate source `config` names for the secrets the hub's proxies
/// name, until `stop`.
async fn follow_certificates(
    config: certificates::SourceConfig,
    store: Arc<Store>,
    certificates: Arc<Certificates>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let follow = async move {
        match config {
            certificates::SourceConfig::Local(local) => {
                certificates::local::follow(store, certificates, local).await
            }
            certificates::SourceConfig::Aws(aws) => {
                let clients = certificates::aws::clients(&aws).await;
                certificates::aws::follow(clients, certificates, aws.refresh).await
            }
        }
    };
    tokio::select! {
        () = follow => {}
        () = stopped(stop) => {}
    }
    Ok(())
}

/// Re-reads the token file on every SIGHUP until `stop`.
async fn reload_tokens_on_hangup(
    gate: Arc<Gate>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            received = hangups.recv() => if received.is_none() { return Ok(()) },
        }
        match gate.reload_tokens() {
            Some(Ok(count)) => tracing::info!(tokens = count, "re-read the xDS token file"),
            Some(Err(err)) => {
                tracing::error!("keeping the xDS tokens in force: {err}");
            }
            None => {}
        }
    }
}

fn grpc_router(service: XdsService, config: &XdsConfig) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .max_concurrent_streams(config.max_streams_per_connection)
        .add_service(
            AggregatedDiscoveryServiceServer::new(service.clone())
                .max_decoding_message_size(64 << 20),
        )
        .add_service(ClientStatusDiscoveryServiceServer::new(service))
}
