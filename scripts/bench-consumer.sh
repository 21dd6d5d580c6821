#!/usr/bin/env bash
# Benchmarks the consumer end to end (a tool, not a test): pre-fills topics
# with valid observations, measures Apache Kafka's own kafka-consumer-perf-test
# over them (the ceiling; same jars, a group of its own) and the raw rdkafka
# consume rate, then runs the real consumer from the same topics to committed
# state in a fresh Postgres database, and prints records/s, observations/s,
# the share of the ceilings reached, Postgres round trips per batch, and a
# table of the target: consumer >= 50 % of kafka-consumer-perf-test.
# The broker: a throwaway Apache Kafka started here (stopped and removed on
# exit), or $KAFKA_BROKERS when set; --mock: librdkafka's mock cluster
# in-process instead (no perf-test there; the raw read is the ceiling).
#
# Usage: scripts/bench-consumer.sh [--mock] [--records N] [--batch-size B] [--batch-wait-ms T]
# Postgres: $DATABASE_URL, else the local server, else a throwaway cluster.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/bench.sh"
cd "$ROOT"

ensure_build_tools
ensure_postgres "${TMPDIR:-/tmp}/bayes-bench-postgres" 55434
trap bench_cleanup EXIT

log "building the benchmark (release)"
cargo build --release -p consumer --example bench-consumer
bench_broker kafka-consumer-perf-test.sh "$@"
log "measuring against $BENCH_WHERE"
"$CARGO_TARGET_DIR/release/examples/bench-consumer" "${BENCH_ARGS[@]}"
