//! Real etcd members on loopback for the etcd tests: one member or a cluster, plain or
//! with TLS (etcd's server certificate and client-certificate authentication, from a CA
//! made for the test).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::envoy::free_port;
use super::pki::Pki;

/// How long an etcd member may take to become healthy.
const WAIT: Duration = Duration::from_secs(30);

/// PEM files of a CA made for one test, of etcd's server certificate (for 127.0.0.1 and
/// localhost) and of a client certificate, all signed by that CA.
pub struct TestPki {
    pki: Pki,
}

impl TestPki {
    /// Makes a fresh CA, server certificate and client certificate.
    pub fn new() -> TestPki {
        let pki = Pki::new("meshd test etcd CA");
        pki.issue("server", &["127.0.0.1", "localhost"], &[]);
        pki.issue("client", &["meshd"], &[]);
        TestPki { pki }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.pki.ca()
    }

    /// etcd's server certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        self.pki.pair("server")
    }

    /// The client certificate and key that etcd accepts.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        self.pki.pair("client")
    }
}

/// How an etcd member serves its clients.
#[derive(Clone)]
pub enum ClientTls {
    /// Plain `http://`.
    None,
    /// `https://` with the server certificate, and only clients with a certificate of the
    /// test CA (`--client-cert-auth`).
    Required {
        /// etcd's CA file.
        ca: PathBuf,
        /// etcd's server certificate.
        cert: PathBuf,
        /// Its key.
        key: PathBuf,
    },
}

/// One etcd member on loopback, with its data in a temporary directory; killed when
/// dropped.
pub struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP port of `/health` (`--listen-metrics-urls`), reachable without TLS.
    metrics_port: u16,
    initial_cluster: String,
    tls: ClientTls,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

/// Panics, saying how to install it, unless `etcd` can be run.
pub fn require_etcd() {
    match std::process::Command::new("etcd").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`etcd --version` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => panic!(
            "these tests run real etcd, but `etcd` cannot be run ({err}): install it with \
             `apt-get install etcd-server` (bash .ci/run does)"
        ),
    }
}

impl EtcdMember {
    /// The member's client URL.
    pub fn endpoint(&self) -> String {
        let scheme = match self.tls {
            ClientTls::None => "http",
            ClientTls::Required { .. } => "https",
        };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts (or restarts, on the same data directory and ports) the member.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let metrics = format!("http://127.0.0.1:{}", self.metrics_port);
        let mut command = std::process::Command::new("etcd");
        command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-metrics-urls", &metrics])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", "meshd-test"])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let ClientTls::Required { ca, cert, key } = &self.tls {
            command
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--client-cert-auth");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("etcd cannot be started ({err})"));
        self.child = Some(child);
    }

    /// Kills the member (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until the member answers `/health` with a leader.
    pub async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().unwrap()
            {
                panic!(
                    "etcd {} exited with {status}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let health = http
                .get(format!("http://127.0.0.1:{}/health", self.metrics_port))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = health
                && response
                    .text()
                    .await
                    .unwrap_or_default()
                    .contains("\"true\"")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd {} did not become healthy:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- etcd {} log:\n{}", self.name, self.log_tail());
        }
    }
}

/// `members` plain-HTTP etcd members forming one cluster, started and healthy.
pub async fn etcd_cluster(members: usize) -> Vec<EtcdMember> {
    etcd_cluster_with(members, ClientTls::None).await
}

/// `members` etcd members forming one cluster that serve clients as `tls` says, started
/// and healthy.
pub async fn etcd_cluster_with(members: usize, tls: ClientTls) -> Vec<EtcdMember> {
    require_etcd();
    let ports: Vec<(u16, u16, u16)> = (0..members)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let initial_cluster = ports
        .iter()
        .enumerate()
        .map(|(index, (_, peer, _))| format!("m{index}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cluster: Vec<EtcdMember> = ports
        .into_iter()
        .enumerate()
        .map(
            |(index, (client_port, peer_port, metrics_port))| EtcdMember {
                name: format!("m{index}"),
                client_port,
                peer_port,
                metrics_port,
                initial_cluster: initial_cluster.clone(),
                tls: tls.clone(),
                dir: tempfile::tempdir().unwrap(),
                child: None,
            },
        )
        .collect();
    for member in &mut cluster {
        member.spawn();
    }
    for member in &mut cluster {
        member.wait_healthy().await;
    }
    cluster
}

/// The members' client URLs, comma-separated (as `--etcd-endpoints` takes them).
pub fn endpoints(cluster: &[EtcdMember]) -> String {
    cluster
        .iter()
        .map(EtcdMember::endpoint)
        .collect::<Vec<_>>()
        .join(",")
}
