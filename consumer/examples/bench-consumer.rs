//! Benchmark (a tool, not a test): the consumer end to end against the raw
//! rdkafka consume rate on the same broker in the same run.
//!
//! 1. starts librdkafka's mock cluster in-process and pre-fills two topics:
//!    single-outcome records (`w`/`l`) and runs (`WLWWWLWLW`), keyed by model;
//! 2. measures a bare `BaseConsumer` reading each topic (the ceiling; best of three);
//! 3. runs the real consumer from each pre-filled topic to committed state in
//!    a fresh Postgres database, timing until the stored offset reaches the end;
//! 4. runs it once more through a counting proxy to report Postgres round
//!    trips and statements per batch.
//!
//! Usage: `bench-consumer [--records N] [--batch-size B] [--batch-wait-ms T] [--set KEY=VALUE]...`
//! (`--set` passes a librdkafka option to both the raw and the real consumer).
//! Postgres: `DATABASE_URL` (a server where databases may be created).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use consumer::{Action, Assignment, Checkpoint, Consumer, FaultInjector};
use platform::settings::Settings;
use platform::store::load_offset;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use secrecy::SecretString;
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
    records: usize,
    batch_size: usize,
    batch_wait_ms: u64,
    librdkafka: Vec<(String, String)>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        records: 600_000,
        batch_size: Settings::default().consumer.batch_size,
        batch_wait_ms: Settings::default().consumer.batch_wait.as_millis() as u64,
        librdkafka: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
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
    Ok(options)
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

    let cluster = MockCluster::new(1).context("mock cluster")?;
    let brokers = cluster.bootstrap_servers();
    let workloads = [
        ("single outcomes", "w", 1u64),
        ("runs WLWWWLWLW", "WLWWWLWLW", 9),
    ];
    println!(
        "bench-consumer: {} records a workload, batch_size {}, batch_wait_ms {}, mock cluster in-process, {} cores",
        options.records,
        options.batch_size,
        options.batch_wait_ms,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut report = Vec::new();
    for (i, (name, value, per_record)) in workloads.iter().enumerate() {
        let topic = format!("bench-{i}");
        cluster.create_topic(&topic, 1, 1)?;
        cluster.create_topic(&format!("{topic}.dlq"), 1, 1)?;
        let started = Instant::now();
        prefill(&brokers, &topic, value, options.records)?;
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
        if observations != options.records as u64 * per_record {
            bail!(
                "{name}: {observations} observations applied, expected {}",
                options.records as u64 * per_record
            );
        }
        report.push((
            name.to_string(),
            prefill_rate,
            raw,
            e2e,
            batches,
            db_seconds,
        ));
    }

    println!();
    println!("Rates from the first record polled to the last committed (raw: read), excluding the");
    println!("~0.5 s start-up of a fresh client that both pay; \"all\" includes it:");
    println!(
        "{:<17} {:>11} {:>11} {:>12} {:>8} {:>14} {:>8} {:>9} {:>9}",
        "workload",
        "raw rec/s",
        "e2e rec/s",
        "e2e obs/s",
        "e2e/raw",
        "e2e rec/s all",
        "batches",
        "rec/batch",
        "in db"
    );
    for (name, _prefill, raw, e2e, batches, db_seconds) in &report {
        let records = options.records as f64;
        let e2e_rate = e2e.timing.steady_rate();
        println!(
            "{:<17} {:>11.0} {:>11.0} {:>12.0} {:>7.0}% {:>14.0} {:>8.0} {:>9.0} {:>8.0}%",
            name,
            raw.steady_rate(),
            e2e_rate,
            e2e_rate * e2e.observations as f64 / records,
            100.0 * e2e_rate / raw.steady_rate(),
            records / e2e.timing.total,
            batches,
            records / batches.max(1.0),
            100.0 * db_seconds / e2e.timing.steady,
        );
    }
    for (name, prefill, ..) in &report {
        println!("(pre-fill of {name}: {prefill:.0} records/s with a ThreadedProducer)");
    }

    // Round trips: a separate, smaller run through a counting proxy, so the
    // proxy's own cost does not show in the rates above.
    let topic = "bench-0";
    let counted = Options {
        records: options.records.min(200_000),
        ..options.clone()
    };
    let count_topic = "bench-count";
    cluster.create_topic(count_topic, 1, 1)?;
    cluster.create_topic(&format!("{count_topic}.dlq"), 1, 1)?;
    prefill(&brokers, count_topic, "w", counted.records)?;
    let records = counted.records;
    let before = scrape(&metrics.render());
    let e2e = end_to_end(&brokers, count_topic, counted, Some(())).await?;
    let after = scrape(&metrics.render());
    let batches = after.get("consumer_batches_total").copied().unwrap_or(0.0)
        - before.get("consumer_batches_total").copied().unwrap_or(0.0);
    let wire = e2e.wire.context("wire counts")?;
    println!();
    println!(
        "Postgres traffic while consuming {records} records of {topic}'s kind in {batches:.0} batches (counted by a proxy, start-up excluded):"
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

/// Produces `n` records of `value`, keyed by model in turn; `w` alternates with `l`.
fn prefill(brokers: &str, topic: &str, value: &str, n: usize) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        // The mock cluster keeps at most 5 MB a partition (it drops the
        // oldest batches beyond): lz4-compressed, some 800 000 short records fit.
        .set("compression.codec", "lz4")
        .create()?;
    for i in 0..n {
        let v = if value == "w" && i % 3 == 2 {
            "l"
        } else {
            value
        };
        let mut record = BaseRecord::to(topic)
            .key(MODELS[i % MODELS.len()])
            .payload(v);
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
        bail!("{topic} holds offsets {low}..{high}, not 0..{n}: the mock cluster keeps at most 5 MB a partition; use fewer --records");
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
