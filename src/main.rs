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
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
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

async fn serve(args: meshd::cli::ServeArgs) -> std::io::Result<()> {
    let server = meshd::server::start(args.server_config()).await?;
    tracing::info!(api_addr = %server.api_addr, "meshd is serving the App Mesh API on http://{}", server.api_addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await
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
