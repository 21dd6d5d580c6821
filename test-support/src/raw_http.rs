//! [`RawConnection`]: HTTP/1.1 written by hand on a TCP socket, for the
//! tests of what an HTTP client library will not do: send half a request
//! head, trickle a body, hold a connection idle, invent a method.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// One TCP connection to a service.
#[derive(Debug)]
pub struct RawConnection {
    reader: OwnedReadHalf,
    /// `None` once [`RawConnection::split`] gave it away.
    writer: Option<OwnedWriteHalf>,
    /// Bytes read and not yet returned.
    unread: Vec<u8>,
}

/// The sending half of a [`RawConnection`], for a task that writes while
/// the test reads.
#[derive(Debug)]
pub struct RawWriter(OwnedWriteHalf);

impl RawWriter {
    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes).await?;
        self.0.flush().await
    }
}

/// A response as read from the socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's `error.code`, when it is the common JSON error.
    pub fn error_code(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        body["error"]["code"].as_str().map(str::to_owned)
    }
}

impl RawConnection {
    /// Connects to `127.0.0.1:port`.
    pub async fn open(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connecting");
        Self::over(stream)
    }

    fn over(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader,
            writer: Some(writer),
            unread: Vec::new(),
        }
    }

    /// Connects to `127.0.0.1:port` with a receive buffer of about `bytes`,
    /// so that an answer the test does not read soon fills it and the
    /// server's writes wait.
    pub async fn open_with_receive_buffer(port: u16, bytes: u32) -> Self {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(bytes)
            .expect("setting the receive buffer");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connecting");
        Self::over(stream)
    }

    /// The connection's local port: the peer port the server sees.
    pub fn local_port(&self) -> u16 {
        self.reader.local_addr().map_or(0, |a| a.port())
    }

    /// Gives the sending half away; this one keeps reading.
    pub fn split(mut self) -> (RawWriter, Self) {
        let writer = self.writer.take().expect("not split yet");
        (RawWriter(writer), self)
    }

    /// Connects to `127.0.0.1:port` from `from` (any address of 127.0.0.0/8
    /// is this machine), so one test can be several clients.
    pub async fn open_from(from: std::net::Ipv4Addr, port: u16) -> Self {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket
            .bind((from, 0).into())
            .expect("binding the local address");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connecting");
        Self::over(stream)
    }

    /// Writes `bytes`; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let writer = self.writer.as_mut().expect("not split");
        writer.write_all(bytes).await?;
        writer.flush().await
    }

    /// Reads until the server closes the connection: `Ok` with what it
    /// sent, or `Err` when it is still open after `deadline`.
    pub async fn closed_within(&mut self, deadline: Duration) -> Result<String, String> {
        let read_all = async {
            let mut buffer = [0u8; 4096];
            loop {
                match self.reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.unread.extend_from_slice(&buffer[..n]),
                }
            }
        };
        let closed = tokio::time::timeout(deadline, read_all).await.is_ok();
        let seen = String::from_utf8_lossy(&self.unread).into_owned();
        if closed {
            Ok(seen)
        } else {
            Err(format!("still open after {deadline:?}; seen: {seen:?}"))
        }
    }

    /// Reads one response (a `Content-Length` body), failing the test after
    /// `deadline`.
    pub async fn response_within(&mut self, deadline: Duration) -> RawResponse {
        tokio::time::timeout(deadline, self.read_response())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no response within {deadline:?}; seen: {:?}",
                    String::from_utf8_lossy(&self.unread)
                )
            })
    }

    /// Reads an answer's head: `Some` response when it is a whole one (it
    /// has a `Content-Length`), `None` when it is a stream (chunked: server-
    /// sent events), which stays open to read on. Fails the test after
    /// `deadline`.
    pub async fn head_within(&mut self, deadline: Duration) -> Option<RawResponse> {
        tokio::time::timeout(deadline, async {
            let (status, headers, head_end) = self.read_head().await;
            if headers.iter().any(|(n, _)| n == "content-length") {
                Some(self.read_body(status, headers, head_end).await)
            } else {
                None
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within {deadline:?}; seen: {:?}",
                String::from_utf8_lossy(&self.unread)
            )
        })
    }

    async fn read_response(&mut self) -> RawResponse {
        let (status, headers, head_end) = self.read_head().await;
        self.read_body(status, headers, head_end).await
    }

    async fn read_head(&mut self) -> (u16, Vec<(String, String)>, usize) {
        let head_end = loop {
            if let Some(at) = find(&self.unread, b"\r\n\r\n") {
                break at;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.unread[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, head_end)
    }

    async fn read_body(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        head_end: usize,
    ) -> RawResponse {
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        while self.unread.len() < body_start + length {
            self.fill().await;
        }
        let body =
            String::from_utf8_lossy(&self.unread[body_start..body_start + length]).into_owned();
        self.unread.drain(..body_start + length);
        RawResponse {
            status,
            headers,
            body,
        }
    }

    async fn fill(&mut self) {
        let mut buffer = [0u8; 4096];
        let n = self.reader.read(&mut buffer).await.unwrap_or_else(|e| {
            panic!(
                "the connection failed ({e}); seen: {:?}",
                String::from_utf8_lossy(&self.unread)
            )
        });
        assert!(
            n > 0,
            "the server closed the connection; seen: {:?}",
            String::from_utf8_lossy(&self.unread)
        );
        self.unread.extend_from_slice(&buffer[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
