#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the
# build and the tests need, finds or starts Postgres, checks formatting and
# clippy (warnings are errors), then runs the suites
# with cargo-nextest (cargo test when nextest is absent). Kafka: the tests
# start librdkafka's mock cluster in-process unless KAFKA_BROKERS is set.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_build_tools
# The dashboard test drives headless Chromium.
command -v chromium >/dev/null || apt_install chromium
ensure_postgres "${TMPDIR:-/tmp}/bayes-test-postgres" 55432
trap stop_throwaway_postgres EXIT
drop_stale_test_databases "$DATABASE_URL"

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
