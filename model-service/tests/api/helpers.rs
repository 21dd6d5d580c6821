//! `spawn_app()`: a model service on a free port over its own fresh database,
//! and the helpers tests use to fill that database the way the consumer does.

use std::time::Duration;

use domain::bayes::Counts;
use domain::{ModelId, Prior};
use model_service::{AppState, Application};
use platform::settings::Settings;
use platform::store::{self, apply_batch, BatchWrite, ModelConfig, ModelDelta};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use test_support::database::TestDatabase;
use tokio::sync::{oneshot, Mutex};

/// A running service and what a test needs to drive it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub settings: Settings,
    /// A connection of the test's own to the service's database.
    pub db: DatabaseConnection,
    pub test_db: TestDatabase,
    pub state: AppState,
    pub client: reqwest::Client,
    /// The consumer's next offset on the test partition, as `apply_batch` expects it.
    next_offset: Mutex<Option<i64>>,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `configure` first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    test_support::init_tracing();
    let (test_db, db) = TestDatabase::create().await.expect("test database");
    let mut settings = Settings::default();
    settings.database = test_db.settings.clone();
    settings.model_service.host = "127.0.0.1".into();
    settings.model_service.port = 0;
    configure(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let port = app.port();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        settings,
        db,
        test_db,
        state,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client"),
        next_offset: Mutex::new(None),
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET, asserting the status, and the body as JSON.
    pub async fn get_json(&self, path: &str, status: u16) -> Value {
        let response = self.get(path).await;
        let got = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_eq!(got, status, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// GET, asserting an error status and code; returns the message.
    pub async fn get_error(&self, path: &str, status: u16, code: &str) -> String {
        let body = self.get_json(path, status).await;
        assert_eq!(body["error"]["code"], code, "GET {path}: {body}");
        body["error"]["message"]
            .as_str()
            .expect("message")
            .to_owned()
    }

    /// [`TestApp::get_error`] for each (path, status, code) of a table.
    pub async fn get_errors(&self, cases: &[(&str, u16, &str)]) {
        for (path, status, code) in cases {
            self.get_error(path, *status, code).await;
        }
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Commits one batch through the store's own `apply_batch`, exactly as
    /// the consumer does (offsets, history row, NOTIFY).
    pub async fn publish(&self, model: &str, successes: u64, failures: u64) {
        self.publish_many(&[(model, successes, failures)]).await;
    }

    pub async fn publish_many(&self, deltas: &[(&str, u64, u64)]) {
        self.commit(deltas, &self.settings.database.notify_channel)
            .await;
        self.caught_up().await;
    }

    /// Commits one batch as the consumer does, notifying `channel`, and
    /// returns at once: the service may not have applied it yet.
    pub async fn commit(&self, deltas: &[(&str, u64, u64)], channel: &str) {
        self.write_batch(&self.db, deltas, channel).await;
    }

    /// Writes one batch as the consumer does over `db` (a transaction the
    /// caller commits, or the pool).
    pub async fn write_batch(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        deltas: &[(&str, u64, u64)],
        channel: &str,
    ) {
        let mut offset = self.next_offset.lock().await;
        let start = offset.unwrap_or(0);
        let deltas: Vec<ModelDelta> = deltas
            .iter()
            .enumerate()
            .map(|(i, (model, s, f))| ModelDelta {
                model: ModelId::parse(*model).expect("model id"),
                counts: Counts::new(*s, *f),
                last_offset: start + i as i64,
            })
            .collect();
        let next = start + deltas.len().max(1) as i64;
        let batch = BatchWrite {
            group_id: "test-group",
            topic: "observations",
            partition: 0,
            expected_next_offset: *offset,
            next_offset: next,
            deltas: &deltas,
            identified: &[],
        };
        apply_batch(db, &batch, &self.settings.models, channel)
            .await
            .expect("apply_batch");
        *offset = Some(next);
    }

    /// Waits until the service has applied every commit made so far (its
    /// memory and live feed), as a client that saw the event would.
    pub async fn caught_up(&self) {
        self.state
            .caught_up()
            .await
            .expect("the service catches up");
    }

    /// Creates or reconfigures a model through the store, as `PUT` does.
    pub async fn configure(&self, model: &str, prior: Prior, grid_size: Option<u32>) {
        store::configure_model(
            &self.db,
            &ModelId::parse(model).expect("model id"),
            &ModelConfig {
                prior: Some(prior),
                grid_size: grid_size.map(|g| domain::bayes::GridSize::parse(g).expect("grid")),
            },
            &self.settings.models,
            store::ChangeLimit {
                per_hour: self.settings.model_service.max_config_changes_per_hour,
            },
            &self.settings.database.notify_channel,
        )
        .await
        .expect("configure_model");
        self.caught_up().await;
    }

    /// Stops the server gracefully and waits for it, failing after `deadline`.
    pub async fn stop(mut self, deadline: Duration) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let server = self.server.take().expect("server running");
        tokio::time::timeout(deadline, server)
            .await
            .map_err(|_| anyhow::anyhow!("the server did not stop within {deadline:?}"))??
    }
}

pub use test_support::eventually_within as eventually;

/// Decodes a PNG: (width, height, RGB(A) pixels).
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a valid PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("a valid PNG image");
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// The `width` and `height` attributes of an SVG document's root element,
/// after checking that the document is one `<svg>` element, closed.
pub fn svg_size(text: &str) -> (u32, u32) {
    let text = text.trim();
    let start = text.find("<svg").expect("an <svg> element");
    assert!(text.ends_with("</svg>"), "the document ends with </svg>");
    let tag_end = text[start..].find('>').expect("a complete <svg> tag") + start;
    let tag = &text[start..tag_end];
    let attribute = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let at = tag.find(&key).unwrap_or_else(|| panic!("{name} in {tag}")) + key.len();
        let end = tag[at..].find('"').expect("closing quote") + at;
        tag[at..end].parse().expect("a number")
    };
    (attribute("width"), attribute("height"))
}
