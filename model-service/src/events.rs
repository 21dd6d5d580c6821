//! The live feed: Postgres `LISTEN` on the consumer's notify channel, fanned
//! out to every `/events` stream (server-sent events).
//!
//! The consumer (and `PUT /models/{id}`) NOTIFY the channel with the
//! comma-separated ids of the models a commit changed, or `*` for "many".
//! Notifications are not queued while nobody listens, so whenever the
//! listening connection was lost, subscribers are told that everything may
//! have changed (`all: true`) once it is back.

use std::future::Future;
use std::time::Duration;

use platform::retry::{retry, Backoff, Verdict};
use sea_orm::sqlx::postgres::{PgListener, PgPool};

use crate::state::AppState;
use crate::views::ModelEvent;

/// The first pause before listening again; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts listening on `channel`. Returns once the first `LISTEN` succeeded,
/// so a notification sent after this returns reaches the subscribers.
pub async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Forwards notifications to the state's subscribers until shutdown,
/// reconnecting with a bounded back-off whenever the connection fails.
pub async fn forward(mut listener: PgListener, pool: PgPool, channel: String, state: AppState) {
    let shutdown = state.shutdown_signal();
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
    loop {
        let Some(err) = pump(&mut listener, &state, &mut shutdown, &mut backoff).await else {
            return;
        };
        tracing::warn!(error = %err, retry_in = ?backoff.peek(), "lost the notification listener");
        // Listen again on a fresh connection, after a pause: a connection
        // that fails as soon as it is made must not spin.
        if !backoff.sleep(&mut shutdown).await {
            return;
        }
        let reconnected = retry(
            &mut backoff,
            "cannot listen for model updates yet",
            &mut shutdown,
            || connect(&pool, &channel),
            |_| Verdict::Transient,
            || {},
        )
        .await;
        let Ok(reconnected) = reconnected else { return };
        tracing::info!(channel = %channel, "listening for model updates again");
        state.publish(ModelEvent::everything());
        listener = reconnected;
    }
}

/// Publishes notifications until the connection fails (its error) or
/// shutdown (`None`). Each notification resets `backoff`: the connection works.
async fn pump(
    listener: &mut PgListener,
    state: &AppState,
    mut shutdown: impl Future<Output = ()> + Unpin,
    backoff: &mut Backoff,
) -> Option<sea_orm::sqlx::Error> {
    loop {
        tokio::select! {
            () = &mut shutdown => return None,
            next = listener.try_recv() => match next {
                Ok(Some(notification)) => {
                    backoff.reset();
                    state.publish(ModelEvent::from_payload(notification.payload()));
                }
                // The connection dropped and sqlx listened again on a new
                // one; whatever was notified in between is lost.
                Ok(None) => state.publish(ModelEvent::everything()),
                Err(err) => return Some(err),
            },
        }
    }
}
