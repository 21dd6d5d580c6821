//! The producer's Postgres connection, which only uploads use: `POST
//! /observations` never touches it, so observations keep flowing while the
//! database is down. At start-up the producer connects, runs the migrations
//! (as the other services do) and marks the uploads a previous run left
//! half-produced as interrupted; when that fails it tries again in the
//! background, and uploads answer 503 until it succeeds, with the last
//! error, while the gauge `database_waiting{service="producer"}` is 1 (the
//! producer's `/readyz` is the broker's alone: observations do not wait).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use platform::retry::Backoff;
use platform::settings::DatabaseSettings;
use platform::startup::WAITING_GAUGE;
use platform::store::{self, StoreError};
use sea_orm::DatabaseConnection;

/// The reason an upload left `producing` by a stopped producer is given.
pub const INTERRUPTED: &str = "interrupted: re-send the file to resume";

/// The connection, once the database answered and is migrated.
#[derive(Debug, Clone, Default)]
pub struct Database {
    connection: Arc<OnceLock<DatabaseConnection>>,
    /// Woken once the connection is set, for [`Database::connected`].
    opened: Arc<tokio::sync::Notify>,
    /// Why the last attempt to connect failed, for the 503s meanwhile.
    last_error: Arc<Mutex<String>>,
}

impl Database {
    /// Connects now if it can, else keeps trying in the background.
    pub async fn open(settings: &DatabaseSettings) -> Self {
        let database = Self::default();
        match open_once(settings).await {
            Ok(connection) => {
                let _ = database.connection.set(connection);
            }

            Err(error) => {
                tracing::error!(%error, "the database is unavailable: uploads answer 503 until it answers");
                database.remember(&error);
                // The recorder first, or the gauge's value goes nowhere.
                platform::telemetry::metrics_handle();
                metrics::gauge!(WAITING_GAUGE, "service" => "producer").set(1.0);
                let settings = settings.clone();
                let slot = database.connection.clone();
                let opened = database.opened.clone();
                let waiting = database.clone();
                tokio::spawn(async move {
                    let mut backoff =
                        Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
                    loop {
                        tokio::time::sleep(backoff.next_delay()).await;
                        match open_once(&settings).await {
                            Ok(connection) => {
                                tracing::info!("the database answers: uploads are open");
                                let _ = slot.set(connection);
                                opened.notify_waiters();
                                metrics::gauge!(WAITING_GAUGE, "service" => "producer").set(0.0);
                                return;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "the database is still unavailable");
                                waiting.remember(&error);
                            }
                        }
                    }
                });
            }
        }
        database
    }

    /// The connection, once the database has answered (now, or later).
    pub async fn connected(&self) -> DatabaseConnection {
        loop {
            // Registered before the check, so a set in between still wakes it.
            let opened = self.opened.notified();
            if let Some(connection) = self.get() {
                return connection.clone();
            }
            opened.await;
        }
    }

    /// The connection, or `None` while the database has not answered yet.
    pub fn get(&self) -> Option<&DatabaseConnection> {
        self.connection.get()
    }

    /// Why there is no connection yet: the last attempt's error (a refused
    /// certificate, a database that is down).
    pub fn not_connected(&self) -> String {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        format!("not connected yet: {last}")
    }

    fn remember(&self, error: &StoreError) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error.to_string();
    }
}

async fn open_once(settings: &DatabaseSettings) -> Result<DatabaseConnection, StoreError> {
    let connection = store::connect(settings).await?;
    store::migrate(&connection).await?;
    let interrupted = store::fail_interrupted_uploads(&connection, INTERRUPTED).await?;
    if interrupted > 0 {
        tracing::warn!(
            uploads = interrupted,
            "uploads left half-produced by the last run are marked failed; re-send them to resume"
        );
    }
    Ok(connection)
}
