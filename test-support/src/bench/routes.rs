//! What the model service's HTTP benchmarks share (`bench-model-service`,
//! `bench-experiments`): their flags, the service run inside the benchmark's
//! process, requests against it, and each route measured right after `GET
//! /healthz` (the ceiling of that moment: this machine's speed varies a lot
//! between runs, so only a share of /healthz in the same run compares), in
//! two phases, steady and while a commit lands every 50 ms through the
//! consumer's own `apply_batch`, with how stale those commits look to a
//! reader, and each route's line with its target.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::bayes::Counts;
use domain::ModelId;
use platform::settings::{ModelDefaults, Settings};
use platform::store::{apply_batch, BatchWrite, ModelDelta};
use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{fail, BenchError, Latencies, Load, Outcome};
use crate::database::TestDatabase;

/// How often the background task commits: the consumer's default batch wait.
pub const COMMIT_PERIOD: Duration = Duration::from_millis(50);
/// How long a reader may take to see a commit before it counts as unseen.
const SEEN_DEADLINE: Duration = Duration::from_secs(5);

/// The flags both benchmarks take.
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    /// Concurrent keep-alive connections (`--connections`, 32).
    pub connections: usize,
    /// Seconds of each measurement, a route's and the /healthz before it (`--seconds`, 5).
    pub seconds: f64,
    /// At most this many requests in one measurement (`--max-requests`, 200 000).
    pub max_requests: u64,
}

impl Flags {
    /// The flags of this program's command line.
    pub fn from_args() -> Result<Self, BenchError> {
        Self::parse(std::env::args().skip(1))
    }

    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, BenchError> {
        let mut flags = Flags {
            connections: 32,
            seconds: 5.0,
            max_requests: 200_000,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if !["--connections", "--seconds", "--max-requests"].contains(&flag.as_str()) {
                return Err(fail(format!(
                    "unknown argument {flag}: the flags are --connections N, --seconds S, --max-requests N"
                )));
            }
            let value = args
                .next()
                .ok_or_else(|| fail(format!("{flag} needs a value")))?;
            let bad = |e: &dyn Display| fail(format!("{flag} {value}: {e}"));
            match flag.as_str() {
                "--connections" => flags.connections = value.parse().map_err(|e| bad(&e))?,
                "--seconds" => flags.seconds = value.parse().map_err(|e| bad(&e))?,
                _ => flags.max_requests = value.parse().map_err(|e| bad(&e))?,
            }
        }
        if flags.connections == 0
            || flags.max_requests == 0
            || !(flags.seconds > 0.0 && flags.seconds <= 120.0)
        {
            return Err(fail(
                "connections and max-requests must be positive, seconds in (0, 120]",
            ));
        }
        Ok(flags)
    }

    /// The line saying where the service runs and how hard it is loaded.
    pub fn describe(&self, port: u16) -> String {
        format!(
            "service on 127.0.0.1:{port}; {} connections, at most {:.0} s and {} requests per measurement; {} cores\n",
            self.connections,
            self.seconds,
            self.max_requests,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
    }

    /// One measurement: every connection as fast as it goes, bounded in time and count.
    pub fn load(&self) -> Load {
        Load {
            max_requests: self.max_requests,
            ..Load::for_time(self.connections, Duration::from_secs_f64(self.seconds))
        }
    }
}

/// The benchmarks' runtime: client and server share it, as they share the machine.
pub fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("the runtime: {e}")))
}

/// The settings the benchmarks run the service with: `database`, a free
/// loopback port, ten database connections, the rest as shipped.
pub fn service_settings(database: &TestDatabase) -> Settings {
    let mut settings = Settings::default();
    settings.database = database.settings.clone();
    settings.database.max_connections = 10;
    settings.model_service.port = 0;
    settings
}

/// A service running on this process's runtime until [`InProcess::stop`]:
/// client and server share the runtime, as they share the machine.
#[derive(Debug)]
pub struct InProcess {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

impl InProcess {
    /// Spawns `run(shutdown)` (an application's `run_until_stopped`).
    pub fn start<Run, Fut, E>(run: Run) -> Self
    where
        Run: FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let served = run(Box::pin(async move {
            let _ = stopped.await;
        }));
        let task = tokio::spawn(async move { served.await.map_err(|e| format!("{e:#}")) });
        Self { stop, task }
    }

    /// Shuts the service down and waits until it has.
    pub async fn stop(self) -> Result<(), BenchError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result.map_err(|e| fail(format!("the service failed: {e}"))),
            Err(e) => Err(fail(format!("the service's task: {e}"))),
        }
    }
}

/// One request of a load loop: the body's size when the answer was the
/// expected one, `None` otherwise.
pub type Request =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Option<usize>> + Send>> + Send + Sync>;

/// The service under load, on loopback, with the benchmarks' one client.
#[derive(Debug, Clone)]
pub struct Site {
    client: reqwest::Client,
    base: String,
}

impl Site {
    pub fn new(port: u16, connections: usize) -> Result<Self, BenchError> {
        Ok(Self {
            client: super::http_client(connections)
                .map_err(|e| fail(format!("HTTP client: {e}")))?,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// `GET path(i)`, expecting 200.
    pub fn get(&self, path: impl Fn(u64) -> String + Send + Sync + 'static) -> Request {
        let site = self.clone();
        Arc::new(move |i| {
            let path = path(i);
            let sent = site.client.get(format!("{}{path}", site.base)).send();
            Box::pin(async move { body_of(sent.await, 200, &path).await })
        })
    }

    /// `POST path` with the JSON `body(i)`, expecting `status`.
    pub fn post_json(
        &self,
        path: &str,
        status: u16,
        body: impl Fn(u64) -> serde_json::Value + Send + Sync + 'static,
    ) -> Request {
        let (site, path) = (self.clone(), path.to_owned());
        Arc::new(move |i| {
            let sent = site
                .client
                .post(format!("{}{path}", site.base))
                .json(&body(i))
                .send();
            let path = path.clone();
            Box::pin(async move { body_of(sent.await, status, &path).await })
        })
    }

    /// The version `GET /models/{model}/posterior` answers, if it answers.
    async fn version(&self, model: &str) -> Option<u64> {
        let url = format!("{}/models/{model}/posterior", self.base);
        let response = self.client.get(url).send().await.ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["version"].as_u64()
    }
}

/// The body's size when the answer has `status`; `None` (an error, told on
/// standard error) otherwise.
async fn body_of(
    response: Result<reqwest::Response, reqwest::Error>,
    status: u16,
    path: &str,
) -> Option<usize> {
    match response {
        Ok(r) if r.status().as_u16() == status => r.bytes().await.ok().map(|b| b.len()),
        Ok(r) => {
            eprintln!("{path}: {} where {status} was expected", r.status());
            None
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            None
        }
    }
}

/// What a route must reach: a share of `/healthz`'s answers/s in the same
/// run, and a p99 below a bound.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// 0.5 = 50 % of /healthz.
    pub share: f64,
    pub p99_ms: f64,
}

/// A route to measure: its name as printed, its target, its request.
pub struct Route {
    pub name: String,
    pub target: Target,
    pub request: Request,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A route's figures next to the /healthz measured just before it.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub target: Target,
    pub ours: Outcome,
    pub healthz: Outcome,
}

impl Measured {
    fn rate(outcome: &Outcome) -> f64 {
        outcome.per_second(outcome.requests())
    }

    /// Answers/s as a share of /healthz's (0.5 = 50 %).
    pub fn share(&self) -> f64 {
        Self::rate(&self.ours) / Self::rate(&self.healthz).max(f64::MIN_POSITIVE)
    }

    pub fn p99_ms(&self) -> f64 {
        self.ours.latencies.quantile_ms(0.99)
    }

    /// Both parts of the target, and no failed request.
    pub fn met(&self) -> bool {
        self.share() >= self.target.share
            && self.p99_ms() < self.target.p99_ms
            && self.ours.errors == 0
            && self.ours.requests() > 0
    }

    /// One line: answers/s, p50, p99, errors, share of /healthz, target, verdict.
    fn line(&self) -> String {
        format!(
            "{:<46} {:>7.0}/s  p50 {:>6.2}  p99 {:>6.2} ms  err {:<3} {:>4.0} % of {:>6.0}/s  >= {:.0} %, p99 < {:.0} ms: {}",
            self.name,
            Self::rate(&self.ours),
            self.ours.latencies.quantile_ms(0.5),
            self.p99_ms(),
            self.ours.errors,
            100.0 * self.share(),
            Self::rate(&self.healthz),
            100.0 * self.target.share,
            self.target.p99_ms,
            if self.met() { "met" } else { "NOT met" },
        )
    }
}

/// Measures each of `routes` right after `GET /healthz`, with the same load,
/// and prints its line as it goes.
pub async fn measure(site: &Site, load: Load, routes: &[Route]) -> Vec<Measured> {
    let mut measured = Vec::with_capacity(routes.len());
    for route in routes {
        let healthz = run_request(load, site.get(|_| "/healthz".to_owned())).await;
        let ours = run_request(load, route.request.clone()).await;
        let one = Measured {
            name: route.name.clone(),
            target: route.target,
            ours,
            healthz,
        };
        println!("{}", one.line());
        measured.push(one);
    }
    measured
}

/// The shared load loop over a [`Request`].
pub async fn run_request(load: Load, request: Request) -> Outcome {
    super::run(load, move |i| request(i)).await
}

/// Measures `routes` steady, then again while `committer` commits to
/// `models` in turn every [`COMMIT_PERIOD`], and prints both phases, the
/// staleness of those commits and a closing table.
pub async fn two_phases(
    site: &Site,
    load: Load,
    routes: &[Route],
    committer: Arc<Committer>,
    models: &[&str],
) -> Result<(), BenchError> {
    println!("steady (nothing commits):");
    let steady = measure(site, load, routes).await;
    println!("\nwhile a commit lands every {COMMIT_PERIOD:?} (to {models:?} in turn):");
    let commits = Commits::start(committer, site.clone(), models);
    let live = measure(site, load, routes).await;
    let staleness = commits.finish().await?;
    println!("{}", staleness.line());

    println!(
        "\n{:<46} {:<8} {:>9} {:>8} {:>8} {:>9} {:>6}  {:<22} met",
        "route", "phase", "answers/s", "p50 ms", "p99 ms", "/healthz", "share", "target"
    );
    let rows = steady.iter().map(|m| ("steady", m));
    for (phase, m) in rows.chain(live.iter().map(|m| ("commits", m))) {
        println!(
            "{:<46} {:<8} {:>9.0} {:>8.2} {:>8.2} {:>9.0} {:>5.0}%  {:<22} {}",
            m.name,
            phase,
            Measured::rate(&m.ours),
            m.ours.latencies.quantile_ms(0.5),
            m.p99_ms(),
            Measured::rate(&m.healthz),
            100.0 * m.share(),
            format!(
                ">= {:.0} %, p99 < {:.0} ms",
                100.0 * m.target.share,
                m.target.p99_ms
            ),
            if m.met() { "yes" } else { "NO" },
        );
    }
    Ok(())
}

/// Commits one batch per call on partition 0 of `observations`, as the
/// consumer does (the compare-and-set on the offset included).
#[derive(Debug)]
pub struct Committer {
    db: DatabaseConnection,
    next: AtomicI64,
    defaults: ModelDefaults,
}

impl Committer {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            next: AtomicI64::new(0),
            defaults: ModelDefaults::default(),
        }
    }

    /// Commits `(model, successes, failures)` deltas in one batch, and
    /// returns each touched model's new version.
    pub async fn commit(&self, deltas: &[(&str, u64, u64)]) -> Result<Vec<u64>, BenchError> {
        let start = self.next.load(Ordering::SeqCst);
        let mut batch = Vec::with_capacity(deltas.len());
        for (offset, (model, successes, failures)) in (start..).zip(deltas) {
            batch.push(ModelDelta {
                model: ModelId::parse(*model).map_err(|e| fail(format!("{model}: {e}")))?,
                counts: Counts::new(*successes, *failures),
                last_offset: offset,
            });
        }
        let next = start + batch.len() as i64;
        let write = BatchWrite {
            group_id: "bench",
            topic: "observations",
            partition: 0,
            expected_next_offset: (start > 0).then_some(start),
            next_offset: next,
            deltas: &batch,
            identified: &[],
        };
        let applied = apply_batch(&self.db, &write, &self.defaults, "model_updates")
            .await
            .map_err(|e| fail(format!("apply_batch: {e}")))?;
        self.next.store(next, Ordering::SeqCst);
        Ok(applied.states.iter().map(|a| a.state.version).collect())
    }
}

/// The background commits of the second phase, and how long each took to
/// show in `GET /models/{id}/posterior`.
struct Commits {
    stop: CancellationToken,
    task: JoinHandle<Result<Staleness, BenchError>>,
}

impl Commits {
    /// Commits one observation batch to the next of `models` every
    /// [`COMMIT_PERIOD`]; after each, polls that model's posterior on one
    /// connection, as fast as it answers, until it shows the new version.
    fn start(committer: Arc<Committer>, site: Site, models: &[&str]) -> Self {
        let stop = CancellationToken::new();
        let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut staleness = Staleness::default();
            let mut ticker = tokio::time::interval(COMMIT_PERIOD);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for model in models.iter().cycle() {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = stopped.cancelled() => break,
                }
                let versions = committer.commit(&[(model.as_str(), 1, 9)]).await?;
                let committed = Instant::now();
                let version = versions.first().copied().unwrap_or(u64::MAX);
                staleness.commits += 1;
                loop {
                    if site.version(model).await >= Some(version) {
                        staleness.latencies.record(committed.elapsed());
                        break;
                    }
                    if committed.elapsed() > SEEN_DEADLINE {
                        staleness.unseen += 1;
                        break;
                    }
                }
            }
            Ok(staleness)
        });
        Self { stop, task }
    }

    async fn finish(self) -> Result<Staleness, BenchError> {
        self.stop.cancel();
        self.task
            .await
            .map_err(|e| fail(format!("the committing task: {e}")))?
    }
}

/// From `apply_batch` returning to the first read that shows the commit.
#[derive(Debug, Clone, Default)]
struct Staleness {
    latencies: Latencies,
    commits: u64,
    /// Commits not seen within [`SEEN_DEADLINE`].
    unseen: u64,
}

impl Staleness {
    fn line(&self) -> String {
        format!(
            "staleness over {} commits (apply_batch returned -> GET posterior shows the version): \
             p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  unseen after {SEEN_DEADLINE:?}: {}",
            self.commits,
            self.latencies.quantile_ms(0.5),
            self.latencies.quantile_ms(0.99),
            self.latencies.quantile_ms(1.0),
            self.unseen,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_flags_have_defaults_and_refuse_what_they_do_not_know() {
        let flags = Flags::parse(args("")).unwrap();
        assert_eq!((flags.connections, flags.max_requests), (32, 200_000));
        let flags = Flags::parse(args("--seconds 2 --connections 4")).unwrap();
        assert_eq!((flags.connections, flags.seconds), (4, 2.0));
        for bad in ["--help", "--seconds", "--seconds 0", "--connections x"] {
            assert!(Flags::parse(args(bad)).is_err(), "{bad}");
        }
    }
}
