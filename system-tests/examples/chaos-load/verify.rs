//! `chaos-load verify`: waits until the consumers have caught up (every
//! partition's offset stored in Postgres equals the broker's end offset,
//! and the counts stand still or equal what was acknowledged), then prints
//! acknowledged against counted per model, the summary lines, and exit
//! status 1 on any difference.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sea_orm::{Database, DatabaseConnection};
use test_support::bench::reconcile::{reconcile, Counts, LogIds};

use crate::kcat::{KafkaArgs, Kcat};
use crate::load::Acknowledged;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The file `run --out` wrote.
    #[arg(long)]
    acked: PathBuf,
    /// The model service's base URL.
    #[arg(long)]
    model_service: String,
    /// Postgres URL (for the stored offsets).
    #[arg(long)]
    database: String,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[arg(long, default_value = "bayes-consumer")]
    group: String,
    #[arg(long)]
    partitions: i32,
    /// Seconds to wait for the consumers to catch up.
    #[arg(long, default_value_t = 180.0)]
    timeout: f64,
    /// What the chaos did, for the summary line.
    #[arg(long, default_value = "")]
    actions: String,
}

/// Where the verdict reads the pipeline's state.
struct Pipeline<'a> {
    args: &'a VerifyArgs,
    kcat: Kcat,
    http: reqwest::Client,
    /// Connected on first use, again after an error.
    db: Option<DatabaseConnection>,
}

impl Pipeline<'_> {
    /// Each partition's offset stored in Postgres by the group (0 when none yet).
    async fn stored_offsets(&mut self) -> anyhow::Result<BTreeMap<i32, i64>> {
        let db = match self.db.take() {
            Some(db) => db,
            None => Database::connect(&self.args.database)
                .await
                .context("connecting to Postgres")?,
        };
        let mut stored = BTreeMap::new();
        for partition in 0..self.args.partitions {
            let offset = platform::store::load_offset(
                &db,
                &self.args.group,
                &self.args.kafka.topic,
                partition,
            )
            .await
            .context("reading consumer_offsets")?;
            stored.insert(partition, offset.unwrap_or(0));
        }
        self.db = Some(db);
        Ok(stored)
    }

    /// Every model's counts as the model service answers them (`GET /models`, page by page).
    async fn counted(&self) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = self
                .http
                .get(format!("{}/models", self.args.model_service))
                .query(&[("limit", "1000")]);
            if let Some(after) = &after {
                request = request.query(&[("after", after)]);
            }
            let response = request.send().await.context("GET /models")?;
            let status = response.status();
            let body = response.text().await.context("GET /models")?;
            if !status.is_success() {
                bail!(
                    "GET /models answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                );
            }
            let page: serde_json::Value = serde_json::from_str(&body).context("GET /models")?;
            for model in page["models"]
                .as_array()
                .context("GET /models: no models")?
            {
                let field = |name: &str| model[name].as_u64().context(format!("a model's {name}"));
                let name = model["model"].as_str().context("a model's name")?;
                counts.insert(name.to_owned(), [field("trials")?, field("successes")?]);
            }
            match page["next_after"].as_str() {
                Some(next) if !next.is_empty() => after = Some(next.to_owned()),
                _ => return Ok(counts),
            }
        }
    }
}

/// How the wait for the consumers ended.
struct CatchUp {
    caught_up: bool,
    counted: Counts,
    lag: BTreeMap<i32, i64>,
    problem: Option<String>,
}

/// Polls every 2 s, up to `--timeout`, until the stored offsets equal the
/// end offsets and the counts read after them equal what was acknowledged
/// or the counts of the poll before.
async fn catch_up(pipeline: &mut Pipeline<'_>, acked: &Counts) -> CatchUp {
    let args = pipeline.args;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut previous: Option<Counts> = None;
    let mut outcome = CatchUp {
        caught_up: false,
        counted: Counts::new(),
        lag: BTreeMap::new(),
        problem: None,
    };
    loop {
        let poll: anyhow::Result<()> = async {
            let ends = pipeline
                .kcat
                .end_offsets(&args.kafka.topic, args.partitions)
                .await?;
            let stored = pipeline.stored_offsets().await?;
            outcome.lag = (0..args.partitions)
                .map(|p| (p, ends.get(&p).unwrap_or(&0) - stored.get(&p).unwrap_or(&0)))
                .collect();
            outcome.problem = None;
            if ends.len() != args.partitions as usize {
                outcome.problem = Some(format!(
                    "the broker reported {} partitions, not {}",
                    ends.len(),
                    args.partitions
                ));
                previous = None;
            } else if outcome.lag.values().all(|lag| *lag == 0) {
                // Read after the offsets: counts commit with them, so these
                // hold every batch up to the end of the log. Read before,
                // they could miss the batches committed in between (seen on
                // a loaded machine: a stale count taken for the last).
                outcome.counted = pipeline.counted().await?;
                if outcome.counted == *acked || previous.as_ref() == Some(&outcome.counted) {
                    outcome.caught_up = true;
                }
                previous = Some(outcome.counted.clone());
            } else {
                previous = None;
            }
            Ok(())
        }
        .await;
        if let Err(e) = poll {
            outcome.problem = Some(format!("{e:#}"));
            // A connection that failed is made again on the next poll.
            pipeline.db = None;
        }
        if outcome.caught_up || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if outcome.counted.is_empty() {
        match pipeline.counted().await {
            Ok(counted) => outcome.counted = counted,
            Err(e) => {
                outcome.problem.get_or_insert(format!("{e:#}"));
            }
        }
    }
    outcome
}

/// `verify`: exit status 1 on any difference or when the consumers did not catch up.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let file = std::fs::File::open(&args.acked)
        .with_context(|| format!("reading {}", args.acked.display()))?;
    let run: Acknowledged = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", args.acked.display()))?;
    let mut pipeline = Pipeline {
        args: &args,
        kcat: args.kafka.kcat(),
        http: test_support::bench::http_client(1)?,
        db: None,
    };
    let waited = catch_up(&mut pipeline, &run.acked).await;
    let log = match pipeline.kcat.read_values(&args.kafka.topic).await {
        Ok(values) => Ok(LogIds::from_values(values.lines())),
        Err(e) => Err(e),
    };

    let result = reconcile(&run.acked, &waited.counted);
    println!();
    println!("observations per model, as trials/successes:");
    print!("{}", result.table());
    let (acknowledged, counted) = result.totals();
    let s = &run.stats;
    let successes = if result.lost_successes > 0 || result.doubled_successes > 0 {
        format!(
            " (successes: {} lost, {} doubled)",
            result.lost_successes, result.doubled_successes
        )
    } else {
        String::new()
    };
    println!();
    println!(
        "chaos: {} models, {acknowledged} observations acknowledged ({} HTTP requests, {} kcat records), \
         {counted} counted: {} lost, {} doubled{successes}; {}",
        result.rows.len(),
        s.requests,
        s.kcat_records,
        result.lost,
        result.doubled,
        args.actions
    );
    println!(
        "       clients retried after {} x 503, {} timeouts, {} connection errors, {} kcat failures, \
         and re-sent {} acknowledged requests or chunks{}",
        s.status_503,
        s.timeouts,
        s.connection_errors,
        s.kcat_failures,
        s.resent,
        match &log {
            Ok(log) => log.summary(),
            Err(e) => format!("; (the log could not be read: {e})"),
        }
    );
    let mut failed = false;
    if !waited.caught_up {
        println!(
            "FAILED: the consumers did not catch up within {} s: lag per partition {:?}{}",
            args.timeout,
            waited.lag,
            waited
                .problem
                .map(|p| format!("; last problem: {p}"))
                .unwrap_or_default()
        );
        failed = true;
    }
    if !result.is_exact() {
        println!("FAILED: counted differs from acknowledged (see the rows marked above)");
        if let Ok(log) = &log {
            for line in log.where_it_went(&run.ids) {
                println!("        {line}");
            }
        }
        failed = true;
    }
    if s.unexpected > 0 {
        println!(
            "FAILED: {} answers were neither 202 nor 503: {:?}",
            s.unexpected, run.unexpected
        );
        failed = true;
    }
    if s.unacknowledged > 0 {
        println!(
            "FAILED: {} requests or kcat chunks were never acknowledged",
            s.unacknowledged
        );
        failed = true;
    }
    Ok(u8::from(failed))
}
