//! Debian's headless chromium, driven by playwright-core (tests/browser/driver.mjs, under
//! node): what a person sees in the console. `.ci/run` installs both; a missing one fails
//! the test and says how to install it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where the browser driver lives.
fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where the console tests keep their screenshots (test output).
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Panics, saying how to install it, if chromium, node or playwright-core is missing.
pub fn require_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install -y chromium (.ci/run does)"
    );
    assert!(
        driver_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: npm ci --prefix tests/browser (.ci/run does)"
    );
}

/// One headless chromium with one page.
pub struct Browser {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Browser {
    /// Starts the driver and its chromium.
    pub async fn start() -> Browser {
        require_browser();
        let mut child = Command::new("node")
            .arg("driver.mjs")
            .current_dir(driver_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (apt-get install -y nodejs)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            _child: child,
            stdin,
            stdout,
        }
    }

    /// Sends `command`; its answer, or the driver's error.
    pub async fn try_send(&mut self, command: Value) -> Result<Value, String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("the browser answers within a minute")
            .unwrap()
            .expect("the browser driver is running");
        let answer: Value = serde_json::from_str(&line).unwrap();
        match answer.get("error") {
            Some(error) => Err(error.as_str().unwrap_or_default().to_string()),
            None => Ok(answer["ok"].clone()),
        }
    }

    async fn send(&mut self, command: Value) -> Value {
        let shown = command.to_string();
        self.try_send(command)
            .await
            .unwrap_or_else(|err| panic!("{shown}: {err}"))
    }

    /// Loads `url`; the text the page shows.
    pub async fn goto(&mut self, url: &str) -> String {
        self.send(json!({ "goto": url }))
            .await
            .as_str()
            .unwrap()
            .into()
    }

    /// Waits, without a reload, until the page shows `text`; how long that took, or the
    /// driver's error after `timeout`.
    pub async fn wait_for(&mut self, text: &str, timeout: Duration) -> Result<Duration, String> {
        self.try_send(json!({ "waitFor": text, "timeout": timeout.as_millis() as u64 }))
            .await
            .map(|ms| Duration::from_millis(ms.as_u64().unwrap_or_default()))
    }

    /// The text of every element that `selector` matches.
    pub async fn texts(&mut self, selector: &str) -> Vec<String> {
        let texts = self.send(json!({ "text": selector })).await;
        texts
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }

    /// Types `value` into the field `selector`.
    pub async fn fill(&mut self, selector: &str, value: &str) {
        self.send(json!({ "fill": selector, "value": value })).await;
    }

    /// Clicks `selector`; the text of the page it leads to.
    pub async fn click(&mut self, selector: &str) -> String {
        self.send(json!({ "click": selector }))
            .await
            .as_str()
            .unwrap()
            .into()
    }

    /// Saves a PNG of the whole page as `name` in [`screenshot_dir`]; its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(name);
        self.send(json!({ "screenshot": path })).await;
        path
    }
}
