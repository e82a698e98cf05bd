//! The command line: `meshd serve` and its flags, each also read from a `MESHD_*` variable.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::api::Account;
use crate::server::ServerConfig;
use crate::store::Limits;

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
    Serve(ServeArgs),
    /// Print the Envoy configuration meshd compiles for one proxy, as Envoy JSON.
    Compile(CompileArgs),
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

/// Flags of `meshd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the App Mesh API (restJson1, as AWS clients speak it). Port 0 picks a free port.
    #[arg(long, env = "MESHD_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,
    /// Region in ARNs.
    #[arg(long, env = "MESHD_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id (12 digits) in ARNs and as meshOwner/resourceOwner.
    #[arg(long, env = "MESHD_ACCOUNT_ID", default_value = "111122223333", value_parser = parse_account_id)]
    pub account_id: String,
    /// Most meshes in the account.
    #[arg(long, env = "MESHD_LIMIT_MESHES", default_value_t = Limits::default().meshes)]
    pub limit_meshes: usize,
    /// Most virtual nodes, routers, services or gateways (each kind alone) in one mesh.
    #[arg(long, env = "MESHD_LIMIT_RESOURCES_PER_MESH", default_value_t = Limits::default().resources_per_mesh)]
    pub limit_resources_per_mesh: usize,
    /// Most routes per virtual router, and gateway routes per virtual gateway.
    #[arg(long, env = "MESHD_LIMIT_ROUTES_PER_PARENT", default_value_t = Limits::default().routes_per_parent)]
    pub limit_routes_per_parent: usize,
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
            account: Account {
                region: self.region.clone(),
                account_id: self.account_id.clone(),
            },
            limits: Limits {
                meshes: self.limit_meshes,
                resources_per_mesh: self.limit_resources_per_mesh,
                routes_per_parent: self.limit_routes_per_parent,
            },
        }
    }
}
