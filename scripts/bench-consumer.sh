#!/usr/bin/env bash
# Benchmarks the consumer end to end (a tool, not a test): pre-fills topics on
# librdkafka's in-process mock cluster, measures the raw rdkafka consume rate,
# then runs the real consumer from the same topics to committed state in a
# fresh Postgres database, and prints records/s, observations/s, the share of
# the raw rate reached, and Postgres round trips per batch.
#
# Usage: scripts/bench-consumer.sh [--records N] [--batch-size B] [--batch-wait-ms T]
# Postgres: $DATABASE_URL, else the local server, else a throwaway cluster.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_build_tools
ensure_postgres "${TMPDIR:-/tmp}/bayes-bench-postgres" 55434
trap stop_throwaway_postgres EXIT

log "building the benchmark (release)"
cargo build --release -p consumer --example bench-consumer
"$CARGO_TARGET_DIR/release/examples/bench-consumer" "$@"
