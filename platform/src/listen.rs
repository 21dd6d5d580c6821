//! Following a Postgres `LISTEN`/`NOTIFY` channel for what a service keeps
//! in memory (the API keys, the producer's known models): every payload,
//! and a [`Heard::Gap`] whenever notifications may have been missed (before
//! the first `LISTEN`, after the connection was lost), which tells the
//! follower to reload in full.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::retry::{retry, Backoff, Verdict};

/// The first pause before listening again; it doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Payloads a slow follower may leave unread before the listener waits.
const BUFFER: usize = 1024;

/// What the channel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): whatever was notified before may be lost.
    Gap,
    /// One notification's payload.
    Payload(String),
}

/// What [`follow`] hears; the listening task ends when this is dropped.
#[derive(Debug)]
pub struct Follower {
    heard: mpsc::Receiver<Heard>,
    task: AbortHandle,
}

impl Follower {
    /// The next message; `None` only if the listening task ended.
    pub async fn recv(&mut self) -> Option<Heard> {
        self.heard.recv().await
    }

    /// A message already heard, if any.
    pub fn try_recv(&mut self) -> Option<Heard> {
        self.heard.try_recv().ok()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `channel` in a task of its own until the [`Follower`] is
/// dropped, reconnecting with a bounded back-off. The first message is a
/// [`Heard::Gap`] once the first `LISTEN` succeeded.
pub fn follow(pool: PgPool, channel: String) -> Follower {
    let (tx, heard) = mpsc::channel(BUFFER);
    let task = tokio::spawn(async move {
        // The task is aborted with its follower; until then it never stops.
        let mut shutdown = std::pin::pin!(std::future::pending::<()>());
        let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
        loop {
            let listener = retry(
                &mut backoff,
                &format!("cannot listen on {channel}"),
                shutdown.as_mut(),
                || connect(&pool, &channel),
                |_| Verdict::Transient,
                || {},
            )
            .await;
            let Ok(mut listener) = listener else { return };
            if tx.send(Heard::Gap).await.is_err() {
                return;
            }
            let lost = loop {
                tokio::select! {
                    () = shutdown.as_mut() => return,
                    next = listener.try_recv() => match next {
                        Ok(Some(notification)) => {
                            backoff.reset();
                            let heard = Heard::Payload(notification.payload().to_owned());
                            if tx.send(heard).await.is_err() {
                                return;
                            }
                        }
                        // sqlx listened again on a new connection: what was
                        // notified in between is lost.
                        Ok(None) => {
                            if tx.send(Heard::Gap).await.is_err() {
                                return;
                            }
                        }
                        Err(err) => break err,
                    },
                }
            };
            tracing::warn!(error = %lost, %channel, retry_in = ?backoff.peek(), "lost a notification listener");
            if !backoff.sleep(shutdown.as_mut()).await {
                return;
            }
        }
    });
    Follower {
        heard,
        task: task.abort_handle(),
    }
}

async fn connect(pool: &PgPool, channel: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
