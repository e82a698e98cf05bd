//! The meshd binary.

use clap::Parser;
use meshd::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("MESHD_LOG").unwrap_or_else(|_| EnvFilter::new("meshd=info")),
        )
        .init();
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Compile(args) => compile(&args).map_err(Into::into),
        Command::Bootstrap(args) => bootstrap(&args).map_err(Into::into),
        Command::Apply(args) => apply(&args).await.map_err(Into::into),
        Command::Export(args) => export(&args).await.map_err(Into::into),
        Command::Ca(command) => ca(command).await.map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("meshd: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn apply(args: &meshd::cli::ApplyArgs) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    let client = meshd::apply::client::Client::connect(&args.endpoint_url).await;
    meshd::apply::apply(&client, &args.options(), &mut out)
        .await
        .map(|_| ())
        .map_err(std::io::Error::other)
}

async fn export(args: &meshd::cli::ExportArgs) -> std::io::Result<()> {
    let client = meshd::apply::client::Client::connect(&args.endpoint_url).await;
    let text =
        meshd::apply::export::export(&client, &args.mesh, args.format.format(), &args.namespace)
            .await
            .map_err(std::io::Error::other)?;
    match &args.output {
        Some(path) => std::fs::write(path, text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

async fn ca(command: meshd::cli::CaCommand) -> std::io::Result<()> {
    use meshd::certificates::authority::{self, StoredAuthority};
    match command {
        meshd::cli::CaCommand::Bundle { endpoint_url } => {
            let client = meshd::apply::client::Client::connect(&endpoint_url).await;
            let answer = client
                .get("/meshd/v1/ca/bundle")
                .await
                .map_err(std::io::Error::other)?;
            print!("{}", answer["bundle"].as_str().unwrap_or_default());
            Ok(())
        }
        meshd::cli::CaCommand::Import(args) => {
            let stored = StoredAuthority {
                certificate: std::fs::read_to_string(&args.cert)?,
                key: zeroize::Zeroizing::new(std::fs::read_to_string(&args.key)?),
            };
            let config = args.storage.config();
            tokio::task::spawn_blocking(move || {
                let store = meshd::store::Store::open(&config, Default::default())
                    .map_err(|e| std::io::Error::other(format!("{e} (if a meshd serves this data directory, stop it first, or use etcd)")))?;
                authority::import(&store, &args.arn, stored).map_err(std::io::Error::other)?;
                eprintln!("{} now stands for the CA in {}", args.arn, args.cert.display());
                Ok(())
            })
            .await?
        }
    }
}

fn bootstrap(args: &meshd::cli::BootstrapArgs) -> std::io::Result<()> {
    use meshd::bootstrap::{
        BootstrapOverrides, BootstrapSettings, bootstrap_yaml, check_credentials,
    };
    let overrides = BootstrapOverrides {
        node_id: args.node_id.clone(),
        node_cluster: args.node_cluster.clone(),
        xds_endpoint: args.xds_endpoint.clone(),
        admin_port: args.admin_port,
        delta: args.delta,
        xds_ca: args.xds_ca.clone(),
        xds_cert: args.xds_cert.clone(),
        xds_key: args.xds_key.clone(),
        xds_token_file: args.xds_token_file.clone(),
    };
    let invalid = |e: meshd::bootstrap::BootstrapError| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    let settings = BootstrapSettings::from_env(|name| std::env::var(name).ok(), &overrides)
        .map_err(invalid)?;
    check_credentials(&settings).map_err(invalid)?;
    print!("{}", bootstrap_yaml(&settings));
    Ok(())
}

fn compile(args: &meshd::cli::CompileArgs) -> std::io::Result<()> {
    use meshd::compile::{self, ProxyId, json};
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    let proxy = ProxyId::parse(&args.proxy).map_err(|e| invalid(e.to_string()))?;
    let text = std::fs::read_to_string(&args.definition)?;
    let definition: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("{}: {e}", args.definition.display())))?;
    let store = meshd::store::Store::in_memory(Default::default());
    meshd::definition::load(&store, &definition).map_err(|e| invalid(e.to_string()))?;
    let mut config = compile::compile_proxy(&store.snapshot(), &proxy);
    // Offline, there is no registry: say which assignments `meshd serve` would fill.
    for (cluster, target) in &config.cloud_map {
        config.diagnostics.push(format!(
            "cluster {cluster} takes its endpoints from Cloud Map service {}; `meshd compile` reads no registry, so its assignment is empty here",
            target.query
        ));
    }
    if let Err(dangling) = compile::check_references(&config) {
        let list: Vec<String> = dangling.iter().map(ToString::to_string).collect();
        return Err(std::io::Error::other(format!(
            "the compiled configuration is inconsistent: {}",
            list.join("; ")
        )));
    }
    for (name, query) in &config.secrets {
        config.diagnostics.push(format!(
            "secret {name} ({query}) is served by `meshd serve` from its certificate source (--acm); `meshd compile` has none{}",
            if args.bootstrap { ", so the bootstrap holds a stand-in issued by a throwaway CA" } else { "" }
        ));
    }
    let output = if args.bootstrap {
        let secrets = meshd::certificates::stand_in_secrets(&config)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        json::static_bootstrap(&config, &proxy.to_string(), &secrets)
    } else {
        json::config_json(&config)
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&output).expect("JSON values print")
    );
    Ok(())
}

async fn serve(args: meshd::cli::ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // The connection limits, not the open-files limit, decide how many connections
    // meshd holds.
    match meshd::net::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(err) => tracing::warn!("cannot raise the open-files limit: {err}"),
    }
    let server = meshd::server::start(args.server_config()).await?;
    tracing::info!(api_addr = %server.api_addr, "meshd is serving the App Mesh API on http://{}", server.api_addr);
    if let Some(metrics_addr) = server.metrics_addr {
        tracing::info!(%metrics_addr, "meshd is serving its metrics on http://{metrics_addr}/metrics");
    }
    if let Some(console_addr) = server.console_addr {
        tracing::info!(%console_addr, "meshd is serving its console on http://{console_addr}/");
    }
    if let Some(xds_addr) = server.xds_addr {
        tracing::info!(xds_addr = %xds_addr, "meshd is serving xDS (ADS) on {xds_addr}");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(server.shutdown().await?)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
