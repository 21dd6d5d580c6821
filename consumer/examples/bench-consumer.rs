//! Benchmark (a tool, not a test): the consumer end to end against the raw
//! rdkafka consume rate and, on a real broker, Apache Kafka's own
//! `kafka-consumer-perf-test`, on the same broker and topics in the same run.
//!
//! 1. uses the real Apache Kafka named by `--brokers` or, without it, starts
//!    librdkafka's mock cluster in-process; creates topics of one partition
//!    (the service's default) with names of their own and pre-fills them with
//!    valid observations keyed by model: on a real broker first the records
//!    the producer service writes (canonical JSON, `trace-id` header,
//!    uncompressed, as it sends them), then on both single-outcome records
//!    (`w`/`l`) and runs (`WLWWWLWLW`);
//! 2. measures a bare `BaseConsumer` reading each topic (best of three) and,
//!    with `--perf-test`, `kafka-consumer-perf-test` in a group of its own
//!    (best of two; its rate from the end of the group join, as ours is from
//!    the first record): the ceilings;
//! 3. runs the real consumer from each pre-filled topic to committed state in
//!    a fresh Postgres database, timing until the stored offset reaches the end;
//! 4. runs it once more through a counting proxy to report Postgres round
//!    trips and statements per batch.
//!
//! Usage: `bench-consumer [--brokers HOST:PORT] [--perf-test PATH] [--records N]
//! [--batch-size B] [--batch-wait-ms T] [--set KEY=VALUE]...` (`--perf-test`:
//! the `kafka-consumer-perf-test` wrapper, real broker only; `--set` passes a
//! librdkafka option to both the raw and the real consumer). Postgres:
//! `DATABASE_URL` (a server where databases may be created).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use consumer::{Action, Assignment, Checkpoint, Consumer, FaultInjector};
use domain::observation::parse_json;
use domain::ModelId;
use platform::settings::Settings;
use platform::store::load_offset;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use secrecy::SecretString;
use test_support::bench::{self, ConsumerPerf, Verdict};
use test_support::database::TestDatabase;
use test_support::proxy::{PgProxy, WireCounts};

const MODELS: [&str; 8] = [
    "globe",
    "coin",
    "ab.test-1",
    "ab.test-2",
    "dice",
    "m5",
    "m6",
    "m7",
];

#[derive(Debug, Clone)]
struct Options {
    brokers: Option<String>,
    perf_test: Option<PathBuf>,
    records: usize,
    batch_size: usize,
    batch_wait_ms: u64,
    librdkafka: Vec<(String, String)>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        brokers: None,
        perf_test: None,
        records: 600_000,
        batch_size: Settings::default().consumer.batch_size,
        batch_wait_ms: Settings::default().consumer.batch_wait.as_millis() as u64,
        librdkafka: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--brokers" => options.brokers = Some(value.clone()),
            "--perf-test" => options.perf_test = Some(PathBuf::from(value)),
            "--records" => options.records = value.parse()?,
            "--batch-size" => options.batch_size = value.parse()?,
            "--batch-wait-ms" => options.batch_wait_ms = value.parse()?,
            "--set" => {
                let (k, v) = value.split_once('=').context("--set KEY=VALUE")?;
                options.librdkafka.push((k.to_owned(), v.to_owned()));
            }
            other => bail!("unknown option {other}; see the header of bench-consumer.rs"),
        }
    }
    if options.perf_test.is_some() && options.brokers.is_none() {
        bail!("--perf-test needs a real broker (--brokers): Kafka's tools do not run on the mock cluster");
    }
    Ok(options)
}

/// Where the benchmark's topics live.
enum Broker {
    /// librdkafka's mock cluster, in this process.
    Mock(MockCluster<'static, DefaultProducerContext>),
    /// A real Apache Kafka.
    Real(String),
}

impl Broker {
    fn brokers(&self) -> String {
        match self {
            Self::Mock(cluster) => cluster.bootstrap_servers(),
            Self::Real(brokers) => brokers.clone(),
        }
    }

    fn is_real(&self) -> bool {
        matches!(self, Self::Real(_))
    }

    /// Creates `topics`, one partition each.
    async fn create_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        match self {
            Self::Mock(cluster) => {
                for topic in topics {
                    cluster.create_topic(topic, 1, 1)?;
                }
            }
            Self::Real(brokers) => bench::create_topics(brokers, topics, 1).await?,
        }
        Ok(())
    }
}

/// What a pre-filled topic holds.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// What the producer service writes: canonical JSON of one outcome, a
    /// `trace-id` header.
    Producer,
    /// This plain-text value; `w` alternates with `l`.
    Text(&'static str),
}

struct Workload {
    name: &'static str,
    payload: Payload,
    /// Observations a record carries.
    per_record: u64,
}

/// The figures of one workload.
struct Row {
    name: String,
    prefill: f64,
    raw: Timing,
    perf: Option<ConsumerPerf>,
    e2e: EndToEnd,
    batches: f64,
    db_seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let telemetry = platform::settings::TelemetrySettings {
        log_filter: "warn".into(),
        ..Default::default()
    };
    platform::telemetry::init_tracing(&telemetry);
    let metrics = platform::telemetry::metrics_handle();

    let broker = match &options.brokers {
        Some(brokers) => Broker::Real(brokers.clone()),
        None => Broker::Mock(MockCluster::new(1).context("mock cluster")?),
    };
    let brokers = broker.brokers();
    let mut workloads = Vec::new();
    if broker.is_real() {
        // The mock cluster keeps 5 MB a partition: these longer records
        // would not fit at the default count.
        workloads.push(Workload {
            name: "producer records",
            payload: Payload::Producer,
            per_record: 1,
        });
    }
    workloads.push(Workload {
        name: "single outcomes",
        payload: Payload::Text("w"),
        per_record: 1,
    });
    workloads.push(Workload {
        name: "runs WLWWWLWLW",
        payload: Payload::Text("WLWWWLWLW"),
        per_record: 9,
    });
    println!(
        "bench-consumer: {} records a workload, batch_size {}, batch_wait_ms {}, {}, topics of 1 partition, {} cores",
        options.records,
        options.batch_size,
        options.batch_wait_ms,
        match &broker {
            Broker::Mock(_) => "mock cluster in-process".to_owned(),
            Broker::Real(brokers) => format!("Apache Kafka at {brokers}"),
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut report = Vec::new();
    for workload in &workloads {
        let topic = test_support::unique("bench");
        broker
            .create_topics(&[&topic, &format!("{topic}.dlq")])
            .await?;
        let started = Instant::now();
        prefill(&broker, &topic, workload.payload, options.records)?;
        let prefill_rate = options.records as f64 / started.elapsed().as_secs_f64();

        // The ceiling: the best of three reads (a read lasts well under a
        // second, so one alone is noisy).
        let mut raw = raw_consume(&brokers, &topic, options.records, &options.librdkafka).await?;
        for _ in 0..2 {
            let again = raw_consume(&brokers, &topic, options.records, &options.librdkafka).await?;
            if again.steady_rate() > raw.steady_rate() {
                raw = again;
            }
        }
        // Kafka's own consumer, best of two (the second one's JVM has the
        // class-data archive of the first and starts warmer).
        let mut perf: Option<ConsumerPerf> = None;
        if let Some(script) = &options.perf_test {
            for _ in 0..2 {
                let run = consumer_perf_test(script, &brokers, &topic, options.records).await?;
                println!(
                    "{}: kafka-consumer-perf-test {:.0} rec/s after the group join ({:.0} ms), {:.0} rec/s overall",
                    workload.name, run.fetch_records_per_sec, run.rebalance_ms, run.records_per_sec
                );
                if perf.is_none_or(|p| run.fetch_records_per_sec > p.fetch_records_per_sec) {
                    perf = Some(run);
                }
            }
        }
        let before = scrape(&metrics.render());
        let e2e = end_to_end(&brokers, &topic, options.clone(), None).await?;
        let after = scrape(&metrics.render());
        let batches = after.get("consumer_batches_total").copied().unwrap_or(0.0)
            - before.get("consumer_batches_total").copied().unwrap_or(0.0);
        let db_seconds = after
            .get("consumer_db_apply_seconds_sum")
            .copied()
            .unwrap_or(0.0)
            - before
                .get("consumer_db_apply_seconds_sum")
                .copied()
                .unwrap_or(0.0);
        let observations = e2e.observations;
        let expected = options.records as u64 * workload.per_record;
        if observations != expected {
            bail!(
                "{}: {observations} observations applied, expected {expected}",
                workload.name
            );
        }
        report.push(Row {
            name: workload.name.to_string(),
            prefill: prefill_rate,
            raw,
            perf,
            e2e,
            batches,
            db_seconds,
        });
    }

    println!();
    println!(
        "Rates from the first record polled to the last committed (raw: read; perf-test: from"
    );
    println!("the end of its group join), excluding the start-up of a fresh client that all pay;");
    println!("\"all\" includes it:");
    println!(
        "{:<17} {:>11} {:>11} {:>11} {:>12} {:>8} {:>9} {:>14} {:>8} {:>9} {:>9}",
        "workload",
        "perf rec/s",
        "raw rec/s",
        "e2e rec/s",
        "e2e obs/s",
        "e2e/raw",
        "e2e/perf",
        "e2e rec/s all",
        "batches",
        "rec/batch",
        "in db"
    );
    let records = options.records as f64;
    for row in &report {
        let e2e_rate = row.e2e.timing.steady_rate();
        let (perf_rate, perf_share) = match row.perf {
            Some(p) => (
                format!("{:.0}", p.fetch_records_per_sec),
                format!("{:.0}%", 100.0 * e2e_rate / p.fetch_records_per_sec),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<17} {:>11} {:>11.0} {:>11.0} {:>12.0} {:>7.0}% {:>9} {:>14.0} {:>8.0} {:>9.0} {:>8.0}%",
            row.name,
            perf_rate,
            row.raw.steady_rate(),
            e2e_rate,
            e2e_rate * row.e2e.observations as f64 / records,
            100.0 * e2e_rate / row.raw.steady_rate(),
            perf_share,
            records / row.e2e.timing.total,
            row.batches,
            records / row.batches.max(1.0),
            100.0 * row.db_seconds / row.e2e.timing.steady,
        );
    }
    for row in &report {
        println!(
            "(pre-fill of {}: {:.0} records/s with a ThreadedProducer)",
            row.name, row.prefill
        );
    }
    for row in &report {
        let key = row.name.replace(' ', "_");
        let perf = row.perf.map_or(0.0, |p| p.fetch_records_per_sec);
        println!(
            "summary: workload={key} e2e_rec_per_s={:.0} raw_rec_per_s={:.0} perf_test_rec_per_s={perf:.0}",
            row.e2e.timing.steady_rate(),
            row.raw.steady_rate()
        );
    }
    let verdicts: Vec<Verdict> = report
        .iter()
        .map(|row| match row.perf {
            Some(p) => Verdict {
                what: format!("{}: e2e rec/s vs consumer-perf-test", row.name),
                ours: row.e2e.timing.steady_rate(),
                ceiling: Some(p.fetch_records_per_sec),
                target: 0.5,
            },
            // On the mock cluster the ceiling is the raw rdkafka read.
            None => Verdict {
                what: format!("{}: e2e rec/s vs raw rdkafka", row.name),
                ours: row.e2e.timing.steady_rate(),
                ceiling: Some(row.raw.steady_rate()),
                target: 0.5,
            },
        })
        .collect();
    bench::print_verdicts(&verdicts);

    // Round trips: a separate, smaller run through a counting proxy, so the
    // proxy's own cost does not show in the rates above.
    let counted = Options {
        records: options.records.min(200_000),
        ..options.clone()
    };
    let count_topic = test_support::unique("bench-count");
    broker
        .create_topics(&[&count_topic, &format!("{count_topic}.dlq")])
        .await?;
    prefill(&broker, &count_topic, Payload::Text("w"), counted.records)?;
    let records = counted.records;
    let before = scrape(&metrics.render());
    let e2e = end_to_end(&brokers, &count_topic, counted, Some(())).await?;
    let after = scrape(&metrics.render());
    let batches = after.get("consumer_batches_total").copied().unwrap_or(0.0)
        - before.get("consumer_batches_total").copied().unwrap_or(0.0);
    let wire = e2e.wire.context("wire counts")?;
    println!();
    println!(
        "Postgres traffic while consuming {records} single-outcome records in {batches:.0} batches (counted by a proxy, start-up excluded):"
    );
    println!(
        "  per batch: {:.2} round trips, {:.2} statements executed, {:.2} simple queries (BEGIN/COMMIT), {:.2} statements prepared",
        wire.round_trips() as f64 / batches,
        wire.executes as f64 / batches,
        wire.simple_queries as f64 / batches,
        wire.parses as f64 / batches,
    );
    println!(
        "  transactions per batch: 1 (the batch is one statement, hence one implicit transaction);"
    );
    println!("  of the round trips, one is the statement; the rest are sqlx's pool pings when a connection");
    println!("  goes back to the pool, after the result (off the critical path); \"in db\" above is the time");
    println!("  the polling thread waited for the statement, as a share of the steady time.");
    Ok(())
}

/// Runs `kafka-consumer-perf-test` over the first `n` records of `topic` in a
/// group of its own.
async fn consumer_perf_test(
    script: &std::path::Path,
    brokers: &str,
    topic: &str,
    n: usize,
) -> anyhow::Result<ConsumerPerf> {
    let script = script.to_owned();
    let args: Vec<String> = vec![
        "--bootstrap-server".into(),
        brokers.to_owned(),
        "--topic".into(),
        topic.to_owned(),
        "--num-records".into(),
        n.to_string(),
        "--group".into(),
        test_support::unique("perf"),
        "--timeout".into(),
        "60000".into(),
    ];
    tokio::task::spawn_blocking(move || {
        let output = bench::run_perf_tool(&script, &args)?;
        let perf = bench::parse_consumer_perf(&output).with_context(|| {
            format!("no figures in kafka-consumer-perf-test's output:\n{output}")
        })?;
        if perf.records < n as u64 {
            bail!(
                "kafka-consumer-perf-test read {} of {n} records",
                perf.records
            );
        }
        Ok(perf)
    })
    .await?
}

/// The canonical values the producer service writes for a `w` and an `l` of `model`.
fn canonical_values(model: &str) -> anyhow::Result<[String; 2]> {
    let default_model = ModelId::parse(model.to_owned())?;
    let value = |outcome: &str| -> anyhow::Result<String> {
        let item = serde_json::json!({ "model": model, "outcome": outcome });
        Ok(parse_json(item, None, &default_model)?.to_canonical_json())
    };
    Ok([value("w")?, value("l")?])
}

/// Produces `n` records of `payload`, keyed by model in turn; every third
/// outcome is an `l`.
fn prefill(broker: &Broker, topic: &str, payload: Payload, n: usize) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.brokers())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    match broker {
        // The mock cluster keeps at most 5 MB a partition (it drops the
        // oldest batches beyond): lz4-compressed, some 800 000 short records fit.
        Broker::Mock(_) => config.set("compression.codec", "lz4"),
        // As the producer service writes: uncompressed, acked by all, and
        // idempotent, so a retry cannot add a record and the count holds.
        Broker::Real(_) => config.set("acks", "all").set("enable.idempotence", "true"),
    };
    let producer: ThreadedProducer<DefaultProducerContext> = config.create()?;
    let canonical = MODELS
        .iter()
        .map(|m| canonical_values(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // One trace id per request in the service; one for all here.
    let trace_id = uuid::Uuid::new_v4().to_string();
    for i in 0..n {
        let loss = i % 3 == 2;
        let value = match payload {
            Payload::Producer => canonical[i % MODELS.len()][usize::from(loss)].as_str(),
            Payload::Text("w") if loss => "l",
            Payload::Text(text) => text,
        };
        let mut record = BaseRecord::to(topic)
            .key(MODELS[i % MODELS.len()])
            .payload(value);
        if let Payload::Producer = payload {
            record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                key: "trace-id",
                value: Some(&trace_id),
            }));
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    // Queue full: let librdkafka drain it.
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let (low, high) = producer
        .client()
        .fetch_watermarks(topic, 0, Duration::from_secs(10))?;
    if (low, high) != (0, n as i64) {
        bail!("{topic} holds offsets {low}..{high}, not 0..{n} (the mock cluster keeps at most 5 MB a partition; use fewer --records)");
    }
    Ok(())
}

/// How long a read took.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// From the start (assignment, or spawning the consumer) to the end.
    total: f64,
    /// From the first record polled to the end, and the records read in
    /// that time: the start-up (about half a second for a fresh client on
    /// the mock cluster, mostly the first fetch) excluded.
    steady: f64,
    steady_records: f64,
}

impl Timing {
    fn steady_rate(&self) -> f64 {
        self.steady_records / self.steady
    }
}

/// How long a bare `BaseConsumer` takes to read `n` records from the start.
async fn raw_consume(
    brokers: &str,
    topic: &str,
    n: usize,
    extra: &[(String, String)],
) -> anyhow::Result<Timing> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    let extra = extra.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("raw-{}", uuid::Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // As the consumer sets it (see its kafka.rs): without it a
            // full prefetch queue pauses fetching for a whole second.
            .set("fetch.queue.backoff.ms", "10");
        for (k, v) in &extra {
            config.set(k, v);
        }
        let consumer: BaseConsumer = config.create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let started = Instant::now();
        let mut first = None;
        let (mut count, mut bytes) = (0usize, 0usize);
        while count < n {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                bytes += message?.payload().map_or(0, <[u8]>::len);
                count += 1;
                first.get_or_insert_with(Instant::now);
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("raw consumer stalled at {count}");
            }
        }
        std::hint::black_box(bytes);
        let first = first.context("no record")?;
        Ok(Timing {
            total: started.elapsed().as_secs_f64(),
            steady: first.elapsed().as_secs_f64(),
            steady_records: (n - 1) as f64,
        })
    })
    .await?
}

struct EndToEnd {
    timing: Timing,
    observations: u64,
    wire: Option<WireCounts>,
}

/// Runs the consumer from the start of `topic` until Postgres holds its end.
async fn end_to_end(
    brokers: &str,
    topic: &str,
    options: Options,
    through_proxy: Option<()>,
) -> anyhow::Result<EndToEnd> {
    let (test_db, db) = TestDatabase::create().await?;
    let mut settings = Settings::default();
    settings.kafka.brokers = brokers.to_owned();
    settings.kafka.topic = topic.to_owned();
    settings.kafka.dlq_topic = format!("{topic}.dlq");
    settings.kafka.create_topics = false;
    settings.database = test_db.settings.clone();
    settings.consumer.group_id = format!("bench-{}", uuid::Uuid::new_v4().simple());
    settings.consumer.batch_size = options.batch_size;
    settings.consumer.batch_wait = Duration::from_millis(options.batch_wait_ms);
    settings.consumer.admin_port = 0;
    settings.kafka.librdkafka = options.librdkafka.iter().cloned().collect();
    let proxy = match through_proxy {
        Some(()) => {
            let proxy = PgProxy::start(&test_db.url()).await?;
            settings.database.url = SecretString::from(proxy.url(&test_db.url()));
            Some(proxy)
        }
        None => None,
    };
    let group = settings.consumer.group_id.clone();
    // Notes when the first record is polled: one atomic load a record.
    let first_polled = Arc::new(FirstPolled::default());
    let consumer = Consumer::build(settings)
        .await?
        .with_assignment(Assignment::Manual(vec![0]))
        .with_faults(first_polled.clone());
    let start_counts = proxy.as_ref().map(PgProxy::counts);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(consumer.run_until(async {
        let _ = stopped.await;
    }));
    let end = options.records as i64;
    loop {
        let stored = load_offset(&db, &group, topic, 0).await?;
        if stored == Some(end) {
            break;
        }
        if task.is_finished() {
            bail!("the consumer stopped early: {:?}", task.await);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first_at = *first_polled.0.get().context("no record polled")?;
    let timing = Timing {
        total: started.elapsed().as_secs_f64(),
        steady: first_at.elapsed().as_secs_f64(),
        steady_records: (end - 1) as f64,
    };
    let wire = match (&proxy, start_counts) {
        (Some(proxy), Some(start)) => {
            let end = proxy.counts();
            // The watcher's polls do not go through the proxy.
            Some(WireCounts {
                connections: end.connections - start.connections,
                syncs: end.syncs - start.syncs,
                simple_queries: end.simple_queries - start.simple_queries,
                parses: end.parses - start.parses,
                executes: end.executes - start.executes,
            })
        }
        _ => None,
    };
    let _ = stop.send(());
    task.await??;
    let row = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (sum(successes) + sum(failures))::bigint AS n FROM model_states",
        ))
        .await?
        .context("no row")?;
    let observations: i64 = row.try_get("", "n")?;
    Ok(EndToEnd {
        timing,
        observations: observations as u64,
        wire,
    })
}

/// Remembers when the consumer polled its first record.
#[derive(Debug, Default)]
struct FirstPolled(OnceLock<Instant>);

impl FaultInjector for FirstPolled {
    fn at(&self, _: &Checkpoint) -> Action {
        if self.0.get().is_none() {
            let _ = self.0.set(Instant::now());
        }
        Action::Continue
    }
}

/// Counters and sums from Prometheus text (unlabelled samples only).
fn scrape(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}
