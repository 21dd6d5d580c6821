//! Building and running the service: connect and migrate, start listening
//! for model updates, bind the socket; then serve until told to stop.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use platform::settings::Settings;
use platform::store;
use tokio::net::TcpListener;

use crate::routes::router;
use crate::state::AppState;

/// A bound, ready-to-run model service.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    notifications: sea_orm::sqlx::postgres::PgListener,
}

impl Application {
    /// Connects to Postgres, runs the migrations, LISTENs on the notify
    /// channel and binds `model_service.host:port` (port 0: any free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = store::connect(&settings.database)
            .await
            .context("connecting to Postgres")?;
        store::migrate(&db).await.context("running migrations")?;
        let notifications = crate::events::connect(
            db.get_postgres_connection_pool(),
            &settings.database.notify_channel,
        )
        .await
        .context("listening for model updates")?;
        let address = format!(
            "{}:{}",
            settings.model_service.host, settings.model_service.port
        );
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let state = AppState::new(db, &settings);
        Ok(Self {
            listener,
            state,
            notifications,
        })
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
        let channel = state.notify_channel().to_owned();
        let forwarder = tokio::spawn(crate::events::forward(
            notifications,
            pool,
            channel,
            state.clone(),
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
            crate::routes::SERVICE,
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
