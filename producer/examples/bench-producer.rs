//! Benchmark of the producer service (run by `scripts/bench-producer.sh`; a
//! program that prints figures, not a test).
//!
//! In one process: librdkafka's mock cluster; the raw rdkafka producer rate
//! against it (the ceiling: a bare `BaseProducer` with the service's Kafka
//! settings, `acks=all`, idempotence, the same linger); and the producer
//! application on a loopback port against the same cluster, driven by an HTTP
//! load loop (reqwest, N keep-alive connections, bounded by count and time).
//!
//! Phases: single-observation requests as fast as they go; the same paced at a
//! fixed rate (latency counted from the scheduled send, so queueing shows);
//! then rounds that alternate the raw producer and batch requests, so that
//! both see the same machine (other work on it moves both alike), and the
//! batch/raw ratio is taken per round and reported as the median. The raw
//! producer runs twice a round: with the service's exact records (key,
//! canonical value, `trace-id` header) and with bare ones (no header).
//!
//! Options (all optional): `--connections N` (64), `--seconds S` per phase (5),
//! `--rate R` requests/s of the paced phase (5000), `--batch B` observations
//! per batch request (1000), `--batch-connections N` (4), `--rounds R` (3),
//! `--linger-ms L` (the settings' default, 1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use platform::settings::Settings;
use producer::Application;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use test_support::bench::{self, Outcome};

// The same allocator as the service's binary (see producer/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone)]
struct Options {
    connections: usize,
    seconds: u64,
    rate: u64,
    batch: usize,
    batch_connections: usize,
    rounds: usize,
    linger_ms: u64,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let mut options = Self {
            connections: 64,
            seconds: 5,
            rate: 5_000,
            batch: 1_000,
            batch_connections: 4,
            rounds: 3,
            linger_ms: Settings::default().producer.linger.as_millis() as u64,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            let number: u64 = value
                .parse()
                .with_context(|| format!("{flag}: {value:?} is not a number"))?;
            let count = usize::try_from(number.max(1)).context("too large")?;
            match flag.as_str() {
                "--connections" => options.connections = count,
                "--seconds" => options.seconds = number.max(1),
                "--rate" => options.rate = number.max(1),
                "--batch" => options.batch = count,
                "--batch-connections" => options.batch_connections = count,
                "--rounds" => options.rounds = count,
                "--linger-ms" => options.linger_ms = number,
                other => bail!("unknown option {other}"),
            }
        }
        Ok(options)
    }
}

/// Prints a phase's figures, observations/s among them.
fn report(phase: &Outcome, observations_per_request: u64, name: &str) {
    let observations = phase.per_second(phase.requests() * observations_per_request);
    phase.report(name, &format!("  {observations:.0} obs/s"));
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let cluster = MockCluster::new(1).context("starting the mock cluster")?;
    let brokers = cluster.bootstrap_servers();
    for topic in ["bench-raw", "bench"] {
        cluster
            .create_topic(topic, 1, 1)
            .with_context(|| format!("creating {topic}"))?;
    }
    println!(
        "mock cluster at {brokers} (in-process); {} CPUs; acks=all, enable.idempotence=true, linger.ms={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.linger_ms
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(run(brokers, options))
}

async fn run(brokers: String, options: Options) -> anyhow::Result<()> {
    let raw = Arc::new(RawProducer::new(&brokers, options.linger_ms)?);
    let mut settings = Settings::default();
    settings.kafka.brokers = brokers;
    settings.kafka.topic = "bench".into();
    settings.kafka.create_topics = false;
    settings.producer.port = 0;
    settings.producer.linger = Duration::from_millis(options.linger_ms);
    settings.producer.max_batch = settings.producer.max_batch.max(options.batch);
    settings.producer.max_body_bytes = settings.producer.max_body_bytes.max(options.batch * 40 + 2);
    let application = Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}/observations", application.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = bench::http_client(options.connections.max(options.batch_connections))
        .context("building the HTTP client")?;
    let seconds = Duration::from_secs(options.seconds);
    let single = Load {
        client: client.clone(),
        url: url.clone(),
        body: r#"{"model":"globe","outcome":"w"}"#.into(),
        observations_per_request: 1,
    };
    let batch = Load {
        client,
        url,
        body: batch_body(options.batch),
        observations_per_request: options.batch as u64,
    };

    // Warm-up: connections, the broker connection and producer id, the allocator.
    single
        .run(options.connections, Duration::from_secs(1), None)
        .await;
    batch
        .run(options.batch_connections, Duration::from_secs(1), None)
        .await;
    let raw_warm = raw.clone();
    tokio::task::spawn_blocking(move || raw_warm.rate(Duration::from_secs(1), Shape::Service))
        .await
        .context("raw warm-up")??;

    let phase = single.run(options.connections, seconds, None).await;
    report(
        &phase,
        single.observations_per_request,
        &format!("single, {} connections", options.connections),
    );
    let phase = single
        .run(options.connections, seconds, Some(options.rate))
        .await;
    report(
        &phase,
        single.observations_per_request,
        &format!("single, paced at {} req/s", options.rate),
    );

    let (mut same_shape, mut bare) = (Vec::new(), Vec::new());
    for round in 1..=options.rounds {
        for shape in [Shape::Bare, Shape::Service] {
            let raw_round = raw.clone();
            let (raw_rate, sent) =
                tokio::task::spawn_blocking(move || raw_round.rate(seconds, shape))
                    .await
                    .context("raw round")??;
            println!(
                "round {round}: raw rdkafka, {:<17} {:>9} {:>16.0} rec/s   ({sent} records, all acked)",
                shape.name(),
                "",
                raw_rate
            );
            match shape {
                Shape::Bare => bare.push(raw_rate),
                Shape::Service => same_shape.push(raw_rate),
            }
        }
        let phase = batch.run(options.batch_connections, seconds, None).await;
        report(
            &phase,
            batch.observations_per_request,
            &format!(
                "round {round}: batches of {}, {} conn",
                options.batch, options.batch_connections
            ),
        );
        let observations = phase.per_second(phase.requests() * batch.observations_per_request);
        if let (Some(b), Some(s)) = (bare.last_mut(), same_shape.last_mut()) {
            *b = observations / *b;
            *s = observations / *s;
        }
    }
    println!(
        "batched observations/s vs raw rdkafka (median of {} rounds): {:.0}% of the rate for the same records (key, value, trace-id header), {:.0}% of the rate for bare records (no header)",
        options.rounds,
        median(&mut same_shape) * 100.0,
        median(&mut bare) * 100.0,
    );

    let _ = stop.send(());
    server.await.context("joining the server")??;
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// What the raw producer sends.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Key and canonical value only.
    Bare,
    /// The service's records: key, canonical value and a `trace-id` header.
    Service,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare records",
            Self::Service => "same records",
        }
    }
}

/// A `BaseProducer` with the service's Kafka settings and one thread
/// enqueueing: the ceiling the service is compared with.
struct RawProducer {
    producer: BaseProducer,
}

impl RawProducer {
    fn new(brokers: &str, linger_ms: u64) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", linger_ms.to_string())
            .create()
            .context("creating the raw producer")?;
        Ok(Self { producer })
    }

    /// Enqueues canonical records as fast as librdkafka takes them for
    /// `duration`, then waits for every ack: records/s over the whole time.
    fn rate(&self, duration: Duration, shape: Shape) -> anyhow::Result<(f64, u64)> {
        let payload = r#"{"model":"globe","successes":1,"trials":1}"#;
        let trace_id = "8a1c3c1e-2f5e-4d7b-9a59-5e0f6b7d2c11";
        let started = Instant::now();
        let until = started + duration;
        let mut sent = 0u64;
        while sent % 1024 != 0 || Instant::now() < until {
            let mut record = BaseRecord::to("bench-raw").key("globe").payload(payload);
            if let Shape::Service = shape {
                record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                    key: "trace-id",
                    value: Some(trace_id),
                }));
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(1));
                    }
                    Err((error, _)) => return Err(error).context("raw send"),
                }
            }
            sent += 1;
        }
        self.producer
            .flush(Duration::from_secs(60))
            .context("flushing the raw producer")?;
        Ok((sent as f64 / started.elapsed().as_secs_f64(), sent))
    }
}

fn batch_body(size: usize) -> String {
    let items: Vec<&str> = (0..size)
        .map(|i| {
            if i % 3 == 0 {
                r#"{"model":"globe","outcome":"l"}"#
            } else {
                r#"{"model":"globe","outcome":"w"}"#
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// One kind of request, sent over and over.
struct Load {
    client: reqwest::Client,
    url: String,
    body: String,
    observations_per_request: u64,
}

impl Load {
    /// Runs `connections` loops posting the body until `duration` passes;
    /// with `rate`, the loops are paced to send `rate` requests/s together
    /// and latency counts from each request's scheduled time.
    async fn run(&self, connections: usize, duration: Duration, rate: Option<u64>) -> Outcome {
        let (client, url, body) = (self.client.clone(), self.url.clone(), self.body.clone());
        let load = bench::Load {
            rate,
            ..bench::Load::for_time(connections, duration)
        };
        bench::run(load, move |_| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                let response = request.send().await.ok()?;
                if response.status().as_u16() != 202 {
                    return None;
                }
                response.bytes().await.ok().map(|b| b.len())
            }
        })
        .await
    }
}
