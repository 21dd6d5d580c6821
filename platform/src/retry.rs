//! Retrying what fails for a while (a database or a broker that is down):
//! the capped, doubling [`Backoff`] and the one [`retry`] loop every service
//! uses, so that each retry is logged the same way and can be counted.
//!
//! [`retry`] is async; the consumer's polling thread, which is not a tokio
//! worker, runs it through its runtime handle's `block_on`.

use std::fmt::Display;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

/// The delays between attempts: `initial`, then twice the previous one, up
/// to `max`; back to `initial` after [`Backoff::reset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A `max` below `initial` is raised to it: the delay never shrinks.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The delay the next wait will take.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Takes the next delay and doubles the one after, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// Progress was made: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Waits the next delay; `false`, at once, when `stop` completes first.
    pub async fn sleep(&mut self, stop: impl Future<Output = ()>) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            // A stop that was already requested wins over any delay.
            biased;
            () = stop => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worth trying again: logged as a warning, retried after the back-off.
    Transient,
    /// Retrying will not help until a person acts (the reason says what),
    /// but giving up would lose data: retried all the same, each retry
    /// logged as a warning with the reason. The caller reports the condition
    /// itself, once, where a person sees it (the consumer's stalled
    /// partitions: an error-level line, a gauge, `/readyz`), so a condition
    /// that lasts an hour is not an error line every few seconds.
    Stuck(&'static str),
    /// Not worth retrying: the error goes back to the caller.
    Permanent,
}

/// Why [`retry`] returned without a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryError<E> {
    /// `stop` completed during a back-off.
    Stopped,
    /// The error was judged [`Verdict::Permanent`].
    GaveUp(E),
}

/// Calls `attempt` until it succeeds, `judge` calls an error permanent, or
/// `stop` completes while waiting between attempts (an attempt under way is
/// not cut short by `stop`: the caller decides whether to race it).
///
/// Each retry logs `what` with the error and the next delay, then calls
/// `on_retry` (to count retries in a metric). `backoff` is the caller's, so
/// a caller whose progress spans several calls resets it itself.
pub async fn retry<T, E, F>(
    backoff: &mut Backoff,
    what: &str,
    stop: impl Future<Output = ()>,
    mut attempt: impl FnMut() -> F,
    mut judge: impl FnMut(&E) -> Verdict,
    mut on_retry: impl FnMut(),
) -> Result<T, RetryError<E>>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut stop = pin!(stop);
    loop {
        let err = match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let retry_in = backoff.peek();
        match judge(&err) {
            Verdict::Transient => {
                tracing::warn!(error = %err, ?retry_in, "{what}; retrying");
            }
            Verdict::Stuck(reason) => {
                tracing::warn!(error = %err, ?retry_in, "{what}: {reason}; retrying");
            }
            Verdict::Permanent => return Err(RetryError::GaveUp(err)),
        }
        on_retry();
        if !backoff.sleep(stop.as_mut()).await {
            return Err(RetryError::Stopped);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::pending;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_delay_doubles_from_the_initial_one() {
        let mut backoff = Backoff::new(50 * MS, 10_000 * MS);
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [50 * MS, 100 * MS, 200 * MS, 400 * MS]);
    }

    #[test]
    fn the_delay_stops_growing_at_the_cap() {
        let mut backoff = Backoff::new(50 * MS, 300 * MS);
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [50 * MS, 100 * MS, 200 * MS, 300 * MS, 300 * MS]);
    }

    #[test]
    fn a_cap_below_the_initial_delay_is_raised_to_it() {
        let mut backoff = Backoff::new(50 * MS, MS);
        assert_eq!([backoff.next_delay(), backoff.next_delay()], [50 * MS; 2]);
    }

    #[test]
    fn a_reset_starts_again_from_the_initial_delay() {
        let mut backoff = Backoff::new(50 * MS, 10_000 * MS);
        backoff.next_delay();
        backoff.next_delay();
        backoff.reset();
        assert_eq!(backoff.peek(), 50 * MS);
        assert_eq!(backoff.next_delay(), 50 * MS);
    }

    #[test]
    fn a_huge_cap_does_not_overflow() {
        let mut backoff = Backoff::new(Duration::MAX / 3, Duration::MAX);
        backoff.next_delay();
        backoff.next_delay();
        assert_eq!(backoff.next_delay(), Duration::MAX);
    }

    #[tokio::test]
    async fn retry_tries_again_until_success_and_counts_each_retry() {
        let mut backoff = Backoff::new(MS, 4 * MS);
        let calls = Cell::new(0);
        let retries = Cell::new(0);
        let result = retry(
            &mut backoff,
            "test attempt failed",
            pending(),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 4 {
                        Err("down")
                    } else {
                        Ok(n)
                    }
                }
            },
            |_| Verdict::Transient,
            || retries.set(retries.get() + 1),
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(retries.get(), 3);
        // Three waits of 1, 2 and 4 ms: the next one would be at the cap.
        assert_eq!(backoff.peek(), 4 * MS);
    }

    #[tokio::test]
    async fn retry_hands_back_a_permanent_error_without_waiting() {
        let mut backoff = Backoff::new(MS, 4 * MS);
        let retries = Cell::new(0);
        let result: Result<(), _> = retry(
            &mut backoff,
            "test attempt failed",
            pending(),
            || async { Err("refused") },
            |_| Verdict::Permanent,
            || retries.set(retries.get() + 1),
        )
        .await;
        assert_eq!(result, Err(RetryError::GaveUp("refused")));
        assert_eq!(retries.get(), 0);
        assert_eq!(backoff.peek(), MS);
    }

    #[tokio::test]
    async fn retry_ends_when_stopped_during_a_back_off() {
        let mut backoff = Backoff::new(MS, 4 * MS);
        let calls = Cell::new(0);
        let result: Result<(), _> = retry(
            &mut backoff,
            "test attempt failed",
            std::future::ready(()),
            || {
                calls.set(calls.get() + 1);
                async { Err("down") }
            },
            |_| Verdict::Stuck("needs a person"),
            || {},
        )
        .await;
        assert_eq!(result, Err(RetryError::Stopped));
        // The first attempt runs even when the stop came first.
        assert_eq!(calls.get(), 1);
    }
}
