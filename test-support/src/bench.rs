//! What the benchmark programs share: latency histograms (hdrhistogram) with
//! their one summary line, and the HTTP load loop (reqwest) that fills them.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

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
}

impl Load {
    /// `connections` loops as fast as they go for `duration`, unbounded in count.
    pub fn for_time(connections: usize, duration: Duration) -> Self {
        Self {
            connections,
            duration,
            max_requests: u64::MAX,
            rate: None,
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
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + load.duration;
    let connections = load.connections.max(1);
    let mut tasks = Vec::with_capacity(connections);
    for connection in 0..connections {
        let (request, issued) = (request.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut ticker = load.rate.map(|rate| {
                let period = Duration::from_secs_f64(connections as f64 / rate.max(1) as f64);
                // Spread the loops over one period so they do not fire together.
                let offset = period.mul_f64(connection as f64 / connections as f64);
                let mut ticker =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                ticker
            });
            while Instant::now() < deadline {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= load.max_requests {
                    break;
                }
                let scheduled = match ticker.as_mut() {
                    Some(ticker) => ticker.tick().await.into_std(),
                    None => Instant::now(),
                };
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
