//! Benchmark of the experiment routes (run by `scripts/bench-experiments.sh`):
//! a fresh database, a three-arm experiment whose arms hold 10^6 trials
//! each, the service on a free loopback port in this process, and N
//! concurrent keep-alive connections. Prints, each right after `GET
//! /healthz` (the ceiling of that moment) and as a share of it, steady and
//! again while a commit lands on one of the arms every 50 ms:
//!
//! - `GET /experiments/{id}`: every figure, the decision and the SRM check;
//! - `POST /experiments/{id}/assignments` with a new unit each time (the
//!   weights and a sticky insert);
//! - the same with units assigned before (the existing arm answered);
//!
//! with the staleness of those commits as `GET /models/{arm}/posterior`
//! sees them. The flags, the phases and the lines are
//! `test_support::bench::routes`'.
//!
//! Targets: the experiment >= 40 % of /healthz with p99 < 5 ms; assignments
//! >= 25 % with p99 < 10 ms.
//!
//! Usage: `bench-experiments [--connections N] [--seconds S] [--max-requests N]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use domain::ModelId;
use model_service::Application;
use platform::settings::ModelDefaults;
use platform::store::{put_experiment, BanditConfig, ExperimentSpec};
use serde_json::json;
use test_support::bench::routes::{self, Committer, Flags, InProcess, Route, Site, Target};
use test_support::bench::Load;
use test_support::database::TestDatabase;

const ARMS: [&str; 3] = ["checkout-a", "checkout-b", "checkout-c"];
/// Units assigned before the measurements, asked for again and again.
const KNOWN_UNITS: u64 = 1000;

fn main() -> anyhow::Result<()> {
    let flags = Flags::from_args()?;
    routes::runtime()?.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
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
        arms,
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
    // 100 commits of 10 000 trials an arm: 10^6 trials each, a history of 300.
    let committer = Arc::new(Committer::new(db));
    for _ in 0..100 {
        committer
            .commit(&[
                (ARMS[0], 1000, 9000),
                (ARMS[1], 1050, 8950),
                (ARMS[2], 1020, 8980),
            ])
            .await?;
    }

    let app = Application::build(routes::service_settings(&test_db)).await?;
    let port = app.port();
    let service = InProcess::start(|stopped| app.run_until_stopped(stopped));
    println!("{}", flags.describe(port));
    let site = Site::new(port, flags.connections)?;
    let experiment = site.get(|_| "/experiments/checkout".to_owned());
    let assignments = "/experiments/checkout/assignments";
    // Every request a unit never seen, across both phases.
    let fresh = AtomicU64::new(0);
    let new_unit = site.post_json(
        assignments,
        201,
        move |_| json!({ "unit": format!("new-{}", fresh.fetch_add(1, Ordering::Relaxed)) }),
    );
    let known = |i: u64| json!({ "unit": format!("known-{}", i % KNOWN_UNITS) });
    // Warm-up, which also assigns the known units once.
    let warm_up = Load {
        max_requests: KNOWN_UNITS,
        ..flags.load()
    };
    routes::run_request(warm_up, experiment.clone()).await;
    routes::run_request(warm_up, site.post_json(assignments, 201, known))
        .await
        .report("warm-up, the known units assigned (not counted)", "");
    println!();

    let measured = [
        Route {
            name: "GET /experiments/checkout (3 arms)".into(),
            target: Target {
                share: 0.4,
                p99_ms: 5.0,
            },
            request: experiment,
        },
        Route {
            name: "POST .../assignments, new units".into(),
            target: ASSIGNMENTS,
            request: new_unit,
        },
        Route {
            name: "POST .../assignments, units assigned before".into(),
            target: ASSIGNMENTS,
            request: site.post_json(assignments, 200, known),
        },
    ];
    routes::two_phases(&site, flags.load(), &measured, committer, &ARMS).await?;
    service.stop().await?;
    Ok(())
}

/// Both kinds of assignment: a quarter of /healthz, p99 under 10 ms.
const ASSIGNMENTS: Target = Target {
    share: 0.25,
    p99_ms: 10.0,
};
