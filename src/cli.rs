//! The command line: `meshd serve` and its flags, each also read from a `MESHD_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::{Account, Authentication};
use crate::console::ConsoleConfig;
use crate::discovery::{SourceConfig, SourceKind, aws::AwsConfig};
use crate::listen::ConnectionLimits;
use crate::net::ListenerLimits;
use crate::server::{ServerConfig, XdsConfig, XdsTls};
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
    /// Create or update App Mesh resources from CloudFormation templates, Kubernetes
    /// manifests of the App Mesh controller or AWS CLI input files, through the API,
    /// after printing a plan.
    Apply(ApplyArgs),
    /// Write what meshd holds in a mesh as a file `meshd apply` takes back.
    Export(ExportArgs),
    /// meshd's own certificate authority (`--acm local`).
    #[command(subcommand)]
    Ca(CaCommand),
}

/// `meshd ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA certificates (PEM) a running meshd issues from, for clients outside
    /// the mesh to trust.
    Bundle {
        /// meshd's API.
        #[arg(long, env = "MESHD_ENDPOINT_URL", default_value = DEFAULT_ENDPOINT)]
        endpoint_url: String,
    },
    /// Make an ARN that specs name (a `certificateAuthorityArns` entry, or a
    /// `certificateArn`) stand for a CA you hold: leaves for that certificate ARN are
    /// issued by it, and clients trusting that CA ARN trust it. Written into the store
    /// directly, so the key never crosses the network (with the embedded store, stop
    /// meshd first; etcd replicas pick it up at once).
    Import(Box<CaImportArgs>),
}

/// Flags of `meshd ca import`.
#[derive(Debug, Clone, Args)]
pub struct CaImportArgs {
    /// The ARN the CA stands for.
    #[arg(long)]
    pub arn: String,
    /// The CA's certificate (PEM), followed by the chain up to its root.
    #[arg(long)]
    pub cert: PathBuf,
    /// The CA's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The store meshd serves from.
    #[command(flatten)]
    pub storage: StoreArgs,
}

/// The default API endpoint of `meshd apply` and `meshd export`.
const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

/// Flags of `meshd apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// A file, a directory (its .yaml, .yml and .json files) or `-` (standard input); repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// meshd's App Mesh API.
    #[arg(long, env = "MESHD_ENDPOINT_URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint_url: String,
    /// A template parameter, an export (`!ImportValue`), or `LogicalId` /
    /// `LogicalId.Attribute` of a resource that is not App Mesh's; repeatable.
    #[arg(long = "parameter", value_name = "KEY=VALUE", value_parser = parse_parameter)]
    pub parameters: Vec<(String, String)>,
    /// `AWS::StackName` (default: each template's file name without extension).
    #[arg(long)]
    pub stack_name: Option<String>,
    /// The mesh of Kubernetes resources without meshRef when the files hold not exactly one Mesh.
    #[arg(long)]
    pub mesh: Option<String>,
    /// The namespace of every Kubernetes resource (instead of metadata.namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete what meshd holds in the meshes the files name and the files no longer define.
    #[arg(long)]
    pub prune: bool,
}

fn parse_parameter(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("a parameter is KEY=VALUE, not {value:?}")),
    }
}

/// The formats of `meshd export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A CloudFormation template of AWS::AppMesh::* resources.
    Cloudformation,
    /// Kubernetes manifests of appmesh.k8s.aws/v1beta2.
    Kubernetes,
    /// A JSON list of AWS CLI input objects.
    Json,
}

/// Flags of `meshd export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The mesh to export.
    #[arg(long)]
    pub mesh: String,
    /// The file format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// meshd's App Mesh API.
    #[arg(long, env = "MESHD_ENDPOINT_URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint_url: String,
    /// The namespace of the Kubernetes objects.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<std::path::PathBuf>,
}

impl ApplyArgs {
    /// The apply these flags ask for.
    pub fn options(&self) -> crate::apply::ApplyOptions {
        crate::apply::ApplyOptions {
            files: self.files.clone(),
            parameters: self.parameters.iter().cloned().collect(),
            stack_name: self.stack_name.clone(),
            kubernetes: crate::apply::kubernetes::Options {
                mesh: self.mesh.clone(),
                namespace: self.namespace.clone(),
            },
            dry_run: self.dry_run,
            prune: self.prune,
        }
    }
}

impl ExportFormat {
    /// The export module's format.
    pub fn format(self) -> crate::apply::export::Format {
        match self {
            ExportFormat::Cloudformation => crate::apply::export::Format::CloudFormation,
            ExportFormat::Kubernetes => crate::apply::export::Format::Kubernetes,
            ExportFormat::Json => crate::apply::export::Format::Json,
        }
    }
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
    /// Speak TLS to meshd, checking its certificate against this CA (PEM) and its name
    /// against the endpoint's host (else MESHD_XDS_CA).
    #[arg(long)]
    pub xds_ca: Option<String>,
    /// Present this client certificate (PEM) to meshd (else MESHD_XDS_CERT; needs --xds-ca).
    #[arg(long)]
    pub xds_cert: Option<String>,
    /// The private key (PEM) of --xds-cert (else MESHD_XDS_KEY).
    #[arg(long)]
    pub xds_key: Option<String>,
    /// Send the token in this file as `authorization: Bearer <token>` (else MESHD_XDS_TOKEN_FILE).
    #[arg(long)]
    pub xds_token_file: Option<String>,
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
    /// Serve `GET /metrics` (Prometheus) on this address instead of the API port; it is
    /// protected as the API is (--auth).
    #[arg(long, env = "MESHD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Address of the read-only web console. Off loopback it needs --console-token-file
    /// or --console-insecure.
    #[arg(long, env = "MESHD_CONSOLE_ADDR", default_value = crate::console::DEFAULT_CONSOLE_ADDR)]
    pub console_addr: SocketAddr,
    /// The console asks for the token this file holds (trimmed) once, in a login form.
    #[arg(long, env = "MESHD_CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// Serve the console on a non-loopback --console-addr without a login (anyone who
    /// reaches it may read the whole mesh).
    #[arg(long, env = "MESHD_CONSOLE_INSECURE")]
    pub console_insecure: bool,
    /// Address of the xDS server (ADS over gRPC, state of the world and delta).
    #[arg(long, env = "MESHD_XDS_ADDR", default_value = "127.0.0.1:18000")]
    pub xds_addr: SocketAddr,
    /// Also serve xDS on this Unix socket (the App Mesh Envoy image's `unix://` endpoint).
    /// Any local process that may open it may stream any node.
    #[arg(long, env = "MESHD_XDS_UDS")]
    pub xds_uds: Option<std::path::PathBuf>,
    /// TLS on the xDS TCP port: meshd's certificate chain (PEM). A changed file is
    /// picked up without a restart.
    #[arg(long, env = "MESHD_XDS_TLS_CERT", requires = "xds_tls_key")]
    pub xds_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --xds-tls-cert.
    #[arg(long, env = "MESHD_XDS_TLS_KEY", requires = "xds_tls_cert")]
    pub xds_tls_key: Option<PathBuf>,
    /// Proxies may authenticate with a client certificate that chains to this CA (PEM);
    /// its URI SAN spiffe://<trust domain>/mesh/<mesh>/virtualNode/<name> (or
    /// /virtualGateway/<name>) is the one node it may stream.
    #[arg(long, env = "MESHD_XDS_CLIENT_CA", requires = "xds_tls_cert")]
    pub xds_client_ca: Option<PathBuf>,
    /// Proxies may authenticate with a bearer token (`authorization: Bearer <token>`):
    /// each line of this file is a token and the node ids it may stream (`*` for one
    /// whole name; a lone `*` for every node); `#` starts a comment. SIGHUP re-reads it.
    #[arg(long, env = "MESHD_XDS_TOKENS")]
    pub xds_tokens: Option<PathBuf>,
    /// The SPIFFE trust domain of proxies' client certificates.
    #[arg(long, env = "MESHD_TRUST_DOMAIN", default_value = crate::access::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Serve xDS on a non-loopback --xds-addr without any proxy credential (anyone who
    /// reaches it may read every proxy's configuration).
    #[arg(long, env = "MESHD_XDS_INSECURE")]
    pub xds_insecure: bool,
    /// Most connections held on the xDS port (when full, the oldest connection without
    /// a stream is closed to make room).
    #[arg(long, env = "MESHD_XDS_MAX_CONNECTIONS", default_value_t = ListenerLimits::default().max_connections)]
    pub xds_max_connections: usize,
    /// How long a connection to the xDS port may take for its TLS handshake and HTTP/2
    /// preface (e.g. `10s`).
    #[arg(long, env = "MESHD_XDS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub xds_handshake_timeout: Duration,
    /// How long a connection to the xDS port may carry no stream before it is closed.
    #[arg(long, env = "MESHD_XDS_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub xds_idle_timeout: Duration,
    /// Most concurrent streams on one xDS connection.
    #[arg(long, env = "MESHD_XDS_MAX_STREAMS_PER_CONNECTION", default_value_t = XdsConfig::default().max_streams_per_connection)]
    pub xds_max_streams_per_connection: u32,
    /// Most xDS streams one identity (a certificate's, a token, or the node id an
    /// unauthenticated proxy claims) may hold at once.
    #[arg(long, env = "MESHD_XDS_MAX_STREAMS_PER_IDENTITY", default_value_t = crate::access::DEFAULT_MAX_STREAMS_PER_IDENTITY)]
    pub xds_max_streams_per_identity: usize,
    /// How long a proxy's compiled configuration is kept after its last stream ends
    /// (a reconnecting proxy finds it ready).
    #[arg(long, env = "MESHD_XDS_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub xds_grace: Duration,
    /// Longest push window, in milliseconds: a lone change is pushed at once; changes
    /// within the window of the last push are pushed together when it ends. The window is
    /// twice as long as the last publication took, at most this (0: no window).
    #[arg(long, env = "MESHD_DEBOUNCE_MS", default_value_t = crate::hub::DEFAULT_DEBOUNCE.as_millis() as u64)]
    pub debounce_ms: u64,
    /// Where the instances of virtual nodes with `awsCloudMap` service discovery come
    /// from: `local` (meshd's own Cloud Map registry, served on --api-addr with AWS's
    /// API) or `aws` (AWS Cloud Map's `DiscoverInstances` in --region, or
    /// --cloud-map-endpoint's, with the standard AWS credentials chain).
    #[arg(long, env = "MESHD_CLOUD_MAP", value_enum, default_value_t = SourceKind::Local)]
    pub cloud_map: SourceKind,
    /// With `--cloud-map aws`: the Cloud Map endpoint to call instead of AWS's (a VPC
    /// endpoint, a stand-in); the `data-` host prefix is then not added.
    #[arg(long, env = "MESHD_CLOUD_MAP_ENDPOINT")]
    pub cloud_map_endpoint: Option<String>,
    /// With `--cloud-map aws`: how often each followed service is read again (failures
    /// are retried sooner, backing off up to a minute).
    #[arg(long, env = "MESHD_CLOUD_MAP_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub cloud_map_interval: Duration,
    /// Where the certificates of listeners with `tls.certificate.acm` and the CAs of
    /// client policies with `validation.trust.acm` come from: `local` (meshd's own CA:
    /// a root kept in the store, or --ca-cert/--ca-key, issuing a short-lived leaf per
    /// virtual node) or `aws` (AWS Certificate Manager's `ExportCertificate` and ACM
    /// Private CA's `GetCertificateAuthorityCertificate` in --region, with the standard
    /// AWS credentials chain).
    #[arg(long, env = "MESHD_ACM", value_enum, default_value_t = crate::certificates::SourceKind::Local)]
    pub acm: crate::certificates::SourceKind,
    /// With `--acm aws`: the ACM endpoint to call instead of AWS's.
    #[arg(long, env = "MESHD_ACM_ENDPOINT")]
    pub acm_endpoint: Option<String>,
    /// With `--acm aws`: the ACM Private CA endpoint to call instead of AWS's.
    #[arg(long, env = "MESHD_ACM_PCA_ENDPOINT")]
    pub acm_pca_endpoint: Option<String>,
    /// With `--acm local`: issue from this intermediate CA (PEM: its certificate, then
    /// the chain up to its root) instead of the root meshd generates and keeps.
    #[arg(long, env = "MESHD_CA_CERT", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The private key (PEM) of --ca-cert.
    #[arg(long, env = "MESHD_CA_KEY", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// With `--acm local`: how long an issued leaf is valid (it is issued again at two
    /// thirds of that), e.g. `24h`, `60s`.
    #[arg(long, env = "MESHD_CERT_TTL", default_value = "24h", value_parser = parse_duration)]
    pub cert_ttl: Duration,
    /// Region in ARNs (and of AWS Cloud Map with `--cloud-map aws`).
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
    /// The store.
    #[command(flatten)]
    pub storage: StoreArgs,
}

/// Which store meshd keeps its resources (and records) in: flags of `meshd serve` and
/// `meshd ca import`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
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

impl StoreArgs {
    /// The store these flags describe.
    pub fn config(&self) -> StoreConfig {
        match self.store {
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
        }
    }
}

/// How `meshd serve` authenticates API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// No authentication.
    None,
    /// AWS Signature Version 4.
    Sigv4,
}

/// Parses a duration: a number with a unit, `ms`, `s`, `m` or `h` (`500ms`, `10s`, `5m`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a duration such as 500ms, 10s, 5m or 1h"))?;
    let unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => {
            return Err(format!(
                "{value:?} is not a duration such as 500ms, 10s, 5m or 1h"
            ));
        }
    };
    unit.checked_mul(u32::try_from(number).map_err(|_| format!("{value:?} is too long"))?)
        .ok_or_else(|| format!("{value:?} is too long"))
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
            xds: XdsConfig {
                tls: match (&self.xds_tls_cert, &self.xds_tls_key) {
                    (Some(cert), Some(key)) => Some(XdsTls {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: self.xds_client_ca.clone(),
                    }),
                    _ => None,
                },
                tokens_file: self.xds_tokens.clone(),
                trust_domain: self.trust_domain.clone(),
                insecure: self.xds_insecure,
                listener: ListenerLimits {
                    max_connections: self.xds_max_connections,
                    handshake_timeout: self.xds_handshake_timeout,
                    idle_timeout: self.xds_idle_timeout,
                },
                max_streams_per_connection: self.xds_max_streams_per_connection,
                max_streams_per_identity: self.xds_max_streams_per_identity,
                grace: self.xds_grace,
            },
            cloud_map: match self.cloud_map {
                SourceKind::Local => SourceConfig::Local,
                SourceKind::Aws => SourceConfig::Aws(AwsConfig {
                    region: self.region.clone(),
                    endpoint: self.cloud_map_endpoint.clone(),
                    interval: self.cloud_map_interval,
                }),
            },
            acm: match self.acm {
                crate::certificates::SourceKind::Local => {
                    crate::certificates::SourceConfig::Local(crate::certificates::LocalConfig {
                        intermediate: self.ca_cert.clone().zip(self.ca_key.clone()),
                        cert_ttl: self.cert_ttl,
                        trust_domain: self.trust_domain.clone(),
                    })
                }
                crate::certificates::SourceKind::Aws => {
                    crate::certificates::SourceConfig::Aws(crate::certificates::aws::AwsConfig {
                        region: self.region.clone(),
                        acm_endpoint: self.acm_endpoint.clone(),
                        pca_endpoint: self.acm_pca_endpoint.clone(),
                        refresh: crate::certificates::aws::REFRESH,
                    })
                }
            },
            account: Account {
                region: self.region.clone(),
                account_id: self.account_id.clone(),
            },
            limits: Limits {
                meshes: self.limit_meshes,
                resources_per_mesh: self.limit_resources_per_mesh,
                routes_per_parent: self.limit_routes_per_parent,
            },
            store: self.storage.config(),
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
            metrics_addr: self.metrics_addr,
            console: Some(ConsoleConfig {
                addr: self.console_addr,
                token_file: self.console_token_file.clone(),
                insecure: self.console_insecure,
            }),
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

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
