//! Config fan-out benchmark (issue 6): how fast a change made through the App Mesh API
//! reaches N proxies connected over ADS, and what each proxy costs meshd.
//!
//! ```sh
//! cargo run --release --example fanout -- --proxies 1000 --nodes 100 --changes 5 --mode sotw
//! cargo run --release --example fanout -- --mode delta
//! ```
//!
//! meshd runs as its own process (`serve --store memory` on free loopback ports), so the
//! RSS and CPU figures are meshd's alone; the streams share the machine with it. Without
//! `--meshd`, the tool builds meshd with the same profile (`cargo build --bin meshd`) and
//! runs `target/<profile>/meshd`.
//!
//! The last line printed is the result:
//! `fanout mode=… proxies=N nodes=M changes=K p50_ms=… p90_ms=… p99_ms=… max_ms=…
//! bytes_per_push=… server_rss_mib=… rss_per_proxy_kib=… server_cpu_s=…`, where the
//! latencies run from the API call's response to a proxy's receipt of the new route
//! configuration (the line before gives change → ACK), bytes_per_push is every response
//! byte received during the change phase divided by N × K, server_rss_mib is meshd's RSS
//! with every stream connected, and server_cpu_s is meshd's CPU time over the whole run.
//!
//! `--baseline` then replays meshd's own route responses (the bytes stream 0 received)
//! from `xds_replay` (`src/bin/xds_replay.rs`: a minimal tonic ADS server that writes
//! pre-encoded bytes, in its own process as meshd is, with no control plane behind it) to
//! the same number of streams, and appends `baseline_p99_ms=… ratio=…` (meshd's p99 / the
//! baseline's).
//!
//! Before the result line come a `cold_start` line (all N streams opened at once: how
//! long until every proxy held its first configuration, and the spread per proxy) and a
//! `detail` line (change → ACK percentiles, missing changes, failed streams).

#[path = "load.rs"]
mod load;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Sotw,
    Delta,
}

/// Config fan-out benchmark for meshd.
#[derive(Debug, Parser)]
struct Cli {
    /// ADS streams (proxies) to open.
    #[arg(long, default_value_t = 1000)]
    proxies: usize,
    /// Virtual nodes the proxies are spread over (at least 2).
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Route-weight changes to measure (at most 98).
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// ADS variant.
    #[arg(long, value_enum, default_value_t = ModeArg::Sotw)]
    mode: ModeArg,
    /// The meshd binary (default: built with this tool's profile).
    #[arg(long)]
    meshd: Option<PathBuf>,
    /// The xds_replay binary for --baseline (default: built with this tool's profile).
    #[arg(long)]
    replay: Option<PathBuf>,
    /// meshd's --debounce-ms (default: meshd's own).
    #[arg(long)]
    debounce_ms: Option<u64>,
    /// Also run the baseline (meshd's own response bytes written to the same N streams by
    /// a minimal tonic ADS server) and add `baseline_p99_ms=… ratio=…` to the result line.
    #[arg(long)]
    baseline: bool,
}

/// Builds the project's binaries (meshd, xds_replay) with this example's profile and
/// returns the directory that holds them.
fn build_binaries() -> Result<PathBuf, String> {
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "--quiet", "--bins", "--manifest-path"]);
    command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .map_err(|err| format!("cannot run cargo: {err}"))?;
    if !status.success() {
        return Err("cargo build --bins failed".into());
    }
    // target/<profile>/examples/fanout → target/<profile>/
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(PathBuf::from)
        .ok_or_else(|| "no target directory".into())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for figures worth recording");
    }
    let built = if cli.meshd.is_none() || (cli.baseline && cli.replay.is_none()) {
        match build_binaries() {
            Ok(dir) => Some(dir),
            Err(err) => {
                eprintln!("fanout: {err}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let from_build = |name: &str| built.as_ref().map(|dir| dir.join(name));
    let meshd = cli
        .meshd
        .or_else(|| from_build("meshd"))
        .expect("built when not given");
    let replay = cli
        .baseline
        .then(|| cli.replay.or_else(|| from_build("xds_replay")))
        .flatten();
    let args = load::Args {
        proxies: cli.proxies,
        nodes: cli.nodes,
        changes: cli.changes,
        mode: match cli.mode {
            ModeArg::Sotw => load::Mode::Sotw,
            ModeArg::Delta => load::Mode::Delta,
        },
        meshd,
        debounce_ms: cli.debounce_ms,
        baseline: replay,
    };
    match load::run(args).await {
        Ok(report) => {
            println!("{}", report.cold_start_line());
            println!("{}", report.detail_line());
            println!("{}", report.line());
            if report.missing > 0 {
                eprintln!(
                    "fanout: {} (proxy, change) pairs never arrived",
                    report.missing
                );
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fanout: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
