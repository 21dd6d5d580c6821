//! Benchmark of the model service (run by `scripts/bench-model-service.sh`):
//! builds a fresh database on `DATABASE_URL`'s server, fills a model through
//! the consumer's own `apply_batch`, starts the service on a free loopback
//! port in this process, and drives it with N concurrent keep-alive HTTP/1.1
//! connections for a bounded time and request count. Prints requests/s and
//! latency percentiles for:
//!
//! - `GET /models/{id}/posterior` (summaries and the 1000-point grid);
//! - a cached PNG (the same URL again and again);
//! - uncached PNGs (every request a new size and mass, so every one renders);
//! - a cold 800x600 PNG, one request at a time, and the bare render call.
//!
//! The client is a minimal HTTP/1.1 loop over a `TcpStream`: on a 2-core
//! machine shared by client, server and Postgres, a full HTTP client would
//! spend a noticeable share of the CPU being measured.
//!
//! Usage: `bench-model-service [--connections N] [--seconds S] [--max-requests N]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::bayes::{Counts, DisplayGrid, GridSize, Posterior};
use domain::{ModelId, Prior};
use model_service::plot::{self, Format, PosteriorPlot};
use model_service::Application;
use platform::settings::Settings;
use platform::store::{apply_batch, BatchWrite, ModelDelta};
use test_support::database::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const MODEL: &str = "globe";

#[derive(Debug, Clone, Copy)]
struct Options {
    connections: usize,
    seconds: f64,
    max_requests: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        connections: 32,
        seconds: 5.0,
        max_requests: 200_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--connections" => options.connections = value()?.parse()?,
            "--seconds" => options.seconds = value()?.parse()?,
            "--max-requests" => options.max_requests = value()?.parse()?,
            other => bail!("unknown argument {other}; see the header of this file"),
        }
    }
    if options.connections == 0 || options.seconds <= 0.0 || options.seconds > 120.0 {
        bail!("connections must be positive and seconds in (0, 120]");
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    // Client and server share this runtime, as they share the machine.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let (test_db, db) = TestDatabase::create()
        .await
        .context("creating the benchmark database (is Postgres up? DATABASE_URL)")?;
    println!("database: {}", test_db.name);

    // 1000 committed batches of 10 observations: a model with a history.
    let defaults = platform::settings::ModelDefaults::default();
    let model = ModelId::parse(MODEL)?;
    let mut expected = None;
    for batch in 0..1000i64 {
        let deltas = [ModelDelta {
            model: model.clone(),
            counts: Counts::new(7, 3),
            last_offset: batch,
        }];
        apply_batch(
            &db,
            &BatchWrite {
                group_id: "bench",
                topic: "observations",
                partition: 0,
                expected_next_offset: expected,
                next_offset: batch + 1,
                deltas: &deltas,
            },
            &defaults,
            "model_updates",
        )
        .await?;
        expected = Some(batch + 1);
    }

    let mut settings = Settings::default();
    settings.database = test_db.settings.clone();
    settings.database.max_connections = 10;
    settings.model_service.port = 0;
    settings.model_service.plot_cache_entries = 256;
    let app = Application::build(settings).await?;
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    println!(
        "service on 127.0.0.1:{port}; {} connections, at most {:.0} s and {} requests per scenario; {} cores\n",
        options.connections,
        options.seconds,
        options.max_requests,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let posterior = || format!("/models/{MODEL}/posterior");
    // Warm up: connections in the pool, statements prepared, caches filled.
    load(port, options.connections, 1.0, 5_000, move |_| posterior()).await?;
    load(port, options.connections, 1.0, 5_000, |_| {
        format!("/models/{MODEL}/posterior.png")
    })
    .await?
    .report("warm-up (not counted)");
    println!();

    load(
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        move |_| posterior(),
    )
    .await?
    .report("GET /models/globe/posterior (JSON, 1000-point grid)");

    load(
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        |_| format!("/models/{MODEL}/posterior?grid=false"),
    )
    .await?
    .report("GET /models/globe/posterior?grid=false");

    load(
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        |_| format!("/models/{MODEL}/posterior.png"),
    )
    .await?
    .report("GET posterior.png 800x600, cached");

    // Every request a new (width, mass): a cache miss, a full render.
    load(
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        |i| {
            let width = 600 + (i % 400);
            let mass = 0.5 + (i / 400) as f64 * 1e-6;
            format!("/models/{MODEL}/posterior.png?width={width}&height=600&mass={mass}")
        },
    )
    .await?
    .report("GET posterior.png ~800x600, uncached (every request renders)");

    load(port, 1, options.seconds, 200, |i| {
        let mass = 0.6 + i as f64 * 1e-6;
        format!("/models/{MODEL}/posterior.png?width=800&height=600&mass={mass}")
    })
    .await?
    .report("cold 800x600 PNG, one request at a time (HTTP + query + engine + render)");

    render_only()?;

    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Times the engine and the renderer alone, without HTTP or the database.
fn render_only() -> anyhow::Result<()> {
    let prior = Prior::Uniform;
    let counts = Counts::new(7000, 3000);
    let mut times = Vec::new();
    for i in 0..100 {
        let start = Instant::now();
        let posterior = Posterior::new(&prior, counts)?;
        let mass = 0.89 - f64::from(i) * 1e-6;
        let hpdi = posterior.hpdi(mass)?;
        let grid = DisplayGrid::new(&posterior, GridSize::default());
        let plot = PosteriorPlot {
            model: MODEL,
            counts,
            version: 1000,
            prior_label: "uniform",
            p: &grid.p,
            prior: &grid.prior,
            posterior: &grid.posterior,
            hpdi,
            mass,
        };
        let png = plot::render_posterior(&plot, 800, 600, Format::Png)?;
        std::hint::black_box(png);
        times.push(start.elapsed());
    }
    Stats::new(times, Duration::ZERO, 0)
        .report("engine + 800x600 PNG render, in process, one at a time");
    Ok(())
}

struct Stats {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: u64,
    bytes: u64,
}

impl Stats {
    fn new(mut latencies: Vec<Duration>, elapsed: Duration, errors: u64) -> Self {
        latencies.sort_unstable();
        Stats {
            latencies,
            elapsed,
            errors,
            bytes: 0,
        }
    }

    fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i]
    }

    fn report(&self, name: &str) {
        let n = self.latencies.len();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rate = if self.elapsed.is_zero() {
            String::new()
        } else {
            format!("{:>9.0} req/s  ", n as f64 / self.elapsed.as_secs_f64())
        };
        let size = if n > 0 && self.bytes > 0 {
            format!("  body {:.1} KB", self.bytes as f64 / n as f64 / 1e3)
        } else {
            String::new()
        };
        println!(
            "{name}\n    {n:>7} requests  {rate}p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}{size}",
            ms(self.percentile(0.5)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.99)),
            ms(self.percentile(1.0)),
            self.errors
        );
    }
}

/// Runs `connections` keep-alive connections against `path_for(i)` (i counts
/// requests across all connections) for `seconds` or `max_requests`.
async fn load<F>(
    port: u16,
    connections: usize,
    seconds: f64,
    max_requests: u64,
    path_for: F,
) -> anyhow::Result<Stats>
where
    F: Fn(u64) -> String + Send + Sync + 'static,
{
    let path_for = Arc::new(path_for);
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (path_for, issued) = (path_for.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut bytes) = (0u64, 0u64);
            let mut connection = Connection::open(port).await?;
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= max_requests || Instant::now() >= deadline {
                    break;
                }
                let path = path_for(i);
                let sent = Instant::now();
                match connection.get(&path).await {
                    Ok((200, len)) => {
                        latencies.push(sent.elapsed());
                        bytes += len as u64;
                    }
                    Ok((status, _)) => {
                        errors += 1;
                        eprintln!("GET {path}: {status}");
                    }
                    Err(err) => {
                        errors += 1;
                        eprintln!("GET {path}: {err}");
                        connection = Connection::open(port).await?;
                    }
                }
            }
            anyhow::Ok((latencies, errors, bytes))
        }));
    }
    let mut all = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    for task in tasks {
        let (latencies, e, b) = task.await??;
        all.extend(latencies);
        errors += e;
        bytes += b;
    }
    let mut stats = Stats::new(all, start.elapsed(), errors);
    stats.bytes = bytes;
    Ok(stats)
}

/// One keep-alive HTTP/1.1 connection to the service.
struct Connection {
    stream: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    async fn open(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::with_capacity(64 * 1024, stream),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends a GET and reads the whole response: (status, body length).
    async fn get(&mut self, path: &str) -> anyhow::Result<(u16, usize)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .context("a status line")?
            .parse()?;
        let mut length = None;
        let mut chunked = false;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("connection closed");
            }
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        let mut total = 0;
        if chunked {
            loop {
                self.line.clear();
                self.stream.read_line(&mut self.line).await?;
                let size = usize::from_str_radix(self.line.trim(), 16)?;
                self.body.resize(size + 2, 0);
                self.stream.read_exact(&mut self.body).await?;
                total += size;
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.context("a content-length")?;
            self.body.resize(length, 0);
            self.stream.read_exact(&mut self.body).await?;
            total = length;
        }
        Ok((status, total))
    }
}
