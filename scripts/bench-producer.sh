#!/usr/bin/env bash
# Benchmarks the producer service on this machine and prints its figures next
# to the raw rdkafka producer rate against the same broker (the ceiling).
# Everything runs in one process on loopback: librdkafka's mock cluster, the
# raw producer, the producer service, and an HTTP load loop (reqwest).
# Options go to the bench program, e.g.:
#   scripts/bench-producer.sh --connections 64 --seconds 5 --batch 1000 --rate 5000
# See producer/examples/bench-producer.rs for all of them. Not a test: it
# prints numbers and fails only if the program cannot run.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_build_tools
log "building the benchmark (release)"
cargo build --release -p producer --example bench-producer
exec "$CARGO_TARGET_DIR/release/examples/bench-producer" "$@"
