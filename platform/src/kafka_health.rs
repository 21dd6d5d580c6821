//! Why a Kafka client cannot talk to the brokers, when the reason is one a
//! person must fix: credentials the broker refuses, or a TLS handshake that
//! fails (a CA that does not match, a client certificate expired or
//! missing). librdkafka retries those for ever, reporting each attempt to the
//! client context; [`ClientHealth`] turns that stream into what an operator
//! needs:
//!
//! - one error-level log line when the failure starts or changes (not one per
//!   retry), naming the client and librdkafka's reason;
//! - the counter [`CLIENT_ERRORS`]`{client, kind}`, every report counted;
//! - the failure itself, which `/readyz` names until a request to the
//!   brokers succeeds again ([`ClientHealth::clear`]).
//!
//! librdkafka's reasons carry no secret (it redacts its own configuration
//! dumps), so they are logged as they are.

use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Counter: client-level errors librdkafka reported, labelled `client`
/// (`producer`, `consumer`, `dlq`) and `kind` ([`ErrorKind::as_str`]).
pub const CLIENT_ERRORS: &str = "kafka_client_errors_total";

/// What kind of failure a client error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The broker refused the credentials (SASL).
    Authentication,
    /// The TLS handshake failed: the broker's certificate does not chain to
    /// the configured CA, or the broker refused the client's certificate.
    Tls,
    /// Anything else (a broker down, a timeout): librdkafka's business.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Tls => "tls",
            Self::Other => "other",
        }
    }

    /// Sorts one client-level error. TLS failures come with librdkafka's own
    /// code when the handshake fails on the client's side; when the broker
    /// refuses the client's certificate, TLS 1.3 reports it after the
    /// handshake, as a transport error whose reason names the alert.
    pub fn of(error: &KafkaError, reason: &str) -> Self {
        match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState,
            ) => Self::Authentication,
            Some(RDKafkaErrorCode::SSL) => Self::Tls,
            _ if reason.contains("SSL") || reason.contains("certificate") => Self::Tls,
            _ => Self::Other,
        }
    }
}

/// What [`ClientHealth::report`] made of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Not an authentication or TLS failure: the caller's to log.
    Other,
    /// A failure that was not there before: logged at error level.
    New,
    /// The same failure again (librdkafka retrying): not logged again.
    Repeated,
}

impl Reported {
    /// Whether the health took care of the error (the caller logs nothing).
    pub fn handled(self) -> bool {
        self != Self::Other
    }
}

/// A failure that needs a person, as `/readyz` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    client: &'static str,
    kind: ErrorKind,
    reason: String,
}

/// The authentication and TLS failures of one service's Kafka clients.
#[derive(Debug, Default)]
pub struct ClientHealth {
    failure: Mutex<Option<Failure>>,
}

impl ClientHealth {
    /// Counts a client-level error and, for an authentication or TLS
    /// failure, records it and logs it at error level when it is new.
    pub fn report(&self, client: &'static str, error: &KafkaError, reason: &str) -> Reported {
        let kind = ErrorKind::of(error, reason);
        metrics::counter!(CLIENT_ERRORS, "client" => client, "kind" => kind.as_str()).increment(1);
        if kind == ErrorKind::Other {
            return Reported::Other;
        }
        let failure = Failure {
            client,
            kind,
            reason: reason.to_owned(),
        };
        let mut last = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        // The same failure again is librdkafka retrying: logged once.
        let new = last
            .as_ref()
            .is_none_or(|l| l.kind != kind || l.client != client);
        if new {
            tracing::error!(
                client, kind = kind.as_str(), %reason,
                "Kafka refuses this client ({}); it retries, but only a change of settings can help",
                what_to_check(kind)
            );
        }
        *last = Some(failure);
        if new {
            Reported::New
        } else {
            Reported::Repeated
        }
    }

    /// The failure, as `/readyz` names it, while there is one.
    pub fn failure(&self) -> Option<String> {
        let last = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref().map(|f| {
            let what = match f.kind {
                ErrorKind::Authentication => "authentication failed",
                ErrorKind::Tls => "TLS handshake failed",
                ErrorKind::Other => "failed",
            };
            format!("{what} ({} client): {}", f.client, f.reason)
        })
    }

    /// Forgets the failure: a request to the brokers has just succeeded.
    pub fn clear(&self) {
        let was = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(was) = was {
            tracing::info!(client = was.client, "Kafka accepts this client again");
        }
    }
}

fn what_to_check(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Authentication => {
            "check sasl.mechanism, sasl.username and sasl.password in kafka.librdkafka"
        }
        ErrorKind::Tls => {
            "check ssl.ca.location, and ssl.certificate.location/ssl.key.location where the broker requires client certificates"
        }
        ErrorKind::Other => "",
    }
}

/// A client context that reports every client-level error to a
/// [`ClientHealth`] and logs the others at most every ten seconds each.
#[derive(Debug)]
pub struct ObservedContext {
    client: &'static str,
    health: Arc<ClientHealth>,
}

impl ObservedContext {
    pub fn new(client: &'static str, health: Arc<ClientHealth>) -> Self {
        Self { client, health }
    }
}

impl ClientContext for ObservedContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !self.health.report(self.client, &error, reason).handled() {
            tracing::warn!(client = self.client, %error, %reason, "Kafka client error; librdkafka keeps retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::Global(code)
    }

    #[test]
    fn refused_credentials_and_failed_handshakes_are_told_apart_from_the_rest() {
        let cases = [
            (
                RDKafkaErrorCode::Authentication,
                "SASL authentication error: Authentication failed",
                ErrorKind::Authentication,
            ),
            (
                RDKafkaErrorCode::SSL,
                "SSL handshake failed: certificate verify failed",
                ErrorKind::Tls,
            ),
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "SSL transport error: tlsv13 alert certificate required",
                ErrorKind::Tls,
            ),
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "Connect to ipv4#127.0.0.1:9 failed: Connection refused",
                ErrorKind::Other,
            ),
            (
                RDKafkaErrorCode::AllBrokersDown,
                "1/1 brokers are down",
                ErrorKind::Other,
            ),
        ];
        for (code, reason, kind) in cases {
            assert_eq!(ErrorKind::of(&global(code), reason), kind, "{reason}");
        }
    }

    #[test]
    fn a_failure_is_named_until_cleared_and_retries_do_not_replace_its_client() {
        let health = ClientHealth::default();
        let down = global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(health.report("producer", &down, "down"), Reported::Other);
        assert_eq!(health.failure(), None);
        let refused = global(RDKafkaErrorCode::Authentication);
        let reason = "SASL authentication error: invalid credentials";
        // Logged once, however often librdkafka retries.
        assert_eq!(health.report("producer", &refused, reason), Reported::New);
        assert_eq!(
            health.report("producer", &refused, reason),
            Reported::Repeated
        );
        assert_eq!(
            health.report("producer", &refused, reason),
            Reported::Repeated
        );
        assert_eq!(
            health.failure().as_deref(),
            Some("authentication failed (producer client): SASL authentication error: invalid credentials")
        );
        health.clear();
        assert_eq!(health.failure(), None);
        // After a success, the failure is news again.
        assert_eq!(health.report("producer", &refused, reason), Reported::New);
    }
}
