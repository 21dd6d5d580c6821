//! The application: builds the clients, binds the admin port, runs the
//! polling thread (through [`crate::bridge`]), the lag reporter and the
//! admin server until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform::kafka_health::ClientHealth;
use platform::settings::Settings;
use platform::store;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::assignment::Assignment;
use crate::bridge::{spawn_thread, Bridge};
use crate::control::Control;
use crate::error::ConsumerError;
use crate::faults::FaultInjector;
use crate::kafka::{producer_config, DlqProducer, QuietContext, TOPIC_CREATION_TIMEOUT};
use crate::membership::{self, InstanceId};
use crate::pipeline::{Pipeline, PipelineError};

/// How long the admin server may take to close its connections at shutdown.
const ADMIN_DRAIN: Duration = Duration::from_secs(5);

/// A consumer ready to run: database migrated, admin port bound.
pub struct Consumer {
    settings: Settings,
    db: DatabaseConnection,
    producer: Arc<DlqProducer>,
    /// Refused credentials and failed TLS handshakes of every Kafka client.
    kafka_health: Arc<ClientHealth>,
    listener: TcpListener,
    instance: Option<InstanceId>,
    assignment: Assignment,
    faults: Option<Arc<dyn FaultInjector>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.settings.consumer.group_id)
            .field("topic", &self.settings.kafka.topic)
            .field("admin", &self.listener.local_addr().ok())
            .field("instance", &self.instance)
            .field("assignment", &self.assignment)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

/// The tasks that run beside the polling thread, stopped with it.
struct SideTasks {
    admin: JoinHandle<()>,
    lag: JoinHandle<()>,
    dedup: JoinHandle<()>,
}

impl Consumer {
    /// Connects to Postgres and runs the migrations, refuses a database whose
    /// state another group or topic built ([`ConsumerError::ForeignState`]),
    /// creates the dead-letter
    /// producer, creates the topics when `kafka.create_topics` (giving up
    /// after a few seconds: a broker may lack that API), and binds the admin
    /// port (`admin_port = 0` picks a free one; see [`Consumer::admin_addr`]).
    pub async fn build(settings: Settings) -> Result<Self, ConsumerError> {
        let db = Self::open_database(&settings).await?;
        let listener = Self::bind_admin(&settings).await?;
        Self::assemble(settings, db, listener).await
    }

    /// What the consumer needs of the database before anything else: a
    /// pool, the migrations run, and the claim on its state
    /// ([`ConsumerError::ForeignState`] when another group or topic built it).
    pub(crate) async fn open_database(
        settings: &Settings,
    ) -> Result<DatabaseConnection, ConsumerError> {
        let db = store::connect(&settings.database).await?;
        store::migrate(&db).await?;
        let (group, topic) = (&settings.consumer.group_id, &settings.kafka.topic);
        if let Err(stored) = store::claim_source(&db, group, topic).await? {
            return Err(ConsumerError::ForeignState {
                stored_group: stored.group_id,
                stored_topic: stored.topic,
                group: group.clone(),
                topic: topic.clone(),
            });
        }
        Ok(db)
    }

    /// Binds `consumer.admin_host:admin_port`.
    pub(crate) async fn bind_admin(settings: &Settings) -> Result<TcpListener, ConsumerError> {
        let addr = format!(
            "{}:{}",
            settings.consumer.admin_host, settings.consumer.admin_port
        );
        TcpListener::bind(&addr)
            .await
            .map_err(|source| ConsumerError::Bind { addr, source })
    }

    /// The rest, once the database is ready: group membership, the
    /// dead-letter producer, the topics.
    pub(crate) async fn assemble(
        settings: Settings,
        db: DatabaseConnection,
        listener: TcpListener,
    ) -> Result<Self, ConsumerError> {
        let instance = membership::resolve(
            &settings.consumer.instance_id,
            settings.consumer.admin_port,
            membership::hostname,
        )?;
        match &instance {
            Some(id) => tracing::info!(instance_id = id.as_str(), "static group membership"),
            None => tracing::info!("dynamic group membership (no group.instance.id)"),
        }
        let kafka_health = Arc::new(ClientHealth::default());
        let context_health = kafka_health.clone();
        let producer: DlqProducer =
            DlqProducer::new("dlq", producer_config(&settings), move || {
                QuietContext::new(context_health.clone())
            })
            .map_err(ConsumerError::Kafka)?;
        if settings.kafka.create_topics {
            platform::kafka::ensure_topics(&settings.kafka, TOPIC_CREATION_TIMEOUT).await;
        }
        crate::metrics::describe();
        Ok(Self {
            settings,
            db,
            producer: Arc::new(producer),
            kafka_health,
            listener,
            instance,
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
        let control = Arc::new(Control::new(self.settings.kafka.topic.clone()));
        // Abort the polling thread if this future is dropped half-way.
        let abort_guard = AbortOnDrop(Some(control.clone()));
        let Consumer {
            settings,
            db,
            producer,
            kafka_health,
            listener,
            instance,
            assignment,
            faults,
        } = self;
        let side_tasks =
            SideTasks::start(listener, &settings, &db, &producer, &kafka_health, &control);
        let pipeline = Pipeline {
            settings,
            instance,
            assignment,
            faults,
            db,
            producer,
            bridge: Bridge::new(tokio::runtime::Handle::current(), control.clone()),
            kafka_health,
        };
        let done =
            spawn_thread("consumer-poll", move || pipeline.run()).map_err(ConsumerError::Thread)?;
        let result = wait_for_end(done, shutdown, &control).await;
        side_tasks.stop(&control).await;
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

impl SideTasks {
    /// The admin server, the lag reporter and the purge of old observation
    /// ids; all end on a stop request.
    fn start(
        listener: TcpListener,
        settings: &Settings,
        db: &DatabaseConnection,
        producer: &Arc<DlqProducer>,
        kafka_health: &Arc<ClientHealth>,
        control: &Arc<Control>,
    ) -> Self {
        let admin_state = AdminState {
            db: db.clone(),
            producer: producer.clone(),
            kafka_health: kafka_health.clone(),
            topic: settings.kafka.topic.clone(),
            control: control.clone(),
            metrics: platform::telemetry::metrics_handle(),
        };
        let admin_control = control.clone();
        let admin = tokio::spawn(admin::serve(
            listener,
            admin_state,
            settings.http.clone(),
            async move { admin_control.stopping().await },
        ));
        let lag = tokio::spawn(crate::metrics::report_lag(
            producer.clone(),
            control.clone(),
            settings.kafka.topic.clone(),
            settings.consumer.lag_refresh,
            settings.consumer.stall_timeout,
        ));
        let dedup_control = control.clone();
        let dedup = tokio::spawn(crate::dedup::forget_old_ids(
            db.clone(),
            dedup_control,
            settings.consumer.dedup_retention,
        ));
        Self { admin, lag, dedup }
    }

    /// The admin server ends on the stop request (no-op if already made);
    /// an open connection may not hold the exit for long. The lag task may
    /// sit in a broker request: it is cancelled.
    async fn stop(self, control: &Control) {
        control.request_stop();
        self.lag.abort();
        self.dedup.abort();
        if tokio::time::timeout(ADMIN_DRAIN, self.admin).await.is_err() {
            tracing::warn!("the admin server did not drain in time");
        }
    }
}

/// Waits until the polling thread ends: on its own (a crash or a fatal
/// error), or after `shutdown` asked it to stop. `Err` if it panicked.
async fn wait_for_end(
    mut done: oneshot::Receiver<Result<(), PipelineError>>,
    shutdown: impl Future<Output = ()>,
    control: &Control,
) -> Result<Result<(), PipelineError>, oneshot::error::RecvError> {
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutdown requested");
            control.request_stop();
            (&mut done).await
        }
        // The thread ended by itself: a crash or a fatal error.
        result = &mut done => result,
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
