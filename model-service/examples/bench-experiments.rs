//! Benchmark of the experiment routes (run by `scripts/bench-experiments.sh`):
//! a fresh database, a three-arm experiment whose arms hold 10^6 trials
//! each, the service on a free loopback port in this process, and N
//! concurrent keep-alive connections. Prints, in one run:
//!
//! - `GET /healthz`: the HTTP stack's ceiling on this machine;
//! - `GET /experiments/{id}`: every figure, the decision and the SRM check
//!   (the engine's answer is cached per arm data, so this is the steady
//!   state between commits);
//! - `GET /experiments/{id}` while the arms change under it (every request
//!   after a commit recomputes the figures);
//! - `POST /experiments/{id}/assignments` with a new unit each time (the
//!   weights and a sticky insert).
//!
//! Targets: 5 000 answers/s with p99 < 20 ms; 5 000 assignments/s.
//!
//! Usage: `bench-experiments [--connections N] [--seconds S]`

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use domain::bayes::Counts;
use domain::ModelId;
use model_service::Application;
use platform::settings::{ModelDefaults, Settings};
use platform::store::{
    apply_batch, put_experiment, BanditConfig, BatchWrite, ExperimentSpec, ModelDelta,
};
use sea_orm::DatabaseConnection;
use test_support::bench::{self, Outcome, Verdict};
use test_support::database::TestDatabase;

const ARMS: [&str; 3] = ["checkout-a", "checkout-b", "checkout-c"];

fn options() -> anyhow::Result<(usize, f64)> {
    let (mut connections, mut seconds) = (32usize, 5.0f64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--connections" => connections = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            other => bail!("unknown argument {other}; see the header of this file"),
        }
    }
    if connections == 0 || !(seconds > 0.0 && seconds <= 120.0) {
        bail!("connections must be positive and seconds in (0, 120]");
    }
    Ok((connections, seconds))
}

fn main() -> anyhow::Result<()> {
    let (connections, seconds) = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(connections, seconds))
}

/// Commits one batch per call, as the consumer does, on partition 0.
struct Feeder {
    db: DatabaseConnection,
    next: AtomicI64,
}

impl Feeder {
    async fn commit(&self, deltas: &[(&str, u64, u64)]) -> anyhow::Result<()> {
        let start = self.next.load(Ordering::SeqCst);
        let deltas: Vec<ModelDelta> = deltas
            .iter()
            .enumerate()
            .map(|(i, (m, s, f))| {
                Ok(ModelDelta {
                    model: ModelId::parse(*m)?,
                    counts: Counts::new(*s, *f),
                    last_offset: start + i as i64,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let next = start + deltas.len() as i64;
        apply_batch(
            &self.db,
            &BatchWrite {
                group_id: "bench",
                topic: "observations",
                partition: 0,
                expected_next_offset: (start > 0).then_some(start),
                next_offset: next,
                deltas: &deltas,
                identified: &[],
            },
            &ModelDefaults::default(),
            "model_updates",
        )
        .await?;
        self.next.store(next, Ordering::SeqCst);
        Ok(())
    }
}

async fn run(connections: usize, seconds: f64) -> anyhow::Result<()> {
    let (test_db, db) = TestDatabase::create()
        .await
        .context("creating the benchmark database (is Postgres up? DATABASE_URL)")?;
    println!("database: {}", test_db.name);
    let arms: Vec<ModelId> = ARMS
        .iter()
        .map(|a| ModelId::parse(*a))
        .collect::<Result<_, _>>()?;
    let spec = ExperimentSpec {
        control: arms[0].clone(),
        arms: arms.clone(),
        threshold_of_caring: 0.001,
        rope: 0.01,
        planned_weights: Some(vec![1.0, 1.0, 1.0]),
        bandit: BanditConfig {
            min_trials: 100,
            floor: 0.01,
            top_two: false,
        },
    };
    let id = ModelId::parse("checkout")?;
    put_experiment(&db, &id, &spec, &ModelDefaults::default(), "model_updates").await?;
    let feeder = Arc::new(Feeder {
        db: db.clone(),
        next: AtomicI64::new(0),
    });
    // 100 commits of 10 000 trials an arm: 10^6 trials each, a history of 300.
    for _ in 0..100 {
        feeder
            .commit(&[
                (ARMS[0], 1000, 9000),
                (ARMS[1], 1050, 8950),
                (ARMS[2], 1020, 8980),
            ])
            .await?;
    }

    let mut settings = Settings::default();
    settings.database = test_db.settings.clone();
    settings.database.max_connections = 10;
    settings.model_service.port = 0;
    let app = Application::build(settings).await?;
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    println!(
        "service on 127.0.0.1:{port}; {connections} connections, {seconds:.0} s per scenario; {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let client = bench::http_client(connections)?;
    let get = |path: &'static str| {
        let client = client.clone();
        move |_: u64| {
            let request = client.get(format!("http://127.0.0.1:{port}{path}"));
            async move { ok_body(request.send().await, 200).await }
        }
    };
    let load = bench::Load::for_time(connections, Duration::from_secs_f64(seconds));
    // Warm-up: pool connections, prepared statements, the figures cache.
    bench::run(
        bench::Load::for_time(connections, Duration::from_secs(1)),
        get("/experiments/checkout"),
    )
    .await
    .report("warm-up (not counted)", "");
    println!();

    let ceiling = bench::run(load, get("/healthz")).await;
    ceiling.report("GET /healthz (the HTTP ceiling)", "");
    let steady = bench::run(load, get("/experiments/checkout")).await;
    steady.report("GET /experiments/checkout (3 arms, 10^6 trials each)", "");

    // A commit every 50 ms (the consumer's default batch wait) while reading.
    let committing = {
        let feeder = feeder.clone();
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
            let mut commits = 0u64;
            while tokio::time::Instant::now() < until {
                let arm = ARMS[(commits % 3) as usize];
                if let Err(e) = feeder.commit(&[(arm, 10, 90)]).await {
                    eprintln!("commit: {e:#}");
                }
                commits += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            commits
        })
    };
    let live = bench::run(load, get("/experiments/checkout")).await;
    let commits = committing.await?;
    live.report(
        "GET /experiments/checkout while the arms change",
        &format!("  ({commits} commits during the run)"),
    );

    let assign_client = client.clone();
    let assignments = bench::run(load, move |i| {
        let request = assign_client
            .post(format!(
                "http://127.0.0.1:{port}/experiments/checkout/assignments"
            ))
            .json(&serde_json::json!({ "unit": format!("user-{i}") }));
        async move { ok_body(request.send().await, 201).await }
    })
    .await;
    assignments.report("POST /experiments/checkout/assignments (new units)", "");

    let p99 = |o: &Outcome| o.latencies.quantile_ms(0.99);
    bench::print_verdicts(&[
        Verdict {
            what: "GET /experiments/{id} answers/s".into(),
            ours: steady.per_second(steady.requests()),
            ceiling: None,
            target: 5_000.0,
        },
        Verdict {
            what: "GET /experiments/{id} while arms change, answers/s".into(),
            ours: live.per_second(live.requests()),
            ceiling: None,
            target: 5_000.0,
        },
        Verdict {
            what: "assignments/s".into(),
            ours: assignments.per_second(assignments.requests()),
            ceiling: None,
            target: 5_000.0,
        },
    ]);
    println!(
        "\np99: {:.2} ms steady, {:.2} ms while changing, {:.2} ms assignments (target < 20 ms); \
         /healthz ceiling {:.0} req/s",
        p99(&steady),
        p99(&live),
        p99(&assignments),
        ceiling.per_second(ceiling.requests())
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// The body's size when the answer has `status`; `None` (an error) otherwise.
async fn ok_body(
    response: Result<reqwest::Response, reqwest::Error>,
    status: u16,
) -> Option<usize> {
    match response {
        Ok(r) if r.status().as_u16() == status => r.bytes().await.ok().map(|b| b.len()),
        Ok(r) => {
            eprintln!("unexpected status {}", r.status());
            None
        }
        Err(e) => {
            eprintln!("request failed: {e}");
            None
        }
    }
}
