//! Request bodies that trickle are cut off: a body on a bounded route must
//! arrive whole within a deadline ([`Pace::Deadline`]); a streamed upload,
//! which may rightly take long, must not stay silent for long nor fall
//! below an average rate ([`Pace::Streaming`]). The handler sees a body
//! that fails with [`BodyTimeout`]; whatever the handler made of that
//! failure, the client is answered 408 `request_timeout` (when an answer
//! can still be sent) and the connection is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::ErrorResponse;

/// Why a request body was cut off: the error the handler's body stream ends with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyTimeout {
    /// A bounded body was not whole by its deadline.
    #[error("the request body did not arrive within {0:?}")]
    Deadline(Duration),
    /// A streamed body sent nothing for this long.
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
    /// A streamed body arrived slower than this many bytes a second on average.
    #[error("the request body arrived slower than {0} bytes a second")]
    TooSlow(u64),
}

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Whole within this time of the request's head.
    Deadline(Duration),
    /// A streamed body: never silent for `idle` while the server waits for
    /// it, and, once the server has waited `grace` in all, at least
    /// `min_bytes_per_second` on average over the time it waited (time the
    /// server spent elsewhere does not count against the client). A rate of
    /// 0 checks only the silence.
    Streaming {
        idle: Duration,
        min_bytes_per_second: u64,
        grace: Duration,
    },
}

/// A body held to a [`Pace`]; records why it failed in `timed_out`.
#[derive(Debug)]
pub struct PacedBody {
    inner: Body,
    pace: Pace,
    started: Instant,
    /// Bytes received so far.
    received: u64,
    /// Time spent waiting for the client, not counting the current wait.
    waited: Duration,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<OnceLock<BodyTimeout>>,
}

impl PacedBody {
    pub fn new(inner: Body, pace: Pace, timed_out: Arc<OnceLock<BodyTimeout>>) -> Self {
        Self {
            inner,
            pace,
            started: Instant::now(),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            timed_out,
        }
    }

    /// When the current wait must end, and the failure if it does not.
    fn wait_ends(&self, since: Instant) -> (Instant, BodyTimeout) {
        match self.pace {
            Pace::Deadline(limit) => (self.started + limit, BodyTimeout::Deadline(limit)),
            Pace::Streaming {
                idle,
                min_bytes_per_second,
                grace,
            } => {
                // The bytes received so far pay for this much waiting in all.
                let earned = if min_bytes_per_second == 0 {
                    Duration::MAX
                } else {
                    Duration::from_secs_f64(self.received as f64 / min_bytes_per_second as f64)
                };
                let allowed = grace.max(earned).saturating_sub(self.waited);
                if allowed < idle {
                    (since + allowed, BodyTimeout::TooSlow(min_bytes_per_second))
                } else {
                    (since + idle, BodyTimeout::Idle(idle))
                }
            }
        }
    }

    fn fail(&mut self, why: BodyTimeout) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let _ = self.timed_out.set(why.clone());
        self.timer = None;
        Poll::Ready(Some(Err(axum::Error::new(why))))
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(why) = this.timed_out.get() {
            return Poll::Ready(Some(Err(axum::Error::new(why.clone()))));
        }
        let now = Instant::now();
        if let Pace::Deadline(limit) = this.pace {
            // A client that sends a byte just before each poll still ends.
            if now >= this.started + limit {
                return this.fail(BodyTimeout::Deadline(limit));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += now.saturating_duration_since(since);
                }
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.received += data.map_or(0, |d| d.len() as u64);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert(now);
                let (deadline, why) = this.wait_ends(since);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(why),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Holds `request`'s body to `pace`; when the body was cut off, the answer
/// is 408 `request_timeout`, whatever the handler answered, and the
/// connection closes (the rest of the body will not be read).
pub async fn run_paced(request: Request, pace: Pace, next: Next) -> Response {
    let timed_out = Arc::new(OnceLock::new());
    let request = request.map(|body| Body::new(PacedBody::new(body, pace, timed_out.clone())));
    let response = next.run(request).await;
    match timed_out.get() {
        Some(why) => ErrorResponse::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            why.to_string(),
        )
        .header(CONNECTION, HeaderValue::from_static("close"))
        .into_response(),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `chunks`, each after its pause, through a [`PacedBody`], and
    /// reads it whole: the text, or why it was cut off.
    async fn trickle(chunks: Vec<(u64, &'static str)>, pace: Pace) -> Result<String, BodyTimeout> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tokio::spawn(async move {
            for (pause_ms, chunk) in chunks {
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                if tx
                    .send(Ok(Bytes::from_static(chunk.as_bytes())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let timed_out = Arc::new(OnceLock::new());
        let body = PacedBody::new(Body::from_stream(stream), pace, timed_out.clone());
        match axum::body::to_bytes(Body::new(body), usize::MAX).await {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(_) => Err(timed_out.get().cloned().expect("a timeout was recorded")),
        }
    }

    fn streaming(idle_ms: u64, rate: u64, grace_ms: u64) -> Pace {
        Pace::Streaming {
            idle: Duration::from_millis(idle_ms),
            min_bytes_per_second: rate,
            grace: Duration::from_millis(grace_ms),
        }
    }

    #[tokio::test]
    async fn a_body_whole_before_its_deadline_passes_and_a_trickle_is_cut_off() {
        let deadline = Pace::Deadline(Duration::from_millis(300));
        assert_eq!(
            trickle(vec![(0, "ab"), (10, "cd")], deadline).await,
            Ok("abcd".to_owned())
        );
        // Each byte comes well within any idle limit, but the whole is late.
        let bytes = vec![(60, "x"); 20];
        assert_eq!(
            trickle(bytes, deadline).await,
            Err(BodyTimeout::Deadline(Duration::from_millis(300)))
        );
    }

    #[tokio::test]
    async fn a_silent_stream_is_cut_off_after_its_idle_time() {
        let chunks = vec![(0, "ab"), (1_000, "cd")];
        assert_eq!(
            trickle(chunks, streaming(200, 0, 0)).await,
            Err(BodyTimeout::Idle(Duration::from_millis(200)))
        );
    }

    #[tokio::test]
    async fn a_stream_slower_than_the_rate_is_cut_off_after_the_grace() {
        // One byte every 50 ms is 20 B/s: never idle for 200 ms, but far
        // below 1000 B/s once the 150 ms grace is over.
        let chunks = vec![(50, "x"); 40];
        assert_eq!(
            trickle(chunks, streaming(200, 1_000, 150)).await,
            Err(BodyTimeout::TooSlow(1_000))
        );
        // The same pace with no rate to keep arrives whole.
        let chunks = vec![(20, "x"); 10];
        assert_eq!(
            trickle(chunks, streaming(200, 0, 0)).await,
            Ok("x".repeat(10))
        );
    }
}
