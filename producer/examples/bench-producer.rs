//! Benchmark of the producer service (run by `scripts/bench-producer.sh`; a
//! program that prints figures, not a test).
//!
//! Against a real Apache Kafka (`--brokers host:port`) or, without it,
//! librdkafka's mock cluster in-process. Topics of one partition (the
//! service's default) with names of their own are created first. The producer
//! application runs on a loopback port, driven by an HTTP load loop (reqwest,
//! N keep-alive connections, bounded by count and time).
//!
//! Phases: single-observation requests as fast as they go; the same paced at a
//! fixed rate (latency counted from the scheduled send, so queueing shows);
//! then rounds that alternate the ceilings and batch requests, so that all
//! see the same machine (other work on it moves them alike), and each
//! batch/ceiling ratio is taken per round and reported as the median. The
//! ceilings: a bare rdkafka `BaseProducer` with the service's Kafka settings
//! (`acks=all`, idempotence, the same linger), once with the service's exact
//! records (key, canonical value, `trace-id` header) and once with bare ones
//! (no header); and, on a real broker with `--perf-test`, Apache Kafka's own
//! `kafka-producer-perf-test` with records of the same size (value: the
//! canonical JSON the service writes; key: as many bytes as the model id),
//! `acks=all` and idempotence, its other settings as shipped.
//!
//! Options (all optional): `--brokers HOST:PORT` (a real broker; default the
//! mock cluster), `--perf-test PATH` (the `kafka-producer-perf-test` wrapper
//! to run each round; real broker only), `--connections N` (64), `--seconds S`
//! per phase (5), `--rate R` requests/s of the paced phase (5000), `--batch B`
//! observations per batch request (1000), `--batch-connections N` (4),
//! `--rounds R` (3), `--linger-ms L` (the settings' default, 1).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::observation::parse_json;
use domain::ModelId;
use platform::settings::Settings;
use producer::Application;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;
use test_support::bench::{self, Outcome, Verdict};

// The same allocator as the service's binary (see producer/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The model every benchmark observation is for.
const MODEL: &str = "globe";

#[derive(Debug, Clone)]
struct Options {
    brokers: Option<String>,
    perf_test: Option<PathBuf>,
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
            brokers: None,
            perf_test: None,
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
            match flag.as_str() {
                "--brokers" => {
                    options.brokers = Some(value);
                    continue;
                }
                "--perf-test" => {
                    options.perf_test = Some(PathBuf::from(value));
                    continue;
                }
                _ => {}
            }
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
        if options.perf_test.is_some() && options.brokers.is_none() {
            bail!("--perf-test needs a real broker (--brokers): Kafka's tools do not run on the mock cluster");
        }
        Ok(options)
    }
}

/// Prints a phase's figures, observations/s among them.
fn report(phase: &Outcome, observations_per_request: u64, name: &str) {
    let observations = phase.per_second(phase.requests() * observations_per_request);
    phase.report(name, &format!("  {observations:.0} obs/s"));
}

/// The topics of one run: new names, so no run reads another's records.
struct Topics {
    service: String,
    raw: String,
    perf: String,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let topics = Topics {
        service: test_support::unique("bench"),
        raw: test_support::unique("bench-raw"),
        perf: test_support::unique("bench-perf"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    // Kept alive for the whole run when there is no real broker.
    let mut _cluster: Option<MockCluster<'static, DefaultProducerContext>> = None;
    let (brokers, where_) = match &options.brokers {
        Some(brokers) => {
            runtime
                .block_on(bench::create_topics(
                    brokers,
                    &[&topics.service, &topics.raw, &topics.perf],
                    1,
                ))
                .context("creating the topics")?;
            (brokers.clone(), format!("Apache Kafka at {brokers}"))
        }
        None => {
            let cluster = MockCluster::new(1).context("starting the mock cluster")?;
            for topic in [&topics.raw, &topics.service] {
                cluster
                    .create_topic(topic, 1, 1)
                    .with_context(|| format!("creating {topic}"))?;
            }
            let brokers = cluster.bootstrap_servers();
            _cluster = Some(cluster);
            (
                brokers.clone(),
                format!("mock cluster at {brokers} (in-process)"),
            )
        }
    };
    println!(
        "{where_}; topics of 1 partition; {} CPUs; acks=all, enable.idempotence=true, linger.ms={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        options.linger_ms
    );
    runtime.block_on(run(brokers, topics, options))
}

/// The record value the service writes for one `w` of [`MODEL`], found the
/// way the service finds it (parse the request item, write it canonically).
fn canonical_value() -> anyhow::Result<String> {
    let item = serde_json::json!({ "model": MODEL, "outcome": "w" });
    let default_model = ModelId::parse(MODEL.to_owned())?;
    Ok(parse_json(item, None, &default_model)?.to_canonical_json())
}

async fn run(brokers: String, topics: Topics, options: Options) -> anyhow::Result<()> {
    let value = canonical_value()?;
    println!(
        "record: key {MODEL:?} ({} bytes), value {value} ({} bytes), trace-id header (36 bytes)",
        MODEL.len(),
        value.len()
    );
    let raw = Arc::new(RawProducer::new(
        &brokers,
        &topics.raw,
        value.clone(),
        options.linger_ms,
    )?);
    let perf = options.perf_test.clone().map(|script| PerfTest {
        script,
        brokers: brokers.clone(),
        topic: topics.perf.clone(),
        value_bytes: value.len(),
        key_bytes: MODEL.len(),
    });
    let mut settings = Settings::default();
    settings.kafka.brokers = brokers;
    settings.kafka.topic = topics.service.clone();
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
        body: format!(r#"{{"model":"{MODEL}","outcome":"w"}}"#),
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
    let single_rate = phase.per_second(phase.requests());
    let single_errors = phase.errors;
    let phase = single
        .run(options.connections, seconds, Some(options.rate))
        .await;
    report(
        &phase,
        single.observations_per_request,
        &format!("single, paced at {} req/s", options.rate),
    );

    let (mut same_shape, mut bare, mut perf_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut batch_rates, mut perf_rates, mut raw_rates) = (Vec::new(), Vec::new(), Vec::new());
    // The perf test's first run sends this many; later ones as many as its
    // last rate sends in one phase, so each lasts about as long as ours.
    let mut perf_records = 500_000u64;
    for round in 1..=options.rounds {
        if let Some(perf) = &perf {
            let perf = perf.clone();
            let figures = tokio::task::spawn_blocking(move || perf.run(perf_records))
                .await
                .context("perf test round")??;
            println!(
                "round {round}: kafka-producer-perf-test {:>22.0} rec/s   ({} steady-state records, {:.1} ms avg latency)",
                figures.records_per_sec, figures.records, figures.avg_latency_ms
            );
            perf_rates.push(figures.records_per_sec);
            perf_records = ((figures.records_per_sec * seconds.as_secs_f64()) as u64).max(100_000);
        }
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
                Shape::Service => {
                    same_shape.push(raw_rate);
                    raw_rates.push(raw_rate);
                }
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
        batch_rates.push(observations);
        if let (Some(b), Some(s)) = (bare.last_mut(), same_shape.last_mut()) {
            *b = observations / *b;
            *s = observations / *s;
        }
        if let Some(p) = perf_rates.last() {
            perf_ratio.push(observations / p);
        }
    }
    println!(
        "batched observations/s vs raw rdkafka (median of {} rounds): {:.0}% of the rate for the same records (key, value, trace-id header), {:.0}% of the rate for bare records (no header)",
        options.rounds,
        median(&mut same_shape) * 100.0,
        median(&mut bare) * 100.0,
    );

    let (_, batch_median, _) = bench::spread(&batch_rates);
    let mut verdicts = Vec::new();
    if perf.is_some() {
        let (_, perf_median, _) = bench::spread(&perf_rates);
        let (ratio_min, ratio_median, ratio_max) = bench::spread(&perf_ratio);
        println!(
            "batched observations/s vs kafka-producer-perf-test, per round: median {:.0}% (min {:.0}%, max {:.0}%)",
            ratio_median * 100.0,
            ratio_min * 100.0,
            ratio_max * 100.0
        );
        // The table shows the medians; its ratio is theirs, close to the
        // median of the per-round ratios printed above.
        verdicts.push(Verdict {
            what: "batch path obs/s vs kafka-producer-perf-test".into(),
            ours: batch_median,
            ceiling: Some(perf_median),
            target: 0.5,
        });
        println!(
            "summary: single_posts_per_s={single_rate:.0} batch_obs_per_s={batch_median:.0} perf_test_rec_per_s={perf_median:.0} batch_vs_perf_median_ratio={ratio_median:.3}"
        );
    } else {
        println!("summary: single_posts_per_s={single_rate:.0} batch_obs_per_s={batch_median:.0}");
    }
    // On the mock cluster, where Kafka's tools do not run, the ceiling is
    // the raw rdkafka producer with the service's exact records.
    if perf.is_none() {
        let (_, raw_median, _) = bench::spread(&raw_rates);
        verdicts.push(Verdict {
            what: "batch path obs/s vs raw rdkafka, same records".into(),
            ours: batch_median,
            ceiling: Some(raw_median),
            target: 0.5,
        });
    }
    verdicts.push(Verdict {
        what: format!(
            "single acked POSTs/s ({} connections{})",
            options.connections,
            if single_errors > 0 {
                ", with errors"
            } else {
                ""
            }
        ),
        ours: single_rate,
        ceiling: None,
        target: 10_000.0,
    });
    bench::print_verdicts(&verdicts);

    let _ = stop.send(());
    server.await.context("joining the server")??;
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Apache Kafka's `kafka-producer-perf-test`, run with records of the size the
/// service writes, as fast as it goes (`--throughput -1`).
#[derive(Debug, Clone)]
struct PerfTest {
    script: PathBuf,
    brokers: String,
    topic: String,
    value_bytes: usize,
    key_bytes: usize,
}

impl PerfTest {
    /// Sends `records`, the first fifth as a warm-up left out of its figures
    /// (the JVM compiles its hot paths then; our side had its warm-up too).
    fn run(&self, records: u64) -> anyhow::Result<bench::ProducerPerf> {
        // Keys cycle through 0..10^k written in decimal: mostly k bytes, as
        // many as the model id has (the tool has no fixed key).
        let key_range = 10u64.saturating_pow(u32::try_from(self.key_bytes).unwrap_or(9).min(9));
        let args: Vec<String> = [
            "--topic",
            &self.topic,
            "--num-records",
            &records.to_string(),
            "--warmup-records",
            &(records / 5).to_string(),
            "--record-size",
            &self.value_bytes.to_string(),
            "--key-distribution",
            "range",
            "--record-key-range",
            &key_range.to_string(),
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={}", self.brokers),
            "acks=all",
            "enable.idempotence=true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let output = bench::run_perf_tool(&self.script, &args)?;
        bench::parse_producer_perf(&output)
            .with_context(|| format!("no summary in kafka-producer-perf-test's output:\n{output}"))
    }
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
    topic: String,
    /// The canonical value the service writes.
    payload: String,
}

impl RawProducer {
    fn new(brokers: &str, topic: &str, payload: String, linger_ms: u64) -> anyhow::Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", linger_ms.to_string())
            .create()
            .context("creating the raw producer")?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            payload,
        })
    }

    /// Enqueues canonical records as fast as librdkafka takes them for
    /// `duration`, then waits for every ack: records/s over the whole time.
    fn rate(&self, duration: Duration, shape: Shape) -> anyhow::Result<(f64, u64)> {
        let trace_id = "8a1c3c1e-2f5e-4d7b-9a59-5e0f6b7d2c11";
        let started = Instant::now();
        let until = started + duration;
        let mut sent = 0u64;
        while sent % 1024 != 0 || Instant::now() < until {
            let mut record = BaseRecord::to(&self.topic)
                .key(MODEL)
                .payload(&self.payload);
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
