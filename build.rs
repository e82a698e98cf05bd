//! Builds the descriptor set of the Envoy protos that meshd produces, so that compiled
//! configuration can be printed as Envoy's canonical JSON (and `Any`s resolved).
//!
//! The `.proto` files are the ones the `envoy-types` crate ships; they are found through
//! `cargo metadata` and compiled with `protox` (pure Rust, no `protoc`).

use std::path::PathBuf;
use std::process::Command;

/// The protos whose messages meshd emits (directly or inside an `Any`).
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/admin/v3/config_dump.proto",
    "envoy/service/status/v3/csds.proto",
];

fn envoy_types_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &target,
            "--manifest-path",
        ])
        .arg(PathBuf::from(&manifest).join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("cargo metadata prints UTF-8");
    // Find `"manifest_path":"…/envoy-types-<version>/Cargo.toml"` without a JSON parser.
    let marker = "\"manifest_path\":\"";
    text.match_indices(marker)
        .map(|(at, _)| &text[at + marker.len()..])
        .filter_map(|rest| rest.split('"').next())
        .find(|path| path.contains("envoy-types-") && path.ends_with("Cargo.toml"))
        .map(|path| {
            PathBuf::from(path)
                .parent()
                .expect("a manifest has a directory")
                .to_path_buf()
        })
        .expect("envoy-types is a dependency")
}

fn main() {
    let root = envoy_types_dir().join("proto");
    let includes = [
        "data-plane-api",
        "xds",
        "protoc-gen-validate",
        "googleapis",
        "cel-spec",
        "opentelemetry-proto",
        "client_model",
    ]
    .map(|dir| root.join(dir));
    let descriptors = protox::compile(ROOTS, includes).expect("Envoy's protos compile");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out.join("envoy_descriptors.bin"), bytes).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=build.rs");
}
