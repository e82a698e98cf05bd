//! The command line: `meshd serve` and its flags, each also read from a `MESHD_*` variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::{Account, Authentication};
use crate::listen::ConnectionLimits;
use crate::server::ServerConfig;
use crate::store::{EtcdAccess, Limits, StoreConfig};

/// meshd: a self-hosted, AWS App Mesh-compatible control plane for Envoy.
#[derive(Debug, Parser)]
#[command(name = "meshd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// meshd's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the App Mesh API.
    Serve(Box<ServeArgs>),
    /// Print the Envoy configuration meshd compiles for one proxy, as Envoy JSON.
    Compile(CompileArgs),
    /// Print the Envoy bootstrap (YAML) for a sidecar or gateway, from the App Mesh Envoy
    /// image's variables (APPMESH_RESOURCE_ARN, APPMESH_XDS_ENDPOINT, ENVOY_ADMIN_ACCESS_PORT, …).
    Bootstrap(BootstrapArgs),
}

/// Flags of `meshd bootstrap`; each overrides its environment variable.
#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    /// node.id (else APPMESH_RESOURCE_ARN, APPMESH_RESOURCE_NAME, APPMESH_VIRTUAL_NODE_NAME).
    #[arg(long)]
    pub node_id: Option<String>,
    /// node.cluster (else APPMESH_RESOURCE_CLUSTER, APPMESH_VIRTUAL_NODE_CLUSTER, else the id).
    #[arg(long)]
    pub node_cluster: Option<String>,
    /// meshd's xDS server, host:port or unix:///path (else APPMESH_XDS_ENDPOINT, else 127.0.0.1:18000).
    #[arg(long)]
    pub xds_endpoint: Option<String>,
    /// Envoy's admin port (else ENVOY_ADMIN_ACCESS_PORT, else 9901).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Use incremental (delta) xDS.
    #[arg(long)]
    pub delta: bool,
}

/// Flags of `meshd compile`.
#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    /// A mesh definition: a JSON list of App Mesh resources as `describe-*` prints them.
    #[arg(long, env = "MESHD_DEFINITION")]
    pub definition: std::path::PathBuf,
    /// The proxy: `mesh/<mesh>/virtualNode/<name>` or `mesh/<mesh>/virtualGateway/<name>`.
    #[arg(long)]
    pub proxy: String,
    /// Print a static Envoy bootstrap (routes and endpoints inline) that
    /// `envoy --mode validate` can check, instead of the resources by type.
    #[arg(long)]
    pub bootstrap: bool,
}

/// Which store `meshd serve` keeps its resources in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded durable store in `--data-dir`: every acknowledged write survives a
    /// restart or crash.
    Embedded,
    /// Memory only: everything is gone when meshd stops (tests, demos).
    Memory,
    /// etcd at `--etcd-endpoints`, shared by several meshd replicas (needs a meshd built
    /// with `--features etcd`).
    Etcd,
}

/// Flags of `meshd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the App Mesh API (restJson1, as AWS clients speak it). Port 0 picks a free port.
    #[arg(long, env = "MESHD_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,
    /// Address of the xDS server (ADS over gRPC, state of the world and delta).
    #[arg(long, env = "MESHD_XDS_ADDR", default_value = "127.0.0.1:18000")]
    pub xds_addr: SocketAddr,
    /// Also serve xDS on this Unix socket (the App Mesh Envoy image's `unix://` endpoint).
    #[arg(long, env = "MESHD_XDS_UDS")]
    pub xds_uds: Option<std::path::PathBuf>,
    /// Longest push window, in milliseconds: a lone change is pushed at once; changes
    /// within the window of the last push are pushed together when it ends. The window is
    /// twice as long as the last publication took, at most this (0: no window).
    #[arg(long, env = "MESHD_DEBOUNCE_MS", default_value_t = crate::xds::DEFAULT_DEBOUNCE.as_millis() as u64)]
    pub debounce_ms: u64,
    /// Region in ARNs.
    #[arg(long, env = "MESHD_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id (12 digits) in ARNs and as meshOwner/resourceOwner.
    #[arg(long, env = "MESHD_ACCOUNT_ID", default_value = "111122223333", value_parser = parse_account_id)]
    pub account_id: String,
    /// How API requests are authenticated: `none` (anyone who reaches --api-addr may call
    /// it) or `sigv4` (AWS Signature Version 4 with a key pair from --credentials-file,
    /// scoped to --region and `appmesh`, as App Mesh required).
    #[arg(long, env = "MESHD_AUTH", value_enum, default_value_t = AuthKind::None)]
    pub auth: AuthKind,
    /// The access keys `--auth sigv4` accepts: a file in the AWS shared credentials
    /// format (every profile's aws_access_key_id and aws_secret_access_key), read at start.
    #[arg(long, env = "MESHD_CREDENTIALS_FILE", required_if_eq("auth", "sigv4"))]
    pub credentials_file: Option<std::path::PathBuf>,
    /// Most meshes in the account.
    #[arg(long, env = "MESHD_LIMIT_MESHES", default_value_t = Limits::default().meshes)]
    pub limit_meshes: usize,
    /// Most virtual nodes, routers, services or gateways (each kind alone) in one mesh.
    #[arg(long, env = "MESHD_LIMIT_RESOURCES_PER_MESH", default_value_t = Limits::default().resources_per_mesh)]
    pub limit_resources_per_mesh: usize,
    /// Most routes per virtual router, and gateway routes per virtual gateway.
    #[arg(long, env = "MESHD_LIMIT_ROUTES_PER_PARENT", default_value_t = Limits::default().routes_per_parent)]
    pub limit_routes_per_parent: usize,
    /// Most connections the API port holds at once (default: 4096, or fewer to stay 256
    /// below the open-files limit); at the limit the connection idle the longest is closed.
    #[arg(long, env = "MESHD_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<usize>,
    /// Where resources are kept: `embedded` (durable, in --data-dir), `memory` (lost on
    /// exit) or `etcd` (shared by replicas, at --etcd-endpoints).
    #[arg(long, env = "MESHD_STORE", value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// The embedded store's data directory (created if missing).
    #[arg(long, env = "MESHD_DATA_DIR", default_value = "./meshd-data")]
    pub data_dir: std::path::PathBuf,
    /// The etcd members' client URLs, comma-separated (with `--store etcd`).
    #[arg(
        long,
        env = "MESHD_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_endpoints: Vec<String>,
    /// The prefix of meshd's keys in etcd; replicas of one meshd share it.
    #[arg(long, env = "MESHD_ETCD_PREFIX", default_value = crate::store::DEFAULT_ETCD_PREFIX)]
    pub etcd_prefix: String,
    /// CA certificates (PEM) that etcd's server certificate must chain to; needed with
    /// https:// endpoints.
    #[arg(long, env = "MESHD_ETCD_CACERT")]
    pub etcd_cacert: Option<std::path::PathBuf>,
    /// meshd's client certificate (PEM), for an etcd run with --client-cert-auth.
    #[arg(long, env = "MESHD_ETCD_CERT", requires = "etcd_key")]
    pub etcd_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --etcd-cert.
    #[arg(long, env = "MESHD_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<std::path::PathBuf>,
    /// etcd user, when etcd has authentication enabled (with --etcd-password).
    #[arg(long, env = "MESHD_ETCD_USERNAME", requires = "etcd_password")]
    pub etcd_username: Option<String>,
    /// The etcd user's password (best given in the environment, not on the command line).
    #[arg(
        long,
        env = "MESHD_ETCD_PASSWORD",
        hide_env_values = true,
        requires = "etcd_username"
    )]
    pub etcd_password: Option<String>,
}

/// How `meshd serve` authenticates API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// No authentication.
    None,
    /// AWS Signature Version 4.
    Sigv4,
}

fn parse_account_id(value: &str) -> Result<String, String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_string())
    } else {
        Err(format!("an account id is 12 digits, not {value:?}"))
    }
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            api_addr: self.api_addr,
            xds_addr: Some(self.xds_addr),
            xds_uds: self.xds_uds.clone(),
            debounce: std::time::Duration::from_millis(self.debounce_ms),
            account: Account {
                region: self.region.clone(),
                account_id: self.account_id.clone(),
            },
            limits: Limits {
                meshes: self.limit_meshes,
                resources_per_mesh: self.limit_resources_per_mesh,
                routes_per_parent: self.limit_routes_per_parent,
            },
            store: match self.store {
                StoreKind::Embedded => StoreConfig::Embedded {
                    data_dir: self.data_dir.clone(),
                },
                StoreKind::Memory => StoreConfig::Memory,
                StoreKind::Etcd => StoreConfig::Etcd {
                    endpoints: self.etcd_endpoints.clone(),
                    prefix: self.etcd_prefix.clone(),
                    access: EtcdAccess {
                        ca_file: self.etcd_cacert.clone(),
                        cert_file: self.etcd_cert.clone(),
                        key_file: self.etcd_key.clone(),
                        username: self.etcd_username.clone(),
                        password: self.etcd_password.clone(),
                    },
                },
            },
            api_connections: ConnectionLimits {
                max_connections: self
                    .api_max_connections
                    .unwrap_or_else(crate::listen::default_max_connections),
                ..ConnectionLimits::default()
            },
            authentication: match self.auth {
                AuthKind::None => Authentication::None,
                // clap requires the file with sigv4; were it missing, reading "" fails
                // at start rather than leaving the API open.
                AuthKind::Sigv4 => Authentication::SigV4 {
                    credentials_file: self.credentials_file.clone().unwrap_or_default(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authentication(args: &[&str]) -> Result<Authentication, clap::Error> {
        let cli = Cli::try_parse_from([&["meshd", "serve"], args].concat())?;
        match cli.command {
            Command::Serve(serve) => Ok(serve.server_config().authentication),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_reads_the_authentication_flags() {
        assert_eq!(authentication(&[]).unwrap(), Authentication::None);
        assert_eq!(
            authentication(&["--auth", "sigv4", "--credentials-file", "/etc/meshd/keys"]).unwrap(),
            Authentication::SigV4 {
                credentials_file: "/etc/meshd/keys".into()
            }
        );
        let refused = authentication(&["--auth", "sigv4"]).unwrap_err();
        assert_eq!(
            refused.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(authentication(&["--auth", "basic"]).is_err());
    }
}
