//! What the benchmark programs and the chaos load share: latency histograms
//! (hdrhistogram) with their one summary line, the HTTP load loop (reqwest)
//! that fills them, stopped by time, count or its owner, requests sent
//! again under their `Idempotency-Key` until accepted ([`idempotent`]), the
//! chaos run's acknowledged-against-counted verdict ([`reconcile`]), topic
//! creation on a real broker, and running Apache Kafka's own perf tools (the
//! ceiling a benchmark is compared with) and reading their figures. The
//! model service's HTTP benchmarks share more in [`routes`].

pub mod idempotent;
pub mod reconcile;
pub mod routes;

use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

/// Latencies recorded in microseconds, three significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

/// The longest latency told apart (a minute); longer ones count as a minute.
const LONGEST_MICROS: u64 = 60_000_000;

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, LONGEST_MICROS, 3)
                .expect("1 µs to a minute at 3 significant digits are valid bounds"),
        )
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Both have the same bounds, so adding cannot run out of range.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The latency below which a share `quantile` (0..=1) of the samples fall, in milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1e3
    }

    /// `p50 … ms  p90 … ms  p99 … ms  max … ms`.
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.quantile_ms(0.5),
            self.quantile_ms(0.9),
            self.quantile_ms(0.99),
            self.0.max() as f64 / 1e3,
        )
    }
}

/// The one HTTP client of the benchmarks: HTTP/1.1 keep-alive, one idle
/// connection kept per concurrent loop.
pub fn http_client(connections: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
}

/// How hard and how long to load a service.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent request loops (each holds one keep-alive connection).
    pub connections: usize,
    /// The loops stop issuing requests after this long...
    pub duration: Duration,
    /// ...or after this many requests, all loops together.
    pub max_requests: u64,
    /// With a rate, the loops together send this many requests a second,
    /// and a latency counts from the request's scheduled time, so queueing
    /// shows; without one, each loop sends as soon as its last answer came.
    pub rate: Option<u64>,
    /// With a rate, what a loop does after answers slower than its period:
    /// send the requests it missed at once (true: a benchmark's fixed
    /// schedule), or go on at the rate from then (false: a client that does
    /// not make up for lost time, as the chaos load's, whose outages would
    /// otherwise end in bursts several times the rate).
    pub catch_up: bool,
}

impl Load {
    /// `connections` loops as fast as they go for `duration`, unbounded in count.
    pub fn for_time(connections: usize, duration: Duration) -> Self {
        Self {
            connections,
            duration,
            max_requests: u64::MAX,
            rate: None,
            catch_up: true,
        }
    }
}

/// What one run of the load loop achieved.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Of the successful requests.
    pub latencies: Latencies,
    pub errors: u64,
    /// Response body bytes of the successful requests.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn requests(&self) -> u64 {
        self.latencies.len()
    }

    pub fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }

    /// Prints `name`, then requests, rate, latency percentiles, errors, the
    /// mean body size and `extra`, on one indented line.
    pub fn report(&self, name: &str, extra: &str) {
        let n = self.requests();
        let size = if n > 0 && self.bytes > 0 {
            format!("  body {:.1} KB", self.bytes as f64 / n as f64 / 1e3)
        } else {
            String::new()
        };
        println!(
            "{name}\n    {n:>7} requests {:>9.0} req/s  {}  errors {}{size}{extra}",
            self.per_second(n),
            self.latencies.summary(),
            self.errors,
        );
    }
}

/// Runs `load.connections` loops, each calling `request(i)` (i counts requests
/// across all loops) until the time or count of `load` is reached. A request
/// answers the bytes of a successful response's body, or `None` for a failure.
pub async fn run<F, Fut>(load: Load, request: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<usize>> + Send + 'static,
{
    run_until(load, CancellationToken::new(), request).await
}

/// [`run`] that also stops issuing requests once `stop` is cancelled (the
/// chaos load stops when its stop file appears, not after a set time; a
/// `load.duration` of [`Duration::MAX`] sets no deadline). Requests under
/// way when it is cancelled run to their end.
pub async fn run_until<F, Fut>(load: Load, stop: CancellationToken, request: F) -> Outcome
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<usize>> + Send + 'static,
{
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // No deadline when it lies beyond what an Instant can hold.
    let deadline = started.checked_add(load.duration);
    let connections = load.connections.max(1);
    let mut tasks = Vec::with_capacity(connections);
    for connection in 0..connections {
        let (request, issued, stop) = (request.clone(), issued.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut ticker = load.rate.map(|rate| {
                let period = Duration::from_secs_f64(connections as f64 / rate.max(1) as f64);
                // Spread the loops over one period so they do not fire together.
                let offset = period.mul_f64(connection as f64 / connections as f64);
                let mut ticker =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticker.set_missed_tick_behavior(if load.catch_up {
                    tokio::time::MissedTickBehavior::Burst
                } else {
                    tokio::time::MissedTickBehavior::Delay
                });
                ticker
            });
            while deadline.is_none_or(|d| Instant::now() < d) && !stop.is_cancelled() {
                let scheduled = match ticker.as_mut() {
                    // The stop also ends the wait for the next tick.
                    Some(ticker) => tokio::select! {
                        tick = ticker.tick() => tick.into_std(),
                        () = stop.cancelled() => break,
                    },
                    None => Instant::now(),
                };
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= load.max_requests {
                    break;
                }
                match request(i).await {
                    Some(bytes) => {
                        outcome.latencies.record(scheduled.elapsed());
                        outcome.bytes += bytes as u64;
                    }
                    None => outcome.errors += 1,
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        // A loop that panicked is a bug in the benchmark: its samples are lost,
        // the others still count.
        if let Ok(outcome) = task.await {
            total.latencies.merge(&outcome.latencies);
            total.errors += outcome.errors;
            total.bytes += outcome.bytes;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Why a benchmark's set-up step failed (a benchmark stops on the first one).
#[derive(Debug)]
pub struct BenchError(String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

fn fail(message: impl Into<String>) -> BenchError {
    BenchError(message.into())
}

/// Creates `topics` on the real broker at `brokers` with `partitions` each
/// (replication 1) through the admin API, and returns once the controller
/// created them all. Names must be new: an existing topic is an error, so a
/// benchmark never reads records an earlier run left.
pub async fn create_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| fail(format!("admin client for {brokers}: {e}")))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| fail(format!("creating {topics:?} on {brokers}: {e}")))?;
    for result in results {
        result.map_err(|(topic, code)| fail(format!("creating {topic}: {code}")))?;
    }
    Ok(())
}

/// What `kafka-producer-perf-test` reports on its last line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProducerPerf {
    pub records: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub avg_latency_ms: f64,
}

/// Reads the summary of `kafka-producer-perf-test`'s output: the last line of
/// the form `N records sent, R records/sec (M MB/sec), L ms avg latency, ...`
/// (the progress lines before it have the same form, over 5 s windows). With
/// `--warmup-records` that last line is the steady state's, `N steady state
/// records sent, ...`, which leaves the warm-up out.
pub fn parse_producer_perf(output: &str) -> Option<ProducerPerf> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(" records sent, "))?;
    let number_before = |marker: &str| -> Option<f64> {
        let head = &line[..line.find(marker)?];
        head.rsplit([' ', '(', ','])
            .find(|w| !w.is_empty())?
            .parse()
            .ok()
    };
    Some(ProducerPerf {
        records: line.split_whitespace().next()?.parse().ok()?,
        records_per_sec: number_before(" records/sec")?,
        mb_per_sec: number_before(" MB/sec")?,
        avg_latency_ms: number_before(" ms avg latency")?,
    })
}

/// What `kafka-consumer-perf-test` reports (its CSV line under the header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerPerf {
    pub records: u64,
    /// Over the whole run, the group join (rebalance) included.
    pub records_per_sec: f64,
    pub rebalance_ms: f64,
    /// From the end of the group join to the last record: the steady rate.
    pub fetch_records_per_sec: f64,
}

/// Reads `kafka-consumer-perf-test`'s output: a header line naming the
/// columns (`start.time, end.time, ..., nMsg.sec, rebalance.time.ms, ...,
/// fetch.nMsg.sec`) and the line of values under it. Columns are found by
/// name, so a release that adds some still parses.
pub fn parse_consumer_perf(output: &str) -> Option<ConsumerPerf> {
    let mut lines = output.lines().map(str::trim);
    let header = lines.find(|l| l.starts_with("start.time"))?;
    let values = lines.find(|l| !l.is_empty())?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let cells: Vec<&str> = values.split(',').map(str::trim).collect();
    let column = |name: &str| -> Option<f64> {
        let i = names.iter().position(|n| *n == name)?;
        cells.get(i)?.parse().ok()
    };
    Some(ConsumerPerf {
        records: column("data.consumed.in.nMsg")? as u64,
        records_per_sec: column("nMsg.sec")?,
        rebalance_ms: column("rebalance.time.ms")?,
        fetch_records_per_sec: column("fetch.nMsg.sec")?,
    })
}

/// Runs one of the `scripts/kafka-*-perf-test.sh` wrappers with `args` and
/// returns its standard output (its warnings go to our standard error).
pub fn run_perf_tool(script: &Path, args: &[String]) -> Result<String, BenchError> {
    let output = Command::new(script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("running {}: {e}", script.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(fail(format!(
            "{} {} failed ({}):\n{stdout}",
            script.display(),
            args.join(" "),
            output.status
        )));
    }
    Ok(stdout)
}

/// The lowest, median and highest of `values` (zeros when empty).
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match (sorted.first(), sorted.last()) {
        (Some(&min), Some(&max)) => (min, sorted[sorted.len() / 2], max),
        _ => (0.0, 0.0, 0.0),
    }
}

/// One line of a benchmark's closing table: our figure next to the ceiling.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub what: String,
    pub ours: f64,
    /// The ceiling's figure, when the target is a share of it.
    pub ceiling: Option<f64>,
    /// A share of the ceiling (0.5 = 50 %) or, without a ceiling, a rate.
    pub target: f64,
}

impl Verdict {
    pub fn met(&self) -> bool {
        match self.ceiling {
            Some(ceiling) => self.ours >= self.target * ceiling,
            None => self.ours >= self.target,
        }
    }
}

/// Prints the closing table: figure, ours, ceiling, ratio, target, met.
pub fn print_verdicts(verdicts: &[Verdict]) {
    println!();
    println!(
        "{:<52} {:>12} {:>12} {:>7} {:>10} {:>5}",
        "figure", "ours", "ceiling", "ratio", "target", "met"
    );
    for v in verdicts {
        let (ceiling, ratio, target) = match v.ceiling {
            Some(c) => (
                format!("{c:.0}"),
                format!("{:.0}%", 100.0 * v.ours / c),
                format!(">= {:.0}%", 100.0 * v.target),
            ),
            None => ("-".into(), "-".into(), format!(">= {:.0}", v.target)),
        };
        println!(
            "{:<52} {:>12.0} {:>12} {:>7} {:>10} {:>5}",
            v.what,
            v.ours,
            ceiling,
            ratio,
            target,
            if v.met() { "yes" } else { "NO" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_the_stop_ends_the_loops_even_between_ticks() {
        let stop = CancellationToken::new();
        // A hundred loops, one request a second in all: loop k's first tick
        // is k seconds away when loop 0's first request cancels the stop.
        let load = Load {
            rate: Some(1),
            ..Load::for_time(100, Duration::MAX)
        };
        let cancel = stop.clone();
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            run_until(load, stop, move |_| {
                cancel.cancel();
                async { Some(0) }
            }),
        )
        .await
        .expect("run_until still waited for the loops' ticks after the stop");
        assert_eq!(outcome.requests(), 1);
    }

    #[tokio::test]
    async fn no_request_starts_after_the_stop() {
        let stop = CancellationToken::new();
        let load = Load::for_time(3, Duration::MAX);
        let cancel = stop.clone();
        let outcome = run_until(load, stop, move |i| {
            if i == 10 {
                cancel.cancel();
            }
            async { Some(0) }
        })
        .await;
        // Request 10 cancels; each of the three loops may have taken its
        // next index before it saw the stop, none after.
        assert!(
            (11..=13).contains(&outcome.requests()),
            "{}",
            outcome.requests()
        );
    }

    #[test]
    fn reads_the_last_line_of_the_producer_perf_test() {
        let output = "\
1203409 records sent, 240585.6 records/sec (11.01 MB/sec), 95.2 ms avg latency, 410.0 ms max latency.
2000000 records sent, 241572.327044 records/sec (11.02 MB/sec), 91.13 ms avg latency, 410.00 ms max latency, 80 ms 50th, 190 ms 95th, 300 ms 99th, 400 ms 99.9th.
1600000 steady state records sent, 251572.327044 records/sec (11.52 MB/sec), 90.13 ms avg latency, 410.00 ms max latency, 80 ms 50th, 190 ms 95th, 300 ms 99th, 400 ms 99.9th.
";
        let perf = parse_producer_perf(output).unwrap();
        assert_eq!(perf.records, 1_600_000);
        assert!((perf.records_per_sec - 251_572.327_044).abs() < 1e-6);
        assert!((perf.mb_per_sec - 11.52).abs() < 1e-9);
        assert!((perf.avg_latency_ms - 90.13).abs() < 1e-9);
        assert_eq!(parse_producer_perf("no summary here\n"), None);
    }

    #[test]
    fn reads_the_consumer_perf_test_columns_by_name() {
        let output = "\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-01 11:50:01:123, 2026-12-01 11:50:04:456, 22.8882, 6.8671, 500000, 150015.0015, 3012, 321, 71.3028, 1557632.3988
";
        let perf = parse_consumer_perf(output).unwrap();
        assert_eq!(perf.records, 500_000);
        assert!((perf.records_per_sec - 150_015.001_5).abs() < 1e-6);
        assert!((perf.rebalance_ms - 3012.0).abs() < 1e-9);
        assert!((perf.fetch_records_per_sec - 1_557_632.398_8).abs() < 1e-6);
        assert_eq!(parse_consumer_perf("start.time, end.time\n"), None);
    }

    #[test]
    fn a_verdict_compares_with_a_share_of_the_ceiling_or_a_rate() {
        let share = |ours| Verdict {
            what: "batch".into(),
            ours,
            ceiling: Some(1000.0),
            target: 0.5,
        };
        assert!(share(500.0).met());
        assert!(!share(499.0).met());
        let rate = Verdict {
            what: "single".into(),
            ours: 9_999.0,
            ceiling: None,
            target: 10_000.0,
        };
        assert!(!rate.met());
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
    }
}
