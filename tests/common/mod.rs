//! Shared test support: an in-process meshd on 127.0.0.1:0 and real AWS clients for it.
#![allow(dead_code)]

pub mod browser;
pub mod cli;
pub mod cloud_map;
pub mod demo;
pub mod envoy;
pub mod etcd;
pub mod moto;
pub mod pki;
pub mod process;
pub mod sdk;
pub mod sds;

use std::net::SocketAddr;
use std::path::PathBuf;

use meshd::api::Account;
use meshd::server::{self, RunningServer, ServerConfig};
use meshd::store::{Limits, StoreConfig};

/// The account id every test server answers as.
pub const ACCOUNT_ID: &str = "111122223333";
// Not every test crate uses both.
#[allow(unused_imports)]
pub use sdk::{REGION, sdk_client};

/// Starts meshd's API on a free loopback port with the default limits.
pub async fn start_server() -> RunningServer {
    start_server_with_limits(Limits::default()).await
}

/// Starts meshd's API on a free loopback port with `limits`.
pub async fn start_server_with_limits(limits: Limits) -> RunningServer {
    let account = Account {
        region: REGION.into(),
        account_id: ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        limits,
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    server::start(config)
        .await
        .expect("meshd starts on 127.0.0.1:0")
}

/// Starts meshd's API on a free loopback port over the store `store` (for a durable
/// store, with what its data directory holds loaded back).
pub async fn start_server_with_store(store: StoreConfig) -> RunningServer {
    let account = Account {
        region: REGION.into(),
        account_id: ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        store,
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    server::start(config)
        .await
        .expect("meshd starts on 127.0.0.1:0 with its store")
}

/// Starts meshd's API on a free loopback port, serving only requests signed (SigV4)
/// with a key pair from `credentials_file`.
pub async fn start_signed_server(credentials_file: PathBuf) -> RunningServer {
    let account = Account {
        region: REGION.into(),
        account_id: ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        authentication: meshd::api::Authentication::SigV4 { credentials_file },
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    server::start(config)
        .await
        .expect("meshd starts on 127.0.0.1:0 with SigV4")
}

/// Starts meshd's API on a free loopback port over the embedded store in `data_dir`.
pub async fn start_embedded_server(data_dir: &std::path::Path) -> RunningServer {
    start_server_with_store(StoreConfig::Embedded {
        data_dir: data_dir.to_path_buf(),
    })
    .await
}

/// Starts meshd's API on a free loopback port and xDS on `xds_addr` (port 0 picks a free
/// port; `RunningServer::xds_addr` says which) and, if given, on the Unix socket `xds_uds`.
pub async fn start_server_with_xds(
    xds_addr: Option<SocketAddr>,
    xds_uds: Option<PathBuf>,
) -> RunningServer {
    let account = Account {
        region: REGION.into(),
        account_id: ACCOUNT_ID.into(),
    };
    let config = ServerConfig {
        xds_addr,
        xds_uds,
        ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
    };
    server::start(config)
        .await
        .expect("meshd starts with xDS on loopback")
}

/// The ARN of a resource path (`mesh/m/virtualNode/n`) in the test account.
pub fn arn(resource: &str) -> String {
    format!("arn:aws:appmesh:{REGION}:{ACCOUNT_ID}:{resource}")
}
