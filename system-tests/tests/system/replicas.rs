//! The model service's promises across processes, whatever serves its reads
//! (Postgres on every request, or memory kept fresh by LISTEN/NOTIFY): a
//! unit's arm is fixed once answered, through SIGKILL, restarts and weight
//! changes, and two replicas on one database agree on every unit's arm (one
//! of them stores it, once), on the figures at a version, on a prior changed
//! on the other, and both feed `/events`. The services are the workspace's
//! `model-service` binary, started as an operator would; data is committed
//! with the consumer's own `apply_batch`, which NOTIFYs as the consumer does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use domain::bayes::Counts;
use domain::ModelId;
use platform::settings::Settings;
use platform::store::{self, BatchWrite, ModelDelta};
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};
use serde_json::{json, Value};
use test_support::database::TestDatabase;
use test_support::service_process::spawn_service;
use test_support::{eventually, eventually_within, kafka_process::free_ports, unique, DEADLINE};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Requests in flight at once: enough to race, few enough for the descriptors.
const CONCURRENCY: usize = 64;

/// The workspace's `model-service` binary, beside the directory of this test
/// binary (`target/debug/deps/`), as `cargo test --workspace --no-run` builds it.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap();
    let path = path.join("model-service");
    let hint = "build the workspace first: cargo test --workspace --no-run";
    assert!(path.is_file(), "{} is missing: {hint}", path.display());
    path
}

/// One database for the replicas, and the test's own connection to it.
struct Shared {
    settings: Settings,
    db: DatabaseConnection,
    /// The next offset of the test's partition, as `apply_batch` expects it.
    offset: Option<i64>,
}

impl Shared {
    async fn create() -> Self {
        let (test_db, db) = TestDatabase::create().await.unwrap();
        let mut settings = Settings::default();
        settings.database = test_db.settings;
        Self {
            settings,
            db,
            offset: None,
        }
    }

    /// Commits (model, successes, failures) as one batch, as the consumer does.
    async fn commit(&mut self, deltas: &[(&str, u64, u64)]) {
        let start = self.offset.unwrap_or(0);
        let deltas: Vec<ModelDelta> = (0..)
            .zip(deltas)
            .map(|(i, (model, s, f))| ModelDelta {
                model: ModelId::parse(*model).unwrap(),
                counts: Counts::new(*s, *f),
                last_offset: start + i,
            })
            .collect();
        let next = start + deltas.len() as i64;
        let batch = BatchWrite {
            group_id: "replicas",
            topic: "observations",
            partition: 0,
            expected_next_offset: self.offset,
            next_offset: next,
            deltas: &deltas,
            identified: &[],
        };
        let channel = &self.settings.database.notify_channel;
        store::apply_batch(&self.db, &batch, &self.settings.models, channel)
            .await
            .unwrap();
        self.offset = Some(next);
    }

    /// The stored assignments of `experiment`: unit to arm.
    async fn stored(&self, experiment: &str) -> BTreeMap<String, String> {
        let sql = "SELECT unit, arm FROM experiment_assignments WHERE experiment_id = $1";
        let backend = self.db.get_database_backend();
        let statement = Statement::from_sql_and_values(backend, sql, [experiment.into()]);
        let rows = self.db.query_all(statement).await.unwrap();
        let row = |r: &QueryResult| (r.try_get("", "unit"), r.try_get("", "arm"));
        rows.iter()
            .map(|r| (row(r).0.unwrap(), row(r).1.unwrap()))
            .collect()
    }
}

/// A replica's HTTP API: cheap to clone into the tasks that race it.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with `body` (if any): the status and the body as JSON
    /// (null when it is none).
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// GET `path` as JSON, failing the test unless it answers 200.
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn put(&self, path: &str, body: Value) -> u16 {
        self.send("PUT", path, Some(body)).await.0
    }

    /// `POST /experiments/{experiment}/assignments`: (arm, new), after
    /// checking that the status says what `new` says (201 new, 200 not).
    async fn assign(&self, experiment: &str, unit: &str) -> (String, bool) {
        let path = format!("/experiments/{experiment}/assignments");
        let (status, body) = self
            .send("POST", &path, Some(json!({ "unit": unit })))
            .await;
        let new = body["new"] == true;
        let want = if new { 201 } else { 200 };
        assert_eq!((status, &body["unit"]), (want, &json!(unit)), "{body}");
        (body["arm"].as_str().unwrap().to_owned(), new)
    }
}

/// A `model-service` process over the shared database, on a port of its own.
struct Replica {
    child: Child,
    log: PathBuf,
    api: Api,
}

impl Replica {
    /// Starts one and waits until it is ready (`/readyz`: the database answers).
    async fn start(shared: &Shared) -> Self {
        let port = free_ports(1)[0];
        let log = std::env::temp_dir().join(format!("{}.log", unique("replica")));
        let env = [("BAYES__MODEL_SERVICE__PORT", port.to_string())];
        let child = spawn_service(binary().to_str().unwrap(), &shared.settings, &env, &log);
        let http = reqwest::Client::builder().timeout(DEADLINE).build();
        let base = format!("http://127.0.0.1:{port}");
        let api = Api {
            base,
            http: http.unwrap(),
        };
        let mut replica = Self { child, log, api };
        let url = replica.api.url("/readyz");
        eventually("the replica is ready", async || {
            if let Ok(Some(exit)) = replica.child.try_wait() {
                panic!("the replica exited ({exit}): {}", replica.log_text());
            }
            let response = replica.api.http.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        replica
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: nothing flushed, nothing handed over.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as an operator's stop; it must exit by itself, with success.
    async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = eventually("the replica exits after SIGTERM", async || {
            self.child.try_wait().unwrap()
        })
        .await;
        assert!(status.success(), "{status}: {}", self.log_text());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `prefix-0` ... `prefix-{n-1}`.
fn units_of(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Asks every replica of `apis` for each of `units` at once (so each unit
/// races itself when there are two), CONCURRENCY units at a time; answers
/// per unit each replica's (arm, new), in the order of `apis`.
async fn assign_all(
    apis: &[&Api],
    experiment: &str,
    units: &[String],
) -> BTreeMap<String, Vec<(String, bool)>> {
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for unit in units {
        let apis: Vec<Api> = apis.iter().map(|a| (*a).clone()).collect();
        let gate = gate.clone();
        let (experiment, unit) = (experiment.to_owned(), unit.clone());
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            // Every replica's request in flight together, not one after the other.
            let mut asks = JoinSet::new();
            for (i, api) in apis.into_iter().enumerate() {
                let (experiment, unit) = (experiment.clone(), unit.clone());
                asks.spawn(async move { (i, api.assign(&experiment, &unit).await) });
            }
            let mut answers = asks.join_all().await;
            answers.sort_by_key(|(i, _)| *i);
            (unit, answers.into_iter().map(|(_, a)| a).collect())
        });
    }
    tasks.join_all().await.into_iter().collect()
}

/// The one replica's answers of [`assign_all`], each checked to be `new`
/// or not: unit to arm.
fn arms(answers: BTreeMap<String, Vec<(String, bool)>>, new: bool) -> BTreeMap<String, String> {
    answers
        .into_iter()
        .map(|(unit, mut answers)| {
            let (arm, got) = answers.remove(0);
            assert_eq!(got, new, "{unit} on {arm}: new should be {new}");
            (unit, arm)
        })
        .collect()
}

/// `PUT /experiments/{id}` of `arms` with a bandit on `on`, then waits until
/// every replica of `all` serves it.
async fn define(on: &Api, all: &[&Api], id: &str, arms: &[&str]) {
    let body = json!({"arms": arms, "bandit": {"min_trials": 100, "floor": 0.01}});
    assert_eq!(on.put(&format!("/experiments/{id}"), body).await, 201);
    for api in all {
        eventually("every replica serves the new experiment", async || {
            let (status, _) = api.send("GET", &format!("/experiments/{id}"), None).await;
            (status == 200).then_some(())
        })
        .await;
    }
}

const STICKY: [&str; 3] = ["sticky-a", "sticky-b", "sticky-c"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_units_arm_survives_sigkill_restarts_and_a_change_of_weights() {
    let _machine = system_tests::share_the_machine().await;
    let mut shared = Shared::create().await;
    let replica = Replica::start(&shared).await;
    define(&replica.api, &[], "sticky", &STICKY).await;
    let before = replica.api.get("/experiments/sticky/weights").await;
    let units = units_of("unit", 300);
    let first = arms(assign_all(&[&replica.api], "sticky", &units).await, true);
    // At once after the last answer: what was answered must be committed.
    replica.kill();
    assert_eq!(shared.stored("sticky").await, first, "stored vs answered");
    // Equal weights spread them; the arms the data below starves must hold
    // many, or keeping them there would prove nothing.
    for arm in STICKY {
        let n = first.values().filter(|a| *a == arm).count();
        assert!(n >= 60, "{n} of 300 units on {arm}");
    }

    let replica = Replica::start(&shared).await;
    let again = async |api: &Api, when: &str| {
        let answers = arms(assign_all(&[api], "sticky", &units).await, false);
        let moved: Vec<_> = first.iter().filter(|(u, a)| answers[*u] != **a).collect();
        assert!(moved.is_empty(), "{when}: {} moved: {moved:?}", moved.len());
    };
    again(&replica.api, "after SIGKILL").await;

    shared
        .commit(&[
            ("sticky-a", 900, 100),
            ("sticky-b", 100, 900),
            ("sticky-c", 100, 900),
        ])
        .await;
    let after = eventually("the weights follow the data", async || {
        let weights = replica.api.get("/experiments/sticky/weights").await;
        let trials = weights["arms"].as_array().unwrap().iter();
        trials
            .map(|a| &a["trials"])
            .all(|t| t == 1000)
            .then_some(weights)
    })
    .await;
    let first_weight = |w: &Value| w["arms"][0]["weight"].as_f64().unwrap();
    assert_eq!(
        (&before["burn_in"], &after["burn_in"]),
        (&json!(true), &json!(false))
    );
    assert!(
        first_weight(&before) < 0.34 && first_weight(&after) > 0.97,
        "the weights did not move: {before} then {after}"
    );
    again(&replica.api, "after the weights changed").await;
    replica.terminate().await;
    let replica = Replica::start(&shared).await;
    again(&replica.api, "after SIGTERM and a restart").await;

    // New units follow the new weights: 294 of 300 on average, sd 2.4.
    let fresh = assign_all(&[&replica.api], "sticky", &units_of("new", 300)).await;
    let on_first = arms(fresh, true)
        .values()
        .filter(|a| *a == STICKY[0])
        .count();
    assert!(
        on_first >= 270,
        "{on_first} of 300 new units on the first arm"
    );
}

/// Polls `path` on A, then on B, until each answers a body that is `ready`;
/// the two bodies.
async fn both(a: &Replica, b: &Replica, path: &str, ready: impl Fn(&Value) -> bool) -> [Value; 2] {
    let mut bodies = Vec::new();
    for (api, name) in [(&a.api, "A"), (&b.api, "B")] {
        let what = format!("{name} serves {path} as awaited");
        bodies.push(eventually(&what, async || Some(api.get(path).await).filter(&ready)).await);
    }
    [bodies.remove(0), bodies.remove(0)]
}

/// Two replicas on one fresh database, and that database.
async fn two_replicas() -> (Shared, Replica, Replica) {
    let shared = Shared::create().await;
    let a = Replica::start(&shared).await;
    let b = Replica::start(&shared).await;
    (shared, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_asked_for_a_unit_at_once_give_it_one_arm_and_store_it_once() {
    let _machine = system_tests::share_the_machine().await;
    let (shared, a, b) = two_replicas().await;
    let arms = ["agree-a", "agree-b", "agree-c"];
    define(&a.api, &[&b.api], "agree", &arms).await;
    let units = units_of("unit", 400);
    let answers = assign_all(&[&a.api, &b.api], "agree", &units).await;
    let mut agreed = BTreeMap::new();
    for (unit, answers) in answers {
        let [(arm_a, new_a), (arm_b, new_b)] = <[_; 2]>::try_from(answers).unwrap();
        assert_eq!(arm_a, arm_b, "{unit}: the replicas disagree");
        assert!(new_a != new_b, "{unit}: new on A {new_a}, on B {new_b}");
        agreed.insert(unit, arm_a);
    }
    // One row a unit (the key says so), holding the arm both answered.
    assert_eq!(shared.stored("agree").await, agreed, "stored vs answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_answer_the_same_figures_once_they_show_the_same_version() {
    let _machine = system_tests::share_the_machine().await;
    let (mut shared, a, b) = two_replicas().await;
    define(&a.api, &[&b.api], "figures", &["fig-a", "fig-b", "fig-c"]).await;
    let units = assign_all(&[&a.api], "figures", &units_of("u", 30)).await;
    arms(units, true);
    shared.commit(&[("fig-a", 30, 70), ("fig-b", 45, 55)]).await;
    shared.commit(&[("fig-c", 20, 80), ("fig-a", 5, 5)]).await;
    for (model, version) in [("fig-a", 2), ("fig-b", 1), ("fig-c", 1)] {
        let path = format!("/models/{model}/posterior");
        let [on_a, on_b] = both(&a, &b, &path, |body| body["version"] == version).await;
        assert_eq!(on_a, on_b, "{path}");
    }
    // The experiment, once each counts every trial and every stored unit.
    let stored = shared.stored("figures").await;
    let on = |arm| stored.values().filter(|a| *a == arm).count();
    let want = json!([[110, on("fig-a")], [100, on("fig-b")], [100, on("fig-c")]]);
    let counted = |body: &Value| -> Value {
        let results = body["results"].as_array().unwrap().iter();
        results
            .map(|r| json!([r["trials"], r["assignments"]]))
            .collect()
    };
    let path = "/experiments/figures";
    let [on_a, on_b] = both(&a, &b, path, |body| counted(body) == want).await;
    assert_eq!(on_a["version"], on_b["version"]);
    assert_eq!(on_a, on_b, "{path}");
    let version = on_a["version"].as_u64().unwrap();
    for v in [version, version - 1] {
        let path = format!("/experiments/figures?version={v}");
        assert_eq!(a.api.get(&path).await, b.api.get(&path).await, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prior_changed_on_one_replica_is_served_by_the_other_within_ten_seconds() {
    let _machine = system_tests::share_the_machine().await;
    let (_shared, a, b) = two_replicas().await;
    let path = "/models/shared-prior";
    assert_eq!(a.api.put(path, json!({})).await, 201);
    let before = eventually("B serves the new model", async || {
        let (status, body) = b.api.send("GET", path, None).await;
        (status == 200).then_some(body)
    })
    .await;
    let prior = json!({"type": "beta", "a": 2, "b": 5});
    assert_eq!(a.api.put(path, json!({ "prior": prior })).await, 200);
    let on_a = a.api.get(path).await;
    assert_ne!(before["prior"], on_a["prior"]);
    assert_eq!(on_a["prior"]["type"], "beta", "{on_a}");
    let what = "B serves the prior set on A";
    eventually_within(Duration::from_secs(10), what, async || {
        (b.api.get(path).await == on_a).then_some(())
    })
    .await;
    let path = format!("{path}/posterior");
    assert_eq!(a.api.get(&path).await, b.api.get(&path).await, "{path}");
}

/// An open `GET /events` stream and the text read from it so far.
struct Events {
    response: reqwest::Response,
    seen: String,
}

impl Events {
    /// Opens the stream and waits for its `ready` event.
    async fn open(api: &Api) -> Self {
        // A client without the API's time-out, which would cut the stream
        // (its body never ends) before the wait says what it waited for.
        let response = reqwest::get(api.url("/events")).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut events = Self {
            response,
            seen: String::new(),
        };
        events
            .read_until("the stream is ready", |seen| seen.contains("event: ready"))
            .await;
        events
    }

    /// Reads until `done` holds of what was read, failing after [`DEADLINE`].
    async fn read_until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        eventually(what, async || {
            // A bounded read, so that the deadline is checked between chunks.
            let chunk = tokio::time::timeout(Duration::from_millis(200), self.response.chunk());
            if let Ok(chunk) = chunk.await {
                let chunk = chunk.unwrap_or_else(|e| panic!("{e}: {}", self.seen));
                let chunk = chunk.unwrap_or_else(|| panic!("ended: {}", self.seen));
                self.seen.push_str(&String::from_utf8_lossy(&chunk));
            }
            done(&self.seen).then_some(())
        })
        .await;
    }
}

/// Whether `seen` holds a complete `update` event naming `model`.
fn names(seen: &str, model: &str) -> bool {
    seen.split("\n\n")
        .filter(|e| e.contains("event: update"))
        .any(|event| {
            let data = event.lines().find_map(|l| l.strip_prefix("data: "));
            let update: Option<Value> = data.and_then(|d| serde_json::from_str(d).ok());
            update.is_some_and(|u| {
                u["models"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!(model)))
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_reaches_the_event_streams_of_both_replicas() {
    let _machine = system_tests::share_the_machine().await;
    let (mut shared, a, b) = two_replicas().await;
    let mut streams = [Events::open(&a.api).await, Events::open(&b.api).await];
    shared.commit(&[("live", 3, 1)]).await;
    for (events, replica) in streams.iter_mut().zip(["A", "B"]) {
        let what = format!("{replica}'s stream names the committed model");
        events.read_until(&what, |seen| names(seen, "live")).await;
    }
}
