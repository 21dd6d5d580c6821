//! A Kafka producer that outlives its own fatal errors. An idempotent
//! librdkafka producer that loses track of its sequence numbers (the broker
//! answers OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest batch in flight, or a
//! produce succeeds where a failure was expected) raises a *fatal* error: from
//! then on the client fails every record, and only a new client can produce
//! again. [`RebuildingProducer`] hands out the current client and swaps in a
//! new one, made from the same configuration, when the current one is fatal:
//! the error is logged at error level and counted in
//! [`FATAL_ERRORS`], and the service goes on without a restart.
//!
//! Nothing acknowledged is lost: the records the dead client had not had
//! acknowledged are failed back to their callers (a 503, a batch retried), and
//! the new client has a new producer id, so the broker's de-duplication starts
//! afresh rather than mixing the two clients' sequences.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};

/// Counter: fatal librdkafka errors after which the client was replaced,
/// labelled `client` (`producer`, `dlq`).
pub const FATAL_ERRORS: &str = "kafka_producer_fatal_errors_total";

/// A `FutureProducer` that is replaced by a new one after a fatal error.
pub struct RebuildingProducer<C: ClientContext + 'static> {
    /// Names the client in logs and in the metric's `client` label.
    name: &'static str,
    config: ClientConfig,
    make_context: Box<dyn Fn() -> C + Send + Sync>,
    current: RwLock<Arc<FutureProducer<C>>>,
    /// Held while a new client is made, so that one fatal error makes one client.
    rebuilding: Mutex<()>,
}

impl<C: ClientContext + 'static> std::fmt::Debug for RebuildingProducer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebuildingProducer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<C: ClientContext + 'static> RebuildingProducer<C> {
    /// Creates the first client from `config`, with a context from
    /// `make_context` (called again for every new client).
    pub fn new(
        name: &'static str,
        config: ClientConfig,
        make_context: impl Fn() -> C + Send + Sync + 'static,
    ) -> Result<Self, KafkaError> {
        let first: FutureProducer<C> = config.create_with_context(make_context())?;
        Ok(Self {
            name,
            config,
            make_context: Box::new(make_context),
            current: RwLock::new(Arc::new(first)),
            rebuilding: Mutex::new(()),
        })
    }

    /// The client to use now: the current one, or a new one in its place
    /// when the current one has had a fatal error. Checking costs an atomic
    /// read inside librdkafka, so every use can afford it.
    pub fn get(&self) -> Arc<FutureProducer<C>> {
        let current = self.current();
        match current.client().fatal_error() {
            None => current,
            Some((code, reason)) => self.replace(&current, code, &reason),
        }
    }

    /// The current client's fatal error, if it has one (the next [`get`]
    /// replaces the client), as text for a readiness check.
    ///
    /// [`get`]: Self::get
    pub fn fatal_error(&self) -> Option<String> {
        self.current()
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("fatal Kafka client error ({code}): {reason}"))
    }

    fn current(&self) -> Arc<FutureProducer<C>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps a new client in for `dead`, unless another caller already did.
    /// When no new client can be made, `dead` stays (it fails every record
    /// with its fatal error, so callers answer "unavailable") and the next
    /// use tries again.
    fn replace(
        &self,
        dead: &Arc<FutureProducer<C>>,
        code: RDKafkaErrorCode,
        reason: &str,
    ) -> Arc<FutureProducer<C>> {
        let _one_at_a_time = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.current();
        if !Arc::ptr_eq(&current, dead) {
            return current;
        }
        let fresh: FutureProducer<C> = match self.config.create_with_context((self.make_context)())
        {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::error!(
                    client = self.name, %code, %reason, %error,
                    "fatal Kafka client error, and no new client could be made; trying again at the next use"
                );
                return current;
            }
        };
        let fresh = Arc::new(fresh);
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            fresh.clone(),
        );
        metrics::counter!(FATAL_ERRORS, "client" => self.name).increment(1);
        tracing::error!(
            client = self.name, %code, %reason,
            "fatal Kafka client error: replaced the client with a new one; its unacknowledged records were failed"
        );
        // Dropping a producer purges it and joins its polling thread, which
        // blocks: not on the caller's (possibly async) thread.
        std::thread::spawn(move || drop(old));
        fresh
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rdkafka::client::DefaultClientContext;

    use super::*;

    fn producer() -> RebuildingProducer<DefaultClientContext> {
        let mut config = ClientConfig::new();
        // Never contacted: creating a client does not connect.
        config.set("bootstrap.servers", "127.0.0.1:9");
        RebuildingProducer::new("test", config, || DefaultClientContext).unwrap()
    }

    #[test]
    fn a_healthy_client_is_handed_out_again_and_again() {
        let producer = producer();
        assert!(Arc::ptr_eq(&producer.get(), &producer.get()));
        assert_eq!(producer.fatal_error(), None);
    }

    #[test]
    fn replacing_a_client_swaps_in_a_new_one_once() {
        let producer = producer();
        let first = producer.get();
        let second = producer.replace(&first, RDKafkaErrorCode::Fatal, "test");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&producer.get(), &second));
        // A caller that still saw the first one finds it replaced already.
        let again = producer.replace(&first, RDKafkaErrorCode::Fatal, "test");
        assert!(Arc::ptr_eq(&again, &second));
    }
}
