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
//! The client and the load loop are the benchmarks' shared ones
//! (`test_support::bench`, reqwest over HTTP/1.1 keep-alive).
//!
//! Usage: `bench-model-service [--connections N] [--seconds S] [--max-requests N]`

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::bayes::{Counts, DisplayGrid, GridSize, Posterior};
use domain::{ModelId, Prior};
use model_service::plot::{self, Format, PosteriorPlot};
use model_service::Application;
use platform::settings::Settings;
use platform::store::{apply_batch, BatchWrite, ModelDelta};
use test_support::bench::{self, Latencies, Outcome};
use test_support::database::TestDatabase;

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
                identified: &[],
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

    let client = bench::http_client(options.connections)?;
    let posterior = || format!("/models/{MODEL}/posterior");
    // Warm up: connections in the pool, statements prepared, caches filled.
    load(&client, port, options.connections, 1.0, 5_000, move |_| {
        posterior()
    })
    .await;
    load(&client, port, options.connections, 1.0, 5_000, |_| {
        format!("/models/{MODEL}/posterior.png")
    })
    .await
    .report("warm-up (not counted)", "");
    println!();

    load(
        &client,
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        move |_| posterior(),
    )
    .await
    .report("GET /models/globe/posterior (JSON, 1000-point grid)", "");

    load(
        &client,
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        |_| format!("/models/{MODEL}/posterior?grid=false"),
    )
    .await
    .report("GET /models/globe/posterior?grid=false", "");

    load(
        &client,
        port,
        options.connections,
        options.seconds,
        options.max_requests,
        |_| format!("/models/{MODEL}/posterior.png"),
    )
    .await
    .report("GET posterior.png 800x600, cached", "");

    // Every request a new (width, mass): a cache miss, a full render.
    load(
        &client,
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
    .await
    .report(
        "GET posterior.png ~800x600, uncached (every request renders)",
        "",
    );

    load(&client, port, 1, options.seconds, 200, |i| {
        let mass = 0.6 + i as f64 * 1e-6;
        format!("/models/{MODEL}/posterior.png?width=800&height=600&mass={mass}")
    })
    .await
    .report(
        "cold 800x600 PNG, one request at a time (HTTP + query + engine + render)",
        "",
    );

    render_only()?;

    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Times the engine and the renderer alone, without HTTP or the database.
fn render_only() -> anyhow::Result<()> {
    let prior = Prior::Uniform;
    let counts = Counts::new(7000, 3000);
    let mut times = Latencies::new();
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
        let png = plot::render(&plot, 800, 600, Format::Png)?;
        std::hint::black_box(png);
        times.record(start.elapsed());
    }
    println!(
        "engine + 800x600 PNG render, in process, one at a time\n    {:>7} renders  {}",
        times.len(),
        times.summary()
    );
    Ok(())
}

/// Runs `connections` keep-alive connections against `path_for(i)` (i counts
/// requests across all connections) for `seconds` or `max_requests`.
async fn load<F>(
    client: &reqwest::Client,
    port: u16,
    connections: usize,
    seconds: f64,
    max_requests: u64,
    path_for: F,
) -> Outcome
where
    F: Fn(u64) -> String + Send + Sync + 'static,
{
    let client = client.clone();
    let load = bench::Load {
        max_requests,
        ..bench::Load::for_time(connections, Duration::from_secs_f64(seconds))
    };
    bench::run(load, move |i| {
        let path = path_for(i);
        let request = client.get(format!("http://127.0.0.1:{port}{path}"));
        async move {
            match request.send().await {
                Ok(response) if response.status().as_u16() == 200 => match response.bytes().await {
                    Ok(body) => Some(body.len()),
                    Err(err) => {
                        eprintln!("GET {path}: {err}");
                        None
                    }
                },
                Ok(response) => {
                    eprintln!("GET {path}: {}", response.status());
                    None
                }
                Err(err) => {
                    eprintln!("GET {path}: {err}");
                    None
                }
            }
        }
    })
    .await
}
