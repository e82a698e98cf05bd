//! The real `meshd serve` binary as a child process, for tests that kill or restart it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `meshd serve` process on a free API port (killed with SIGKILL when dropped), with
/// the lines it has logged so far.
pub struct MeshdProcess {
    /// The process.
    pub child: Child,
    /// Where its App Mesh API listens.
    pub api: SocketAddr,
    /// What it has logged on stdout.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl MeshdProcess {
    /// Runs `meshd serve --api-addr 127.0.0.1:0 <args>` and waits (a minute at most) until
    /// it logs its API address; panics with its stderr if it exits first.
    pub async fn start(args: &[&str]) -> MeshdProcess {
        Self::start_under(&[], args).await
    }

    /// [`MeshdProcess::start`], run by the command `wrapper` (`["prlimit", "--nofile=…",
    /// "--"]`) when it is not empty.
    pub async fn start_under(wrapper: &[&str], args: &[&str]) -> MeshdProcess {
        let meshd = env!("CARGO_BIN_EXE_meshd");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(meshd);
                command
            }
            None => Command::new(meshd),
        };
        let mut child = command
            .args(["serve", "--api-addr", "127.0.0.1:0"])
            .args(args)
            .env("MESHD_LOG", "meshd=info")
            // Tests run many meshd processes at once: each console on a port of its own
            // (a test's own --console-addr wins over this).
            .env("MESHD_CONSOLE_ADDR", "127.0.0.1:0")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("meshd starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let api = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some((_, rest)) = line.split_once("App Mesh API on http://") {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    return Some(addr.parse::<SocketAddr>().unwrap());
                }
            }
            None
        })
        .await
        .expect("meshd logs its address within a minute");
        let Some(api) = api else {
            let mut stderr = String::new();
            let _ = child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .await;
            panic!("meshd exited without serving: {stderr}");
        };
        // Keep reading its log so that it never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        MeshdProcess { child, api, log }
    }

    /// Runs `meshd serve --api-addr 127.0.0.1:0 --xds-addr 127.0.0.1:0 <args>` expecting
    /// it to refuse to start: its exit status and standard error. Panics if it is still
    /// running after a minute.
    pub async fn refusal(args: &[&str]) -> (std::process::ExitStatus, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_meshd"))
            .args([
                "serve",
                "--api-addr",
                "127.0.0.1:0",
                "--xds-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("NO_COLOR", "1")
            .env("MESHD_CONSOLE_ADDR", "127.0.0.1:0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), output)
            .await
            .expect("meshd refuses to start rather than serving")
            .expect("meshd runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into(),
        )
    }

    /// The address its xDS server listens on, as it logged it (waiting a minute at most).
    pub async fn xds_addr(&self) -> SocketAddr {
        self.logged_addr("serving xDS (ADS) on ").await
    }

    /// The address its console listens on, as it logged it (waiting a minute at most).
    pub async fn console_addr(&self) -> SocketAddr {
        self.logged_addr("serving its console on http://").await
    }

    /// The address logged right after `before` (waiting a minute at most).
    async fn logged_addr(&self, before: &str) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|line| {
                let (_, rest) = line.split_once(before)?;
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                addr.parse().ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "meshd did not log the address after {before:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether meshd has logged a line containing `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }
}
