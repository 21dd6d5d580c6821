//! Building and running the service: connect and migrate, start listening
//! for model updates, bind the socket; then serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;

use std::time::Duration;

use anyhow::Context;
use platform::retry::Verdict;
use platform::settings::Settings;
use platform::startup::{wait_for_database, WaitError};
use platform::store::{self, StoreError};
use sea_orm::{DatabaseConnection, DbErr, RuntimeErr};
use tokio::net::TcpListener;

use crate::current::sync::Listener;
use crate::current::Current;
use crate::routes::router;
use crate::state::AppState;

/// The longest pause between two attempts to reach the database at start-up.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What a refused connection asks of the operator.
const REFUSED: &str = "fix the certificates or the login in database.url (see docs/operations.md)";

/// A bound, ready-to-run model service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    notifications: Listener,
}

impl Application {
    /// Connects to Postgres, runs the migrations, LISTENs on the notify
    /// channel, loads the current state into memory and binds `model_service.host:port` (port 0: any free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_until(settings, std::future::pending())
            .await?
            .context("stopped while starting")
    }

    /// [`Application::build`], binding the port first: while the database
    /// cannot be reached or refuses the connection, the port answers the
    /// probes (`/readyz` names the error) and the attempts go on until
    /// `stop` completes (then `None`). A failed migration ends the wait.
    pub async fn build_until(
        settings: Settings,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<Option<Self>> {
        let address = format!(
            "{}:{}",
            settings.model_service.host, settings.model_service.port
        );
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let (listener, opened) = wait_for_database(
            listener,
            crate::SERVICE,
            &settings.http,
            MAX_BACKOFF,
            stop,
            || open(&settings),
            |err: &StoreError| {
                if err.is_transient() {
                    Verdict::Transient
                } else if err.is_refused() {
                    Verdict::Stuck(REFUSED)
                } else {
                    Verdict::Permanent
                }
            },
        )
        .await;
        let listener = listener.context("keeping the port while waiting for the database")?;
        let (db, notifications, current) = match opened {
            Ok(opened) => opened,
            Err(WaitError::Stopped) => return Ok(None),
            Err(WaitError::GaveUp(err)) => {
                return Err(anyhow::Error::new(err).context("preparing the database"))
            }
        };
        let state = AppState::new(db, &settings, current);
        Ok(Some(Self {
            listener,
            state,
            notifications,
        }))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().map_or(0, |a| a.port())
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests publish events or inspect subscribers through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves (within the limits of `[http]`, see
    /// [`platform::http::serve`]), then ends the event streams, lets
    /// requests in flight finish and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            notifications,
        } = self;
        let pool = state.db().get_postgres_connection_pool().clone();
        let audit = Duration::from_secs(state.settings().audit_interval_seconds);
        let forwarder = tokio::spawn(crate::current::sync::run(
            notifications,
            pool,
            state.clone(),
            audit,
        ));
        let keys = state.auth().required.then(|| {
            tokio::spawn(platform::http::auth::keep_fresh(
                state.keys().clone(),
                state.db().clone(),
                state.auth().clone(),
                state.shutdown_signal(),
            ))
        });
        tracing::info!(address = %listener.local_addr()?, "model service listening");
        let stopping = state.clone();
        platform::http::serve(
            listener,
            router(state.clone()),
            state.http(),
            crate::SERVICE,
            async move {
                shutdown.await;
                tracing::info!("shutting down");
                // Streams never end by themselves: end them, or the
                // connections holding them would never close.
                stopping.begin_shutdown();
            },
        )
        .await;
        // The forwarder stops on the same signal; wait so the listener's
        // connection goes back cleanly.
        state.begin_shutdown();
        let _ = forwarder.await;
        if let Some(keys) = keys {
            // It writes the keys' last uses once more, then returns.
            let _ = keys.await;
        }
        state.db().clone().close().await.ok();
        Ok(())
    }
}

/// Connects, migrates, listens for changes and loads the current state:
/// what the service needs from the database before it serves.
async fn open(settings: &Settings) -> Result<(DatabaseConnection, Listener, Current), StoreError> {
    let db = store::connect(&settings.database).await?;
    store::migrate(&db).await?;
    let mut listener = Listener::connect(
        db.get_postgres_connection_pool(),
        &settings.database.notify_channel,
    )
    .await
    .map_err(|err| StoreError::from(DbErr::Conn(RuntimeErr::SqlxError(err))))?;
    let current = Current::new();
    listener.load(&db, &current).await?;
    Ok((db, listener, current))
}
