//! The consumer end to end, through its public API, against a real Postgres
//! (a fresh database per test) and a real Kafka-protocol broker (librdkafka's
//! mock cluster in-process, or `KAFKA_BROKERS`), each test with its own
//! topics and group. Records are published with a plain rdkafka producer.

// A test's helpers fail by panicking, like its assertions; clippy.toml allows
// this in `#[test]` functions only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod crashes;
mod exactly_once;
mod helpers;
mod poison;
mod processes;
mod stalls;
mod tls;
mod zombie;
