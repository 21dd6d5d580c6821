//! The application: builds the clients, binds the admin port, runs the
//! polling thread and the admin server until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::settings::Settings;
use platform::store::{self, StoreError};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::faults::{Checkpoint, FaultInjector};
use crate::kafka::DlqProducer;
use crate::pipeline::{Control, Pipeline, PipelineError};

/// How long the admin server may take to close its connections at shutdown.
const ADMIN_DRAIN: Duration = Duration::from_secs(5);

/// Which partitions the consumer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Join the consumer group and take what it assigns (production).
    Subscribe,
    /// Read these partitions of the topic without a group's coordination
    /// (operations and tests: two instances on one partition make a zombie).
    Manual(Vec<i32>),
}

/// Why the consumer could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[source] rdkafka::error::KafkaError),
    #[error("cannot bind the admin server to {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the polling thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the polling thread panicked")]
    Panicked,
    /// Stopped abruptly (the `run_until` future was dropped).
    #[error("aborted")]
    Aborted,
    #[error("cannot create the Kafka consumer: {0}")]
    KafkaConsumer(#[source] rdkafka::error::KafkaError),
    #[error("fatal Kafka error: {0}")]
    KafkaFatal(#[source] rdkafka::error::KafkaError),
    /// A [`FaultInjector`] asked for a crash at this checkpoint.
    #[error("crashed on purpose at {0:?}")]
    Crashed(Checkpoint),
}

impl ConsumerError {
    /// Failures worth retrying at start-up (the database is not up yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, ConsumerError::Store(err) if err.is_transient())
    }
}

impl From<PipelineError> for ConsumerError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Create(e) | PipelineError::Subscribe(e) => {
                ConsumerError::KafkaConsumer(e)
            }
            PipelineError::Fatal(e) => ConsumerError::KafkaFatal(e),
            PipelineError::Crashed(checkpoint) => ConsumerError::Crashed(checkpoint),
            PipelineError::Aborted => ConsumerError::Aborted,
        }
    }
}

/// A consumer ready to run: database migrated, admin port bound.
pub struct Consumer {
    settings: Settings,
    db: DatabaseConnection,
    producer: Arc<DlqProducer>,
    listener: TcpListener,
    assignment: Assignment,
    faults: Option<Arc<dyn FaultInjector>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.settings.consumer.group_id)
            .field("topic", &self.settings.kafka.topic)
            .field("admin", &self.listener.local_addr().ok())
            .field("assignment", &self.assignment)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects to Postgres and runs the migrations, creates the dead-letter
    /// producer, creates the topics when `kafka.create_topics` (giving up
    /// after a few seconds: a broker may lack that API), and binds the admin
    /// port (`admin_port = 0` picks a free one; see [`Consumer::admin_addr`]).
    pub async fn build(settings: Settings) -> Result<Self, ConsumerError> {
        let db = store::connect(&settings.database).await?;
        store::migrate(&db).await?;
        let producer: DlqProducer = crate::kafka::producer_config(&settings)
            .create_with_context(crate::kafka::QuietContext::default())
            .map_err(ConsumerError::Kafka)?;
        if settings.kafka.create_topics {
            platform::kafka::ensure_topics(&settings.kafka, crate::kafka::TOPIC_CREATION_TIMEOUT)
                .await;
        }
        let addr = format!(
            "{}:{}",
            settings.consumer.admin_host, settings.consumer.admin_port
        );
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ConsumerError::Bind { addr, source })?;
        crate::metrics::describe();
        Ok(Self {
            settings,
            db,
            producer: Arc::new(producer),
            listener,
            assignment: Assignment::Subscribe,
            faults: None,
        })
    }

    /// Reads the given partitions instead of joining the group.
    pub fn with_assignment(mut self, assignment: Assignment) -> Self {
        self.assignment = assignment;
        self
    }

    /// Calls `faults` at every checkpoint of every batch (tests).
    pub fn with_faults(mut self, faults: Arc<dyn FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The admin server's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Consumes until `shutdown` completes, then finishes the batch in hand,
    /// commits it and leaves the group. Returns early with an error when the
    /// polling thread stops by itself (an injected crash, a fatal Kafka
    /// error). Dropping the returned future stops the consumer abruptly, as
    /// a crash would: at its next step, writing nothing more.
    ///
    /// Needs a multi-threaded tokio runtime: the polling thread blocks on
    /// store calls through the runtime's handle.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ConsumerError> {
        let control = Arc::new(Control::new());
        // Abort the polling thread if this future is dropped half-way.
        let abort_guard = AbortOnDrop(Some(control.clone()));

        let admin_state = AdminState {
            db: self.db.clone(),
            producer: self.producer.clone(),
            topic: self.settings.kafka.topic.clone(),
            control: control.clone(),
            metrics: platform::telemetry::metrics_handle(),
        };
        let admin_control = control.clone();
        let admin = tokio::spawn(admin::serve(self.listener, admin_state, async move {
            admin_control.stopping().await
        }));
        let lag = tokio::spawn(crate::metrics::report_lag(
            self.producer.clone(),
            control.clone(),
            self.settings.kafka.topic.clone(),
            self.settings.consumer.lag_refresh,
        ));

        let pipeline = Pipeline {
            settings: self.settings,
            assignment: self.assignment,
            faults: self.faults,
            db: self.db,
            producer: self.producer,
            rt: tokio::runtime::Handle::current(),
            control: control.clone(),
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("consumer-poll".into())
            .spawn(move || {
                let result = pipeline.run();
                // The receiver is gone only if `run_until` was dropped.
                let _ = done_tx.send(result);
            })
            .map_err(ConsumerError::Thread)?;

        tokio::pin!(done_rx);
        let result = tokio::select! {
            () = shutdown => {
                tracing::info!("shutdown requested");
                control.request_stop();
                (&mut done_rx).await
            }
            // The thread ended by itself: a crash or a fatal error.
            result = &mut done_rx => result,
        };
        // The admin server ends on the stop request (no-op if already made);
        // an open connection may not hold the exit for long. The lag task may
        // sit in a broker request: it is cancelled.
        control.request_stop();
        lag.abort();
        if tokio::time::timeout(ADMIN_DRAIN, admin).await.is_err() {
            tracing::warn!("the admin server did not drain in time");
        }
        abort_guard.disarm();
        match result {
            Ok(Ok(())) => {
                tracing::info!("consumer stopped");
                Ok(())
            }
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(ConsumerError::Panicked),
        }
    }
}

/// Aborts the polling thread when dropped armed.
struct AbortOnDrop(Option<Arc<Control>>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(control) = &self.0 {
            control.abort();
        }
    }
}
