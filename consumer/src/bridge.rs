//! The bridge between the polling thread and the tokio runtime.
//!
//! rust-rdkafka runs rebalance callbacks inside `poll`, and ours read offsets
//! from Postgres: a tokio worker must not block there. So the
//! Kafka consumer is polled on a dedicated thread, which blocks on the async
//! store and producer calls through the runtime's handle. Every blocking call
//! gives way to an abrupt stop, so a hung broker or database cannot hold one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use platform::retry::{retry, Backoff, RetryError, Verdict};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::control::Control;

/// The first back-off after a failure; it doubles up to `retry_backoff_max`.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(50);

/// Runs `work` on a new thread named `name`; the receiver gets its result.
pub(crate) fn spawn_thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<oneshot::Receiver<T>> {
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // The receiver is gone only if its owner stopped waiting.
            let _ = done_tx.send(work());
        })?;
    Ok(done_rx)
}

/// Why a retried call on the polling thread ended without a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupted {
    /// An abrupt stop: the call was cancelled.
    Aborted,
    /// A graceful stop came while waiting to retry.
    Stopped,
}

/// The polling thread's handle on the runtime, and the stop switches every
/// blocking call obeys.
#[derive(Debug, Clone)]
pub(crate) struct Bridge {
    runtime: Handle,
    control: Arc<Control>,
}

impl Bridge {
    pub fn new(runtime: Handle, control: Arc<Control>) -> Self {
        Self { runtime, control }
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Runs `future` on the calling (non-runtime) thread; `None` if the
    /// consumer is aborted first.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        if self.control.aborted() {
            return None;
        }
        self.runtime.block_on(async {
            tokio::select! {
                value = future => Some(value),
                () = self.control.aborting() => None,
            }
        })
    }

    /// [`retry`] on the calling (non-runtime) thread, until it succeeds or
    /// the consumer stops: a stop request ends the wait between attempts, an
    /// abrupt stop also cancels an attempt. The polling thread never gives
    /// up on a batch; `stuck` says which errors no retry will cure (logged
    /// as errors, retried all the same).
    pub fn retry<T, E, F>(
        &self,
        backoff: &mut Backoff,
        what: &str,
        attempt: impl FnMut() -> F,
        stuck: impl Fn(&E) -> Option<&'static str>,
        on_retry: impl FnMut(),
    ) -> Result<T, Interrupted>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let judge = |err: &E| stuck(err).map_or(Verdict::Transient, Verdict::Stuck);
        let stop = self.control.stopping();
        match self.block_on(retry(backoff, what, stop, attempt, judge, on_retry)) {
            Some(Ok(value)) => Ok(value),
            None => Err(Interrupted::Aborted),
            Some(Err(_)) if self.control.aborted() => Err(Interrupted::Aborted),
            // Stopped: the judge above never gives up.
            Some(Err(RetryError::Stopped | RetryError::GaveUp(_))) => Err(Interrupted::Stopped),
        }
    }
}
