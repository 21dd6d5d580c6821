//! Headless Chromium for the dashboard test, driven over WebDriver: Debian's
//! `chromedriver` (package `chromium-driver`) started by the test on a free
//! port, and fantoccini as its client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::helpers::eventually;

/// Where Debian's `chromium` package installs the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package puts it on the PATH (`/usr/bin`).
const CHROMEDRIVER: &str = "chromedriver";
const MISSING: &str = "run scripts/test.sh, which installs Debian's chromium and chromium-driver";

/// A headless Chromium with one page, behind its own chromedriver.
pub struct Browser {
    client: Client,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a browser whose viewport is `width` x `height`.
    /// Fails the test, never skips it, when either program is missing.
    pub async fn launch(width: u32, height: u32) -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "no Chromium at {CHROMIUM}: {MISSING}"
        );
        let driver = Driver::start().await;
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
                // The viewport itself at this size, as a desktop page: the
                // window size alone also counts the browser's frame.
                "mobileEmulation": {
                    "deviceMetrics": {
                        "width": width,
                        "height": height,
                        "pixelRatio": 1.0,
                        "mobile": false,
                        "touch": false,
                    },
                },
            }),
        );
        // Plain HTTP to a driver on loopback: no TLS to set up.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .expect("chromedriver opens a Chromium session");
        Browser { client, driver }
    }

    /// Loads `url` in the page.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        self.client
            .execute(&format!("return {expression};"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("a screenshot")
    }

    /// Ends the session (chromedriver closes the browser), then stops chromedriver.
    pub async fn close(self) {
        self.client.close().await.expect("the session ends");
        drop(self.driver);
    }
}

/// A chromedriver process of this test's, killed (and the browser profile
/// removed) on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        // A port nobody listens on now; chromedriver binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}): {MISSING}"));
        let profile =
            std::env::temp_dir().join(format!("chromium-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("a browser profile directory");
        let mut driver = Driver {
            child,
            port,
            profile,
        };
        driver.wait_until_ready().await;
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls chromedriver's `/status` until it says it is ready.
    async fn wait_until_ready(&mut self) {
        let status = format!("{}/status", self.url());
        let http = reqwest::Client::new();
        eventually(
            Duration::from_secs(30),
            "chromedriver is ready",
            async || {
                if let Ok(Some(exit)) = self.child.try_wait() {
                    panic!("chromedriver exited at start ({exit})");
                }
                let body: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                (body["value"]["ready"] == true).then_some(())
            },
        )
        .await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The process this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A browser that is still exiting may write into its profile for a
        // moment; a second pass catches what it left.
        for _ in 0..2 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
        }
    }
}
