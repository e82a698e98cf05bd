//! Running meshd: binds the API listener over one store and serves until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, Account, App};
use crate::store::{Limits, Store};

/// What a meshd server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the App Mesh API listens (port 0 picks a free port).
    pub api_addr: SocketAddr,
    /// The region and account meshd answers as.
    pub account: Account,
    /// Limits on the number of resources.
    pub limits: Limits,
}

/// A server that is running; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    /// The address the API listener is bound to.
    pub api_addr: SocketAddr,
    /// The store the server serves.
    pub store: Arc<Store>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting requests, lets requests in flight finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) -> std::io::Result<()> {
        let RunningServer { stop, task, .. } = self;
        let result = task
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)));
        drop(stop);
        result
    }
}

/// Binds the listener and starts serving on an in-memory store.
pub async fn start(config: ServerConfig) -> std::io::Result<RunningServer> {
    let store = Arc::new(Store::in_memory(config.limits));
    start_with_store(config, store).await
}

/// Binds the listener and starts serving `store`.
pub async fn start_with_store(
    config: ServerConfig,
    store: Arc<Store>,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(config.api_addr).await?;
    let api_addr = listener.local_addr()?;
    let app = App {
        store: store.clone(),
        account: Arc::new(config.account),
    };
    let router = api::router(app);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningServer {
        api_addr,
        store,
        stop,
        task,
    })
}
