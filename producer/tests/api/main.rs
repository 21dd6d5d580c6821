//! Integration tests of the producer, through its public API only, against a
//! real Kafka-protocol broker: librdkafka's mock cluster in-process, or the
//! broker named by `KAFKA_BROKERS`. One binary, one module per concern.

// Test code: a failed expectation is a failed test, which is what it should be.
// (clippy's allow-*-in-tests covers test functions, not the helpers they share.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker;
mod cross_site;
mod errors;
mod helpers;
mod hostile;
mod limits;
mod observations;
mod operations;
mod processes;
mod tls;
mod uploads;
