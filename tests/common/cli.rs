//! The real AWS CLI (`aws`, from PyPI `awscli`) against one meshd: run as a child process
//! (through `tokio::process`, so an in-process server keeps serving), isolated from the
//! user's AWS configuration, signing with a test key pair; its JSON output parsed.

use std::process::Output;

use serde_json::Value;

/// The key pair the CLI signs with (unless a test gives another secret).
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Runs `aws <service> …` against one endpoint.
pub struct AwsCli {
    pub endpoint: String,
    pub secret: String,
    /// `appmesh` or `servicediscovery`.
    pub service: &'static str,
}

impl AwsCli {
    /// `aws appmesh` against an in-process meshd.
    pub async fn start() -> (meshd::server::RunningServer, AwsCli) {
        require_cli().await;
        let server = super::start_server().await;
        let cli = AwsCli::of(&server, SECRET);
        (server, cli)
    }

    /// `aws appmesh` for `server`, signing with [`ACCESS_KEY`] and `secret`.
    pub fn of(server: &meshd::server::RunningServer, secret: &str) -> AwsCli {
        AwsCli::at(&format!("http://{}", server.api_addr), "appmesh", secret)
    }

    /// `aws <service>` for `endpoint` (`http://host:port`), signing with [`ACCESS_KEY`]
    /// and `secret`.
    pub fn at(endpoint: &str, service: &'static str, secret: &str) -> AwsCli {
        AwsCli {
            endpoint: endpoint.to_string(),
            secret: secret.to_string(),
            service,
        }
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = tokio::process::Command::new("aws");
        // Nothing from the environment's AWS setup (profiles, endpoints, credentials) may leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(&name);
            }
        }
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", super::REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_PAGER", "")
            // DiscoverInstances' host prefix `data-` would send the call elsewhere.
            .env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
            .arg(self.service)
            .args(args)
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .kill_on_drop(true);
        match command.output().await {
            Ok(output) => output,
            Err(err) => panic!(
                "could not run `aws {} {}`: {err}",
                self.service,
                args.join(" ")
            ),
        }
    }

    /// Runs a command that must succeed and returns the JSON it prints.
    pub async fn ok(&self, args: &[&str]) -> Value {
        let output = self.succeeds(args).await;
        serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "`aws {} {}` printed no JSON ({err}):\n{}",
                self.service,
                args.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs a command that must succeed (as `tag-resource`, which prints nothing).
    pub async fn succeeds(&self, args: &[&str]) -> Output {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "`aws {} {}` failed ({}):\n{}",
            self.service,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs a command that must fail with the service error `code` from `operation`;
    /// returns what the CLI printed on stderr.
    pub async fn fails(&self, args: &[&str], operation: &str, code: &str) -> String {
        let output = self.run(args).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        // awscli v1 exits with 255 on a service error (v2 uses 254).
        assert!(
            matches!(output.status.code(), Some(254 | 255)),
            "`aws {} {}` should fail with a service error, got {} and stdout {}\nstderr: {stderr}",
            self.service,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout)
        );
        let expected = format!("An error occurred ({code}) when calling the {operation} operation");
        assert!(
            stderr.contains(&expected),
            "`aws {} {}`: stderr should contain {expected:?}:\n{stderr}",
            self.service,
            args.join(" ")
        );
        stderr
    }
}

/// Fails (never skips) when the AWS CLI is missing.
pub async fn require_cli() {
    match tokio::process::Command::new("aws")
        .arg("--version")
        .output()
        .await
    {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`aws --version` failed ({}): {}{}; install the AWS CLI with `pip install awscli`",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(err) => panic!(
            "the AWS CLI (`aws`) is required by these tests but could not be run ({err}); \
             install it with `pip install awscli` and make sure `aws` is on PATH"
        ),
    }
}
