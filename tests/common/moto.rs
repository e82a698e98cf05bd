//! moto's server (`moto_server`, from PyPI `moto[server]`): its real implementation of
//! AWS APIs (Cloud Map's among them) on a loopback port, standing in for AWS.

use std::time::Duration;

use tokio::process::{Child, Command};

/// A running `moto_server` (killed when dropped). Its state lives in its memory: a
/// restart starts empty.
pub struct Moto {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers; panics (never skips) when
    /// `moto_server` is missing.
    pub async fn start() -> Moto {
        let mut moto = Moto {
            child: None,
            port: super::envoy::free_port(),
        };
        moto.restart().await;
        moto
    }

    /// Its endpoint: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (its state is lost).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "moto's server is required by this test but could not be run ({err}); \
                     install it with `pip install 'moto[server]'` and make sure `moto_server` is on PATH"
                )
            });
        self.child = Some(child);
        let url = format!("{}/moto-api/", self.endpoint());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::get(&url).await.is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not answer on port {} within a minute",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A `meshd serve` process with `args`, given test credentials and no other AWS setup,
/// as one that calls moto needs.
pub async fn meshd_for_moto(args: &[&str]) -> super::process::MeshdProcess {
    super::process::MeshdProcess::start_under(
        &[
            "env",
            "AWS_ACCESS_KEY_ID=test",
            "AWS_SECRET_ACCESS_KEY=test",
            "AWS_EC2_METADATA_DISABLED=true",
            "AWS_CONFIG_FILE=/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
        ],
        args,
    )
    .await
}
