//! Benchmark of the model service (run by `scripts/bench-model-service.sh`):
//! builds a fresh database on `DATABASE_URL`'s server, fills a model through
//! the consumer's own `apply_batch`, starts the service on a free loopback
//! port in this process, and drives it with N concurrent keep-alive HTTP/1.1
//! connections for a bounded time and request count. Prints, each right
//! after `GET /healthz` (the ceiling of that moment) and as a share of it,
//! steady and again while a commit lands every 50 ms:
//!
//! - `GET /models/{id}/posterior` (summaries and the 1000-point grid);
//! - `GET /models/{id}/posterior.png`, the same 800x600 plot each time
//!   (cached; in the second phase every commit makes a new version to draw);
//!
//! with the staleness of those commits (`apply_batch` returned to the first
//! `GET /models/{id}/posterior` that shows the new version). Then, alone:
//! uncached PNGs (every request a new size and mass), a cold 800x600 PNG one
//! request at a time, and the bare engine and render call.
//!
//! Targets: posterior and cached plot >= 50 % of /healthz with p99 < 5 ms.
//! The flags, the phases and the lines are `test_support::bench::routes`'.
//!
//! Usage: `bench-model-service [--connections N] [--seconds S] [--max-requests N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::bayes::{Counts, DisplayGrid, GridSize, Posterior};
use domain::Prior;
use model_service::plot::{self, Format, PosteriorPlot};
use model_service::Application;
use test_support::bench::routes::{self, Committer, Flags, InProcess, Route, Site, Target};
use test_support::bench::{self, Latencies};
use test_support::database::TestDatabase;

const MODEL: &str = "globe";
/// Both routes' target: half of /healthz's answers/s, p99 under 5 ms.
const TARGET: Target = Target {
    share: 0.5,
    p99_ms: 5.0,
};

fn main() -> anyhow::Result<()> {
    let flags = Flags::from_args()?;
    routes::runtime()?.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let (test_db, db) = TestDatabase::create()
        .await
        .context("creating the benchmark database (is Postgres up? DATABASE_URL)")?;
    println!("database: {}", test_db.name);
    // 1000 committed batches of 10 observations: a model with a history.
    let committer = Arc::new(Committer::new(db));
    for _ in 0..1000 {
        committer.commit(&[(MODEL, 7, 3)]).await?;
    }

    let app = Application::build(routes::service_settings(&test_db)).await?;
    let port = app.port();
    let service = InProcess::start(|stopped| app.run_until_stopped(stopped));
    println!("{}", flags.describe(port));
    let site = Site::new(port, flags.connections)?;
    let posterior = site.get(|_| format!("/models/{MODEL}/posterior"));
    let png = site.get(|_| format!("/models/{MODEL}/posterior.png"));
    // Warm up: connections in the pool, statements prepared, caches filled.
    let warm_up = bench::Load {
        max_requests: 5_000,
        ..bench::Load::for_time(flags.connections, Duration::from_secs(1))
    };
    routes::run_request(warm_up, posterior.clone()).await;
    routes::run_request(warm_up, png.clone())
        .await
        .report("warm-up (not counted)", "");
    println!();

    let measured = [
        Route {
            name: format!("GET /models/{MODEL}/posterior"),
            target: TARGET,
            request: posterior,
        },
        Route {
            name: format!("GET /models/{MODEL}/posterior.png (cached)"),
            target: TARGET,
            request: png,
        },
    ];
    routes::two_phases(&site, flags.load(), &measured, committer, &[MODEL]).await?;

    println!("\nalone:");
    // Every request a new (width, mass): a cache miss, a full render.
    let uncached = site.get(|i| {
        let width = 600 + (i % 400);
        let mass = 0.5 + (i / 400) as f64 * 1e-6;
        format!("/models/{MODEL}/posterior.png?width={width}&height=600&mass={mass}")
    });
    routes::run_request(flags.load(), uncached).await.report(
        "GET posterior.png ~800x600, uncached (every request renders)",
        "",
    );
    let cold = site.get(|i| {
        let mass = 0.6 + i as f64 * 1e-6;
        format!("/models/{MODEL}/posterior.png?width=800&height=600&mass={mass}")
    });
    let one_at_a_time = bench::Load {
        max_requests: 200,
        ..bench::Load::for_time(1, Duration::from_secs_f64(flags.seconds))
    };
    routes::run_request(one_at_a_time, cold).await.report(
        "cold 800x600 PNG, one request at a time (HTTP + query + engine + render)",
        "",
    );

    render_only()?;
    service.stop().await?;
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
