//! [`PgProxy`]: a TCP proxy in front of Postgres for the crash tests and the
//! consumer benchmark. It fails on cue (cut a connection before or after the
//! batch's statement reaches the server, or swallow the reply of a statement
//! that committed; or refuse every connection for a while), and it counts the
//! protocol messages clients send, hence round trips.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How an armed [`PgProxy`] fails the connection that sends the trigger bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Close both sides without forwarding the bytes: the statement never
    /// reaches Postgres.
    BeforeForwarding,
    /// Forward the bytes, then close both sides at once: Postgres may or may
    /// not have run the statement when it notices.
    AfterForwarding,
    /// Forward the bytes, let Postgres run and commit the statement, drop its
    /// reply and close the client's side: the client cannot know it committed.
    SwallowReply,
}

/// Messages clients sent through the proxy, by kind (PostgreSQL protocol).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WireCounts {
    pub connections: u64,
    /// `Sync`: the end of an extended-protocol exchange; the client waits for
    /// the server's `ReadyForQuery`, so each is one round trip.
    pub syncs: u64,
    /// `Query` (simple protocol, e.g. `BEGIN`, `COMMIT`): one round trip each.
    pub simple_queries: u64,
    /// `Parse`: a statement prepared.
    pub parses: u64,
    /// `Execute`: a statement run.
    pub executes: u64,
}

impl WireCounts {
    /// Client waits for the server: syncs plus simple queries.
    pub fn round_trips(&self) -> u64 {
        self.syncs + self.simple_queries
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    syncs: AtomicU64,
    simple_queries: AtomicU64,
    parses: AtomicU64,
    executes: AtomicU64,
}

#[derive(Debug)]
struct Trigger {
    pattern: Vec<u8>,
    cut: Cut,
    remaining: usize,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    armed: AtomicBool,
    trigger: Mutex<Option<Trigger>>,
    cuts: AtomicUsize,
    down: AtomicBool,
    sever: watch::Sender<u64>,
    counters: Counters,
}

/// A fault-injecting proxy in front of one Postgres server.
#[derive(Debug)]
pub struct PgProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl PgProxy {
    /// Listens on a free loopback port and forwards to the server of `database_url`.
    pub async fn start(database_url: &str) -> io::Result<Self> {
        let (_, authority, _) = split_url(database_url);
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        let upstream = tokio::net::lookup_host(&host_port)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, host_port.clone()))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            armed: AtomicBool::new(false),
            trigger: Mutex::new(None),
            cuts: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            sever: watch::Sender::new(0),
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// `database_url` pointed at the proxy, with TLS off (the proxy reads the
    /// protocol).
    pub fn url(&self, database_url: &str) -> String {
        let (scheme, authority, rest) = split_url(database_url);
        let user = match authority.rsplit_once('@') {
            Some((user, _)) => format!("{user}@"),
            None => String::new(),
        };
        let separator = if rest.contains('?') { '&' } else { '?' };
        format!(
            "{scheme}://{user}{}{rest}{separator}sslmode=disable",
            self.addr
        )
    }

    /// The next `times` client writes containing `pattern` are failed as `cut` says.
    pub fn arm(&self, pattern: &[u8], cut: Cut, times: usize) {
        *self.shared.lock_trigger() = Some(Trigger {
            pattern: pattern.to_vec(),
            cut,
            remaining: times,
        });
        self.shared.armed.store(times > 0, Ordering::Release);
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::Acquire)
    }

    /// Down: every open connection is cut and new ones are closed at once.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::Release);
        if down {
            self.shared.sever.send_modify(|generation| *generation += 1);
        }
    }

    /// Messages sent by clients so far.
    pub fn counts(&self) -> WireCounts {
        let c = &self.shared.counters;
        WireCounts {
            connections: c.connections.load(Ordering::Acquire),
            syncs: c.syncs.load(Ordering::Acquire),
            simple_queries: c.simple_queries.load(Ordering::Acquire),
            parses: c.parses.load(Ordering::Acquire),
            executes: c.executes.load(Ordering::Acquire),
        }
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.sever.send_modify(|generation| *generation += 1);
    }
}

impl Shared {
    fn lock_trigger(&self) -> std::sync::MutexGuard<'_, Option<Trigger>> {
        self.trigger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `tail + chunk` holds the armed pattern; uses up one shot.
    fn fires(&self, tail: &[u8], chunk: &[u8]) -> Option<Cut> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut trigger = self.lock_trigger();
        let t = trigger.as_mut()?;
        // Only the last `len - 1` bytes of what came before: a match must end
        // in this chunk, or an old message would fire on a new one.
        let tail = &tail[tail.len().saturating_sub(t.pattern.len().saturating_sub(1))..];
        let mut window = Vec::with_capacity(tail.len() + chunk.len());
        window.extend_from_slice(tail);
        window.extend_from_slice(chunk);
        if t.remaining == 0 || !window.windows(t.pattern.len()).any(|w| w == t.pattern) {
            return None;
        }
        t.remaining -= 1;
        if t.remaining == 0 {
            self.armed.store(false, Ordering::Release);
        }
        self.cuts.fetch_add(1, Ordering::AcqRel);
        Some(t.cut)
    }
}

/// `(scheme, authority, path and query)` of `scheme://authority/path?query`.
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    (scheme, &rest[..end], &rest[end..])
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        if shared.down.load(Ordering::Acquire) {
            drop(client);
            continue;
        }
        tokio::spawn(proxy_connection(client, shared.clone()));
    }
}

async fn proxy_connection(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    shared.counters.connections.fetch_add(1, Ordering::AcqRel);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (close, _) = watch::channel(false);
    let swallow = AtomicBool::new(false);
    // When either direction ends, both do: dropping all four halves closes
    // both sockets, which is what a cut must look like.
    tokio::join!(
        upstream(
            Reader::new(client_read, &shared, &close),
            server_write,
            &shared,
            &swallow
        ),
        downstream(
            Reader::new(server_read, &shared, &close),
            client_write,
            &swallow
        ),
    );
}

/// One direction's reads, ended by the other direction closing or by a
/// sever of every connection; [`Reader::close`] ends the other direction.
struct Reader<'a> {
    from: OwnedReadHalf,
    close: &'a watch::Sender<bool>,
    closed: watch::Receiver<bool>,
    severed: watch::Receiver<u64>,
    buf: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(from: OwnedReadHalf, shared: &Shared, close: &'a watch::Sender<bool>) -> Self {
        Self {
            from,
            close,
            closed: close.subscribe(),
            severed: shared.sever.subscribe(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Ends both directions.
    fn close(&self) {
        self.close.send_replace(true);
    }

    /// The next bytes read, or `None` once this direction is over.
    async fn next(&mut self) -> Option<&[u8]> {
        let n = tokio::select! {
            read = self.from.read(&mut self.buf) => match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            },
            _ = self.closed.changed() => return None,
            _ = self.severed.changed() => return None,
        };
        Some(&self.buf[..n])
    }
}

/// Client to server: counts messages, fires the trigger.
async fn upstream(
    mut reader: Reader<'_>,
    mut to: OwnedWriteHalf,
    shared: &Shared,
    swallow: &AtomicBool,
) {
    let mut tail: Vec<u8> = Vec::new();
    let mut frames = Frames::default();
    while let Some(chunk) = reader.next().await {
        frames.feed(chunk, &shared.counters);
        match shared.fires(&tail, chunk) {
            None => {}
            Some(Cut::BeforeForwarding) => break,
            Some(Cut::AfterForwarding) => {
                let _ = to.write_all(chunk).await;
                break;
            }
            Some(Cut::SwallowReply) => swallow.store(true, Ordering::Release),
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
        keep_last(&mut tail, chunk, 256);
    }
    reader.close();
}

/// Appends `chunk` to `window`, keeping only its last `n` bytes: enough to
/// see a pattern that straddles two reads.
fn keep_last(window: &mut Vec<u8>, chunk: &[u8], n: usize) {
    window.extend_from_slice(chunk);
    let excess = window.len().saturating_sub(n);
    window.drain(..excess);
}

/// Server to client: forwards, or swallows a reply through its `ReadyForQuery`.
async fn downstream(mut reader: Reader<'_>, mut to: OwnedWriteHalf, swallow: &AtomicBool) {
    let mut last: Vec<u8> = Vec::new();
    while let Some(chunk) = reader.next().await {
        if swallow.load(Ordering::Acquire) {
            keep_last(&mut last, chunk, 6);
            // ReadyForQuery: 'Z', length 5, status. The statement is over
            // (committed, in autocommit): close without telling the client.
            if last.len() == 6 && last[0] == b'Z' && last[1..5] == [0, 0, 0, 5] {
                break;
            }
            continue;
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    reader.close();
}

/// Splits the client's byte stream into protocol messages, to count them.
#[derive(Debug, Default)]
struct Frames {
    started: bool,
    header: Vec<u8>,
    skip: usize,
}

impl Frames {
    const SSL_REQUEST: u32 = 80_877_103;
    const GSSENC_REQUEST: u32 = 80_877_104;

    fn feed(&mut self, mut data: &[u8], counters: &Counters) {
        loop {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                data = &data[k..];
                self.skip -= k;
                if self.skip > 0 {
                    return;
                }
            }
            if data.is_empty() {
                return;
            }
            // Typed messages: kind byte and length; the start-up packet has
            // no kind byte but a length and a protocol code.
            let need = if self.started { 5 } else { 8 };
            let k = (need - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.header.len() < need {
                return;
            }
            let h = &self.header;
            if self.started {
                let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
                let counter = match h[0] {
                    b'S' => Some(&counters.syncs),
                    b'Q' => Some(&counters.simple_queries),
                    b'P' => Some(&counters.parses),
                    b'E' => Some(&counters.executes),
                    _ => None,
                };
                if let Some(counter) = counter {
                    counter.fetch_add(1, Ordering::AcqRel);
                }
                self.skip = len.saturating_sub(4);
            } else {
                let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let code = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                if code != Self::SSL_REQUEST && code != Self::GSSENC_REQUEST {
                    self.started = true;
                }
                self.skip = len.saturating_sub(8);
            }
            self.header.clear();
        }
    }
}
