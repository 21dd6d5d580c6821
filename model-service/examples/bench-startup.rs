//! Start-up time and memory of the model service with many models (run by
//! `scripts/bench-startup.sh`, which builds the release `model-service`
//! binary first). Fills a fresh database on `DATABASE_URL`'s server with N
//! models through the consumer's own `apply_batch` (5 000 to a batch) and a
//! few three-arm experiments over them, then starts the real binary, as an
//! operator would (settings in its environment), on that database and, in
//! the same run, on an empty one (the baseline). For each it prints:
//!
//! - the time from spawning the process to `GET /readyz` answering 200;
//! - the process's VmRSS and VmHWM (`/proc/<pid>/status`) once ready;
//! - the time to read every model once (`GET /models?limit=1000` pages),
//!   and VmRSS and VmHWM after that.
//!
//! Usage: `bench-startup [--models N] [--binary PATH]` (N defaults to
//! 100 000; the binary to `model-service` next to the `examples` directory
//! this program runs from).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::ModelId;
use platform::settings::{ModelDefaults, Settings};
use platform::store::{put_experiment, BanditConfig, ExperimentSpec};
use test_support::bench::routes::Committer;
use test_support::database::TestDatabase;
use test_support::service_process::spawn_service;

/// Models a batch commits: the consumer's batches hold a few thousand.
const BATCH: usize = 5_000;
/// Three-arm experiments over the first models.
const EXPERIMENTS: usize = 10;
/// How long the service may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(600);

struct Flags {
    models: usize,
    binary: PathBuf,
}

fn flags() -> anyhow::Result<Flags> {
    let examples = std::env::current_exe()?;
    let release = examples
        .parent()
        .and_then(Path::parent)
        .context("the examples directory has a parent")?;
    let mut flags = Flags {
        models: 100_000,
        binary: release.join("model-service"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--models" => flags.models = value()?.parse()?,
            "--binary" => flags.binary = value()?.into(),
            other => bail!("unknown argument {other}: the flags are --models N, --binary PATH"),
        }
    }
    if flags.models < 3 * EXPERIMENTS {
        bail!("--models must be at least {}", 3 * EXPERIMENTS);
    }
    if !flags.binary.is_file() {
        bail!(
            "no model-service binary at {} (cargo build --release -p model-service --bin model-service)",
            flags.binary.display()
        );
    }
    Ok(flags)
}

fn main() -> anyhow::Result<()> {
    let flags = flags()?;
    test_support::bench::routes::runtime()?.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let (empty, _) = TestDatabase::create()
        .await
        .context("creating the benchmark database (is Postgres up? DATABASE_URL)")?;
    let (full, db) = TestDatabase::create().await?;
    println!("databases: {} (empty), {} (full)", empty.name, full.name);
    let filled = Instant::now();
    fill(db, flags.models).await?;
    println!(
        "filled with {} models and {EXPERIMENTS} experiments in {:.1} s\n",
        flags.models,
        filled.elapsed().as_secs_f64()
    );

    println!(
        "{:<16} {:>9} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "database", "ready s", "RSS MiB", "HWM MiB", "read all s", "RSS MiB", "HWM MiB"
    );
    println!(
        "{:<16} {:>9} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "", "", "(ready)", "(ready)", "", "(after)", "(after)"
    );
    let client = reqwest::Client::new();
    for (label, database) in [("empty", &empty), ("full", &full)] {
        let figures = measure(&client, &flags.binary, database).await?;
        println!(
            "{:<16} {:>9.2} {:>12.1} {:>12.1} {:>12.2} {:>12.1} {:>12.1}",
            format!("{label} ({})", figures.models),
            figures.ready.as_secs_f64(),
            mib(figures.at_ready.rss),
            mib(figures.at_ready.hwm),
            figures.read_all.as_secs_f64(),
            mib(figures.after_reading.rss),
            mib(figures.after_reading.hwm),
        );
    }
    Ok(())
}

/// Commits `models` models, `BATCH` to a commit, then the experiments.
async fn fill(db: sea_orm::DatabaseConnection, models: usize) -> anyhow::Result<()> {
    let names: Vec<String> = (0..models).map(|i| format!("model-{i:07}")).collect();
    let committer = Committer::new(db.clone());
    for chunk in names.chunks(BATCH) {
        let deltas: Vec<(&str, u64, u64)> = chunk
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), 1 + i as u64 % 7, 3))
            .collect();
        committer.commit(&deltas).await?;
    }
    for (e, arms) in names.chunks(3).take(EXPERIMENTS).enumerate() {
        let arms: Vec<ModelId> = arms.iter().map(ModelId::parse).collect::<Result<_, _>>()?;
        let spec = ExperimentSpec {
            control: arms[0].clone(),
            arms,
            threshold_of_caring: 0.001,
            rope: 0.01,
            planned_weights: None,
            bandit: BanditConfig {
                min_trials: 100,
                floor: 0.01,
                top_two: false,
            },
        };
        let id = ModelId::parse(format!("experiment-{e}"))?;
        put_experiment(&db, &id, &spec, &ModelDefaults::default(), "model_updates").await?;
    }
    Ok(())
}

/// A process's resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// VmRSS and VmHWM of `pid`, from `/proc/<pid>/status` (in kB there).
fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kb * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// What one start of the binary measured.
struct Figures {
    models: usize,
    ready: Duration,
    at_ready: Memory,
    read_all: Duration,
    after_reading: Memory,
}

/// Kills the service when the measurement ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary` on `database`, waits for `/readyz`, reads every model.
async fn measure(
    client: &reqwest::Client,
    binary: &Path,
    database: &TestDatabase,
) -> anyhow::Result<Figures> {
    // A free port: the service binds it again a moment later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut settings = Settings::default();
    settings.database = database.settings.clone();
    let log = std::env::temp_dir().join(format!("bench-startup-{}.log", database.name));
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let mut child = Killed(spawn_service(
        &binary.to_string_lossy(),
        &settings,
        &[
            ("BAYES__MODEL_SERVICE__HOST", "127.0.0.1".into()),
            ("BAYES__MODEL_SERVICE__PORT", port.to_string()),
        ],
        &log,
    ));
    let pid = child.0.id();
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().as_u16() == 200 {
                break;
            }
        }
        if let Some(exit) = child.0.try_wait()? {
            bail!("the service exited ({exit}); its log is {}", log.display());
        }
        if started.elapsed() > READY_DEADLINE {
            bail!(
                "not ready after {READY_DEADLINE:?}; its log is {}",
                log.display()
            );
        }
        // A short pause between polls, not a synchronisation: the loop ends
        // as soon as /readyz answers 200.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = started.elapsed();
    let at_ready = memory(pid)?;

    let reading = Instant::now();
    let mut models = 0;
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/models?limit=1000");
        if let Some(id) = &after {
            url.push_str(&format!("&after={id}"));
        }
        let response = client.get(&url).send().await?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        let page: serde_json::Value = response.json().await?;
        models += page["models"].as_array().map_or(0, Vec::len);
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let read_all = reading.elapsed();
    let after_reading = memory(pid)?;
    drop(child);
    Ok(Figures {
        models,
        ready,
        at_ready,
        read_all,
        after_reading,
    })
}
