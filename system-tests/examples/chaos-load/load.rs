//! `chaos-load run`: HTTP clients post observations to the producer and kcat
//! publishes records until the stop file appears, then what is not
//! acknowledged yet is retried for up to `--drain` seconds; what was
//! acknowledged, per model and by id, goes to `--out` for `verify`.
//!
//! Every request carries an `Idempotency-Key` and every kcat record a JSON
//! `"id"`; a request is sent again, the same body under the same key, after
//! a 503, a timeout or a connection error until it gets its 202
//! (`test_support::bench::idempotent`), a chunk kcat reports as failed is
//! sent again whole. A share `--resend` of what was acknowledged goes once
//! more 1 to 5 s later, as by a client whose answer was lost, so the log
//! always holds copies for the consumers to skip.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use test_support::bench::idempotent::{post_until_accepted, IdempotentPost, Retries};
use test_support::bench::reconcile::Counts;
use test_support::bench::{self, Load};
use tokio_util::sync::CancellationToken;

use crate::kcat::{KafkaArgs, Kcat};
use crate::log;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The producer's base URL.
    #[arg(long)]
    producer: String,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// New load stops when this file appears.
    #[arg(long)]
    stop_file: PathBuf,
    /// Seconds to keep retrying what is not acknowledged after the stop.
    #[arg(long, default_value_t = 180.0)]
    drain: f64,
    /// Draws the requests and chunks: the same seed, the same load.
    #[arg(long)]
    seed: u64,
    #[arg(long, default_value_t = 20)]
    models: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// HTTP requests per second, all clients together.
    #[arg(long, default_value_t = 40)]
    rate: u64,
    /// The share of acknowledged requests and chunks sent once more.
    #[arg(long, default_value_t = 0.03)]
    resend: f64,
    /// Where to write what was acknowledged (JSON).
    #[arg(long)]
    out: PathBuf,
}

/// What the load counted besides the retries of `Retries`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub http_observations: u64,
    pub kcat_chunks: u64,
    pub kcat_records: u64,
    pub kcat_observations: u64,
    pub status_503: u64,
    pub timeouts: u64,
    pub connection_errors: u64,
    pub kcat_failures: u64,
    pub resent: u64,
    pub unexpected: u64,
    pub unacknowledged: u64,
}

/// The file `run` writes and `verify` reads.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Acknowledged {
    pub acked: Counts,
    pub stats: Stats,
    pub unexpected: Vec<String>,
    pub ids: Vec<String>,
}

/// What was acknowledged so far, shared by the clients.
#[derive(Debug, Default)]
struct Ledger {
    state: Mutex<Acknowledged>,
    retries: Retries,
}

impl Ledger {
    fn add(&self, counts: &Counts, ids: Vec<String>, stats: impl FnOnce(&mut Stats)) {
        if let Ok(mut state) = self.state.lock() {
            state.ids.extend(ids);
            for (model, [trials, successes]) in counts {
                let entry = state.acked.entry(model.clone()).or_default();
                entry[0] += trials;
                entry[1] += successes;
            }
            stats(&mut state.stats);
        }
    }

    fn count(&self, stats: impl FnOnce(&mut Stats)) {
        if let Ok(mut state) = self.state.lock() {
            stats(&mut state.stats);
        }
    }

    /// Everything so far, the retries' counters folded into the stats.
    fn snapshot(&self) -> Acknowledged {
        let mut snapshot = match self.state.lock() {
            Ok(state) => Acknowledged {
                acked: state.acked.clone(),
                stats: state.stats.clone(),
                unexpected: Vec::new(),
                ids: state.ids.clone(),
            },
            Err(_) => Acknowledged::default(),
        };
        let retries = &self.retries;
        snapshot.stats.status_503 = retries.status_503.load(Ordering::Relaxed);
        snapshot.stats.timeouts = retries.timeouts.load(Ordering::Relaxed);
        snapshot.stats.connection_errors = retries.connection_errors.load(Ordering::Relaxed);
        snapshot.stats.unexpected = retries.unexpected.load(Ordering::Relaxed);
        snapshot.unexpected = retries.unexpected_examples();
        snapshot
    }
}

/// When new load stops (the stop file appeared) and when retrying ends.
#[derive(Debug, Default)]
struct Clock {
    stop: CancellationToken,
    give_up_at: OnceLock<Instant>,
}

impl Clock {
    fn stopping(&self, drain: Duration) {
        let _ = self.give_up_at.set(Instant::now() + drain);
        self.stop.cancel();
    }

    fn given_up(&self) -> bool {
        self.give_up_at.get().is_some_and(|at| Instant::now() > *at)
    }
}

/// Something acknowledged, to be sent once more later.
#[derive(Debug)]
enum Resend {
    Request(IdempotentPost),
    Chunk(Vec<u8>),
}

/// What every task of the load shares.
#[derive(Debug)]
struct Shared {
    args: RunArgs,
    ledger: Ledger,
    clock: Clock,
    client: reqwest::Client,
    kcat: Kcat,
    models: Vec<String>,
    /// Due times and what to send again then.
    resends: Mutex<Vec<(Instant, Resend)>>,
}

impl Shared {
    /// Maybe (a share `--resend`) schedules `what` 1 to 5 s from now.
    fn maybe_resend(&self, rng: &mut ChaCha8Rng, what: Resend) {
        if rng.random::<f64>() < self.args.resend {
            let due = Instant::now() + Duration::from_secs_f64(rng.random_range(1.0..5.0));
            if let Ok(mut resends) = self.resends.lock() {
                resends.push((due, what));
            }
        }
    }

    /// Sends `post` until accepted; false when given up or refused.
    async fn post(&self, post: &IdempotentPost) -> bool {
        post_until_accepted(&self.client, post, &self.ledger.retries, || {
            self.clock.given_up()
        })
        .await
        .is_ok()
    }

    /// Runs kcat with `chunk` until it reports every record delivered;
    /// false when the drain time ran out first.
    async fn publish(&self, chunk: &[u8]) -> bool {
        while !self
            .kcat
            .publish(&self.args.kafka.topic, chunk.to_vec())
            .await
        {
            self.ledger.count(|s| s.kcat_failures += 1);
            if self.clock.given_up() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        true
    }
}

/// One observation of a random form, and its (trials, successes).
fn observation(rng: &mut ChaCha8Rng, model: &str) -> (serde_json::Value, [u64; 2]) {
    let form: f64 = rng.random();
    let outcomes = |rng: &mut ChaCha8Rng, n: usize, [win, loss]: [char; 2]| -> String {
        (0..n)
            .map(|_| if rng.random() { win } else { loss })
            .collect()
    };
    if form < 0.4 {
        let outcome = outcomes(rng, 1, ['w', 'l']);
        let won = u64::from(outcome == "w");
        (json!({"model": model, "outcome": outcome}), [1, won])
    } else if form < 0.7 {
        let n = rng.random_range(2..=12);
        let run = outcomes(rng, n, ['w', 'l']);
        let won = run.matches('w').count() as u64;
        (json!({"model": model, "outcomes": run}), [n as u64, won])
    } else {
        let trials = rng.random_range(1..=50u64);
        let successes = rng.random_range(0..=trials);
        (
            json!({"model": model, "successes": successes, "trials": trials}),
            [trials, successes],
        )
    }
}

fn add(counts: &mut Counts, model: &str, [trials, successes]: [u64; 2]) {
    let entry = counts.entry(model.to_owned()).or_default();
    entry[0] += trials;
    entry[1] += successes;
}

impl Shared {
    fn model<'a>(&'a self, rng: &mut ChaCha8Rng) -> &'a str {
        &self.models[rng.random_range(0..self.models.len())]
    }

    /// Request `i` of the run: one observation, a JSON array of 2 to 25, or
    /// a text run of W and L; with its counts per model and its ids (the
    /// producer's: the key, or `key:j` for item j of an array).
    fn request(&self, rng: &mut ChaCha8Rng, i: u64) -> (IdempotentPost, Counts, Vec<String>) {
        let key = format!("chaos-{}-h{i}", self.args.seed);
        let url = format!("{}/observations", self.args.producer);
        let mut counts = Counts::new();
        let form: f64 = rng.random();
        let (url, content_type, body, ids) = if form < 0.45 {
            let model = self.model(rng);
            let (item, tally) = observation(rng, model);
            add(&mut counts, model, tally);
            (url, "application/json", item.to_string(), vec![key.clone()])
        } else if form < 0.85 {
            let n = rng.random_range(2..=25);
            let items: Vec<serde_json::Value> = (0..n)
                .map(|_| {
                    let model = self.model(rng);
                    let (item, tally) = observation(rng, model);
                    add(&mut counts, model, tally);
                    item
                })
                .collect();
            let ids = (0..n).map(|j| format!("{key}:{j}")).collect();
            (url, "application/json", json!(items).to_string(), ids)
        } else {
            let model = self.model(rng);
            let n = rng.random_range(1..=20);
            let run: Vec<&str> = (0..n)
                .map(|_| if rng.random() { "W" } else { "L" })
                .collect();
            let won = run.iter().filter(|o| **o == "W").count() as u64;
            add(&mut counts, model, [n as u64, won]);
            let url = format!("{url}?model={model}");
            (url, "text/plain", run.join(" "), vec![key.clone()])
        };
        let post = IdempotentPost {
            url,
            content_type,
            body,
            key,
        };
        (post, counts, ids)
    }

    /// Request `i`, until acknowledged: the body of one HTTP client's turn.
    async fn http_turn(&self, i: u64) -> Option<usize> {
        // Drawn from the seed and the request's number alone, so the same
        // seed gives the same requests whichever client sends them.
        let mut rng = ChaCha8Rng::seed_from_u64(self.args.seed);
        rng.set_stream(i);
        let (post, counts, ids) = self.request(&mut rng, i);
        if !self.post(&post).await {
            self.ledger.count(|s| s.unacknowledged += 1);
            return None;
        }
        let trials: u64 = counts.values().map(|[t, _]| t).sum();
        self.ledger.add(&counts, ids, |s| {
            s.requests += 1;
            s.http_observations += trials;
        });
        self.maybe_resend(&mut rng, Resend::Request(post));
        Some(0)
    }

    /// kcat's client: chunks of 5 to 40 records, 0.2 to 1 s apart.
    async fn kcat_client(&self) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.args.seed);
        // Streams 0.. are the HTTP requests'.
        rng.set_stream(u64::MAX);
        let mut number = 0u64;
        while !self.clock.stop.is_cancelled() {
            let (mut chunk, mut counts, mut ids) = (Vec::new(), Counts::new(), Vec::new());
            let records = rng.random_range(5..=40);
            for _ in 0..records {
                let model = self.model(&mut rng).to_owned();
                let (mut item, tally) = observation(&mut rng, &model);
                let id = format!("kcat-{}-{number}", self.args.seed);
                number += 1;
                item["id"] = json!(id);
                ids.push(id);
                add(&mut counts, &model, tally);
                // Key and value apart by a tab: JSON holds no raw tab.
                chunk.extend_from_slice(format!("{model}\t{item}\n").as_bytes());
            }
            if self.publish(&chunk).await {
                let trials: u64 = counts.values().map(|[t, _]| t).sum();
                self.ledger.add(&counts, ids, |s| {
                    s.kcat_chunks += 1;
                    s.kcat_records += records;
                    s.kcat_observations += trials;
                });
                self.maybe_resend(&mut rng, Resend::Chunk(chunk));
            } else {
                self.ledger.count(|s| s.unacknowledged += 1);
            }
            let pause = Duration::from_secs_f64(rng.random_range(0.2..1.0));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.clock.stop.cancelled() => {}
            }
        }
    }

    /// Sends what is due again, everything once the load has stopped, until
    /// `clients_done` and nothing is left.
    async fn resender(&self, clients_done: CancellationToken) {
        loop {
            let stopped = self.clock.stop.is_cancelled();
            let due: Vec<Resend> = match self.resends.lock() {
                Ok(mut resends) => {
                    let now = Instant::now();
                    let (due, later) = std::mem::take(&mut *resends)
                        .into_iter()
                        .partition(|(at, _)| stopped || *at <= now);
                    *resends = later;
                    due.into_iter().map(|(_, what)| what).collect()
                }
                Err(_) => Vec::new(),
            };
            if due.is_empty() && clients_done.is_cancelled() {
                return;
            }
            for what in due {
                // The same request or chunk again: counted once.
                self.ledger.count(|s| s.resent += 1);
                let delivered = match &what {
                    Resend::Request(post) => self.post(post).await,
                    Resend::Chunk(chunk) => self.publish(chunk).await,
                };
                if !delivered {
                    self.ledger.count(|s| s.unacknowledged += 1);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn report_progress(&self, elapsed: Duration, note: &str) {
        let snapshot = self.ledger.snapshot();
        let s = &snapshot.stats;
        let total: u64 = snapshot.acked.values().map(|[t, _]| t).sum();
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        log(&format!(
            "[{:5.0} s] acknowledged {total} observations: {} requests, {} kcat chunks ({} records); \
             retried after {} x 503, {} timeouts, {} connection errors, {} kcat failures{note}",
            elapsed.as_secs_f64(),
            s.requests,
            s.kcat_chunks,
            s.kcat_records,
            s.status_503,
            s.timeouts,
            s.connection_errors,
            s.kcat_failures,
        ));
    }
}

/// `run`: exit status 1 when something was never acknowledged.
pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(args.models > 0, "--models must be 1 or more");
    anyhow::ensure!(args.rate > 0, "--rate must be 1 or more");
    anyhow::ensure!(args.drain >= 0.0, "--drain must not be negative");
    let shared = Arc::new(Shared {
        client: bench::http_client(args.workers)?,
        kcat: args.kafka.kcat(),
        models: (0..args.models).map(|i| format!("m{i:02}")).collect(),
        ledger: Ledger::default(),
        clock: Clock::default(),
        resends: Mutex::new(Vec::new()),
        args,
    });
    let started = Instant::now();
    // Until the stop, at the rate; after an outage on at the rate, not in a
    // burst of what the outage held up.
    let load = Load {
        rate: Some(shared.args.rate),
        catch_up: false,
        ..Load::for_time(shared.args.workers, Duration::MAX)
    };
    let http = tokio::spawn({
        let shared = shared.clone();
        bench::run_until(load, shared.clock.stop.clone(), move |i| {
            let shared = shared.clone();
            async move { shared.http_turn(i).await }
        })
    });
    let kcat = tokio::spawn({
        let shared = shared.clone();
        async move { shared.kcat_client().await }
    });
    let clients_done = CancellationToken::new();
    let resender = tokio::spawn({
        let (shared, done) = (shared.clone(), clients_done.clone());
        async move { shared.resender(done).await }
    });
    let args = &shared.args;
    log(&format!(
        "{} HTTP clients (~{} requests/s in all) and kcat, {} models (seed {})",
        args.workers, args.rate, args.models, args.seed
    ));
    let mut next_report = Duration::from_secs(10);
    while !resender.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !shared.clock.stop.is_cancelled() && args.stop_file.exists() {
            shared.clock.stopping(Duration::from_secs_f64(args.drain));
            shared.report_progress(
                started.elapsed(),
                "load stopped; finishing what is not acknowledged yet",
            );
        }
        if http.is_finished() && kcat.is_finished() {
            clients_done.cancel();
        }
        if started.elapsed() >= next_report {
            shared.report_progress(started.elapsed(), "");
            next_report += Duration::from_secs(10);
        }
    }
    let latencies = http.await.context("the HTTP clients")?.latencies;
    kcat.await.context("the kcat client")?;
    resender.await.context("the resender")?;
    shared.report_progress(started.elapsed(), "done");
    log(&format!(
        "time to a 202 (from the scheduled send, retries included): {}",
        latencies.summary()
    ));
    let acknowledged = shared.ledger.snapshot();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    serde_json::to_writer(std::io::BufWriter::new(file), &acknowledged)
        .with_context(|| format!("writing {}", args.out.display()))?;
    for text in &acknowledged.unexpected {
        log(&format!("unexpected answer: {text}"));
    }
    let unacknowledged = acknowledged.stats.unacknowledged;
    if unacknowledged > 0 {
        log(&format!(
            "{unacknowledged} requests or chunks were never acknowledged within the drain time"
        ));
        return Ok(1);
    }
    Ok(0)
}
