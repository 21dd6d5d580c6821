//! Just enough of the Chrome DevTools Protocol to drive headless Chromium
//! from a test: start the browser, open a page, evaluate JavaScript, take a
//! screenshot. The WebSocket framing is written out here (a few dozen lines)
//! rather than pulling a WebSocket crate into the workspace for one test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Chromium binary, when one is installed.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A headless Chromium, killed (it and its profile removed) on drop.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    socket: WebSocket,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The process this test started, by its handle; its helpers exit
        // with it.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Helpers that outlive the browser for a moment may still write
        // into the profile; a second pass catches what they left.
        for _ in 0..2 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
        }
    }
}

impl Browser {
    pub async fn launch(binary: &str) -> Browser {
        let profile = std::env::temp_dir().join(format!("cdp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts");
        let (port, path) = wait_for_port_file(&profile).await;
        let socket = WebSocket::connect(port, &path).await;
        Browser {
            child,
            profile,
            socket,
            next_id: 0,
        }
    }

    /// Closes the browser and waits for it (and its helpers) to exit, so
    /// its profile can be removed whole.
    pub async fn close(mut self) {
        self.next_id += 1;
        let message = json!({"id": self.next_id, "method": "Browser.close"});
        self.socket.send(&message.to_string()).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Drop kills it if it is still there, and removes the profile.
    }

    /// Sends a command (to a page when `session` is given) and returns its result.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket.send(&message.to_string()).await;
        loop {
            let reply: Value =
                serde_json::from_str(&self.socket.receive().await).expect("CDP JSON");
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
            // Anything else is an event nobody subscribed to on purpose.
        }
    }

    /// Opens `url` in a new page with a `width` x `height` viewport and
    /// returns the page's session id.
    pub async fn open(&mut self, url: &str, width: u32, height: u32) -> String {
        let target = self
            .call(None, "Target.createTarget", json!({"url": url}))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        let session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        session
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let result = self
            .call(
                Some(session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64_decode(result["data"].as_str().expect("screenshot data"))
    }
}

/// Chromium writes `DevToolsActivePort` (port, then the browser's WebSocket
/// path) into its profile once it listens.
async fn wait_for_port_file(profile: &Path) -> (u16, String) {
    let file = profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                if let Ok(port) = port.trim().parse() {
                    return (port, path.trim().to_owned());
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromium did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client WebSocket (RFC 6455) over loopback: text frames only.
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    async fn connect(port: u16, path: &str) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("devtools socket");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = stream.read_u8().await.expect("handshake reply");
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        WebSocket { stream }
    }

    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8]; // FIN + text
        let len = payload.len();
        // Client frames must be masked; a zero mask leaves the payload as it is.
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.expect("send frame");
    }

    async fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let first = self.stream.read_u8().await.expect("frame");
            let second = self.stream.read_u8().await.expect("frame");
            let len = match second & 0x7f {
                126 => u64::from(self.stream.read_u16().await.expect("length")),
                127 => self.stream.read_u64().await.expect("length"),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.expect("payload");
            match first & 0x0f {
                0x8 => panic!("the browser closed the connection"),
                0x9 | 0xA => continue, // ping / pong
                _ => message.extend_from_slice(&payload),
            }
            if first & 0x80 != 0 {
                return String::from_utf8(message).expect("UTF-8 text");
            }
        }
    }
}

/// Standard base64 (CDP's screenshot encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
