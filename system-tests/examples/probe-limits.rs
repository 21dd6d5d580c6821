//! Probes the HTTP limits as a careless or hostile client would, and prints
//! what each service holds before, at the peak and after: resident memory,
//! open files, and the size of `/metrics` (run by `scripts/probe-limits.sh`).
//!
//! The services run as processes of their own (the workspace's debug
//! binaries, as the chaos run uses them), with the default settings, on a
//! fresh database; nothing here needs a broker. The probes:
//!
//! - `events`: `--streams` `GET /events` held open by one address, then 16
//!   from each of 100 addresses (127.0.0.1 to .100), each lot closed at
//!   the end;
//! - `idle`: `--idle` connections to the model service that send nothing,
//!   left for the service to close (`http.header_read_timeout`);
//! - `methods`: `--methods` requests to the producer, each with a method
//!   name of its own.
//!
//! Each round runs all three; the rounds show whether what a service keeps
//! after one grows with the next.
//!
//! Usage: `probe-limits [--streams N] [--idle N] [--methods N] [--rounds N]`

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use platform::settings::Settings;
use test_support::database::TestDatabase;
use test_support::service_process::spawn_service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Debug, Clone, Copy)]
struct Options {
    streams: usize,
    idle: usize,
    methods: usize,
    rounds: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        streams: 2_000,
        idle: 3_000,
        methods: 22_000,
        rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> anyhow::Result<usize> {
            Ok(args.next().context("a value after the flag")?.parse()?)
        };
        match arg.as_str() {
            "--streams" => options.streams = value()?,
            "--idle" => options.idle = value()?,
            "--methods" => options.methods = value()?,
            "--rounds" => options.rounds = value()?,
            other => bail!("unknown argument {other}; see the header of this file"),
        }
    }
    Ok(options)
}

/// A service process and what it holds.
struct Service {
    name: &'static str,
    child: Child,
    port: u16,
}

/// Resident memory (MiB) and open files of a process, from /proc.
#[derive(Debug, Clone, Copy)]
struct Held {
    rss_mib: f64,
    files: usize,
}

impl Service {
    fn start(
        name: &'static str,
        binary: &Path,
        settings: &Settings,
        port_var: &str,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = spawn_service(
            binary.to_str().context("binary path")?,
            settings,
            &[
                (port_var, port.to_string()),
                ("BAYES__TELEMETRY__LOG_FILTER", "warn".into()),
            ],
            &dir.join(format!("{name}.log")),
        );
        Ok(Self { name, child, port })
    }

    fn held(&self) -> anyhow::Result<Held> {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("VmRSS")?
            .parse()?;
        let files = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
        Ok(Held {
            rss_mib: rss_kib / 1024.0,
            files,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if reqwest::get(self.url("/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not answer /healthz within 60 s", self.name)
    }

    async fn metrics_bytes(&self) -> anyhow::Result<usize> {
        Ok(reqwest::get(self.url("/metrics"))
            .await?
            .bytes()
            .await?
            .len())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The workspace's debug binary `name`, beside this example's directory.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .context("the example's directory")?
        .join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the services first (cargo test --workspace --no-run)",
            path.display()
        );
    }
    Ok(path)
}

/// Opens a connection from `from` and sends `request`; returns the stream
/// and the status of the answer's first line (None when the service closed
/// it without one).
async fn send(
    from: Ipv4Addr,
    port: u16,
    request: &str,
) -> anyhow::Result<(TcpStream, Option<u16>)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    let mut stream = socket
        .connect(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
        .await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head)).await;
    let status = match read {
        Ok(Ok(n)) if n >= 12 => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok()),
        _ => None,
    };
    Ok((stream, status))
}

fn row(probe: &str, service: &str, before: Held, peak: Held, after: Held, note: &str) {
    println!(
        "{probe:<8} {service:<14} {:>8.1} {:>8.1} {:>8.1}   {:>6} {:>6} {:>6}   {note}",
        before.rss_mib, peak.rss_mib, after.rss_mib, before.files, peak.files, after.files
    );
}

/// Polls `held` until its open files are back within `slack` of `baseline`,
/// or the deadline passes; returns the last reading.
async fn settle(service: &Service, baseline: usize, slack: usize) -> anyhow::Result<Held> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = service.held()?;
        if held.files <= baseline + slack || Instant::now() > deadline {
            return Ok(held);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `per_address` streams from each of `addresses` loopback addresses
/// (127.0.0.1 on), held, then all closed.
async fn events(model: &Service, per_address: usize, addresses: u8) -> anyhow::Result<()> {
    let before = model.held()?;
    let request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    let mut open = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for address in 1..=addresses {
        for _ in 0..per_address {
            let from = Ipv4Addr::new(127, 0, 0, address);
            let (stream, status) = send(from, model.port, request).await?;
            match status {
                Some(200) => accepted += 1,
                _ => refused += 1,
            }
            open.push(stream);
        }
    }
    let peak = model.held()?;
    drop(open);
    let after = settle(model, before.files, 2).await?;
    let what = format!(
        "{} streams from {addresses} address(es): {accepted} open, {refused} refused",
        per_address * usize::from(addresses)
    );
    row("events", model.name, before, peak, after, &what);
    Ok(())
}

async fn idle(model: &Service, connections: usize) -> anyhow::Result<()> {
    let before = model.held()?;
    let mut open = Vec::new();
    for _ in 0..connections {
        open.push(TcpStream::connect(("127.0.0.1", model.port)).await?);
    }
    // Accepted by the service: its files peak once they are all in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = model.held()?;
    let started = Instant::now();
    let after = settle(model, before.files, 2).await?;
    let closed_after = started.elapsed().as_secs_f64();
    drop(open);
    row(
        "idle",
        model.name,
        before,
        peak,
        after,
        &format!(
            "{connections} silent connections, closed by the service within {closed_after:.1} s"
        ),
    );
    Ok(())
}

async fn methods(producer: &Service, requests: usize) -> anyhow::Result<()> {
    let before = producer.held()?;
    let metrics_before = producer.metrics_bytes().await?;
    let mut stream = TcpStream::connect(("127.0.0.1", producer.port)).await?;
    let mut sent = 0;
    for i in 0..requests {
        let request = format!("M{i:08X} /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            stream = TcpStream::connect(("127.0.0.1", producer.port)).await?;
            stream.write_all(request.as_bytes()).await?;
        }
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).await?;
        sent += 1;
    }
    let peak = producer.held()?;
    let metrics_after = producer.metrics_bytes().await?;
    let after = producer.held()?;
    row(
        "methods",
        producer.name,
        before,
        peak,
        after,
        &format!("{sent} invented methods: /metrics {metrics_before} -> {metrics_after} bytes"),
    );
    Ok(())
}

async fn run(options: Options) -> anyhow::Result<()> {
    let (test_db, _db) = TestDatabase::create()
        .await
        .context("creating the probe's database (is Postgres up? DATABASE_URL)")?;
    let dir = std::env::temp_dir().join(format!("probe-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut settings = Settings::default();
    settings.database = test_db.settings.clone();
    // No broker is needed: a closed port.
    settings.kafka.brokers = format!("127.0.0.1:{}", free_port()?);
    let model = Service::start(
        "model-service",
        &binary("model-service")?,
        &settings,
        "BAYES__MODEL_SERVICE__PORT",
        &dir,
    )?;
    let producer = Service::start(
        "producer",
        &binary("producer")?,
        &settings,
        "BAYES__PRODUCER__PORT",
        &dir,
    )?;
    model.wait_healthy().await?;
    producer.wait_healthy().await?;
    println!(
        "{:<8} {:<14} {:>8} {:>8} {:>8}   {:>6} {:>6} {:>6}",
        "probe", "service", "RSS MiB", "peak", "after", "files", "peak", "after"
    );
    // Rounds of the same probes: what a service keeps after one, it must
    // not add to after the next (bounded, not merely freed late).
    for round in 1..=options.rounds {
        println!("round {round}");
        // Many streams from one client; then 16 (the per-client cap) from
        // each of 100 clients, past the total cap.
        events(&model, options.streams, 1).await?;
        events(&model, 16, 100).await?;
        idle(&model, options.idle).await?;
        methods(&producer, options.methods).await?;
    }
    println!("logs: {}", dir.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    // This process holds thousands of sockets itself.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}
