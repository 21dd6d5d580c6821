#!/usr/bin/env bash
# Benchmarks the producer service and prints its figures next to Apache
# Kafka's own kafka-producer-perf-test (the ceiling; same jars, records of the
# same size, acks=all, idempotence) and the raw rdkafka producer rate against
# the same broker, in the same run, then a table of the targets:
#   batch path observations/s >= 50 % of kafka-producer-perf-test records/s;
#   single acked POSTs >= 10 000/s.
# The broker: a throwaway Apache Kafka started here (stopped and removed on
# exit), or $KAFKA_BROKERS when set; --mock: librdkafka's mock cluster
# in-process instead (no perf-test there; the raw producer is the ceiling).
# The service, the load loop and the raw producer run in one process on
# loopback. Other options go to the bench program, e.g.:
#   scripts/bench-producer.sh --connections 64 --seconds 5 --batch 1000 --rate 5000
# See producer/examples/bench-producer.rs for all of them. Not a test: it
# prints numbers and fails only if the program cannot run.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/bench.sh"
cd "$ROOT"

ensure_build_tools
log "building the benchmark (release)"
cargo build --release -p producer --example bench-producer
bench_broker kafka-producer-perf-test.sh "$@"
log "measuring against $BENCH_WHERE"
"$CARGO_TARGET_DIR/release/examples/bench-producer" "${BENCH_ARGS[@]}"
