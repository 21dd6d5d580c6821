#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the
# build and the tests need, finds or starts Postgres, starts a throwaway
# Apache Kafka broker (from the jars scripts/kafka/pom.xml names), checks
# formatting and clippy (warnings are errors), then runs the suites with
# cargo-nextest (cargo test when nextest is absent), and last fuzzes both
# HTTP services from openapi.json with schemathesis (scripts/fuzz.sh).
# The Postgres-over-TLS tests start servers of their own (ssl=on, certificates
# made by the test) from Debian's postgresql binaries, installed when absent.
#
# Kafka: the suites run against the broker named by KAFKA_BROKERS; unless that
# is set, this script starts a real Apache Kafka on 127.0.0.1:$TEST_KAFKA_PORT
# (default 19092, or the next free port) in a throwaway directory and stops it
# at the end. The tests
# that need librdkafka's mock cluster (to take the broker down on cue) start
# one in-process whatever KAFKA_BROKERS says. The tests that crash brokers
# start their own from the same jars: system-tests/tests/system/cluster.rs runs a
# 3-node cluster (about two minutes, alone: .config/nextest.toml under nextest,
# system_tests::take_the_machine under cargo test).
#
# Then a bounded chaos run (scripts/chaos.sh): the built services on a broker
# and a Postgres of their own, under load while their parts are killed, every
# acknowledged observation counted exactly once. TEST_CHAOS_SECONDS sets its
# length (default 60; 0 skips it). It runs even when a suite failed, so one
# run reports both.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/kafka.sh"
cd "$ROOT"

# Incremental caches only pay off while editing; here they doubled the debug
# target's size. Set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
ensure_build_tools
# A cold run's target directory peaks near 2.9 GiB; the brokers' and
# Postgres's throwaway data, under the system's temporary directory, add
# several hundred MiB more.
ensure_disk 4500
# The dashboard test drives headless Chromium through chromedriver.
apt_install chromium chromium-driver
ensure_postgres "${TMPDIR:-/tmp}/bayes-test-postgres" 55432
# The TLS tests start a TLS-only Postgres of their own (one per test binary)
# from the server's binaries, even when DATABASE_URL names another server.
ensure_postgres_server

KAFKA_THROWAWAY=""
cleanup() {
  if [ -n "$KAFKA_THROWAWAY" ]; then
    kafka_stop "$KAFKA_THROWAWAY" || true
    rm -rf "$KAFKA_THROWAWAY"
  fi
  stop_throwaway_postgres
}
trap cleanup EXIT
drop_stale_test_databases "$DATABASE_URL"

if [ -z "${KAFKA_BROKERS:-}" ]; then
  # The first free pair of ports from TEST_KAFKA_PORT (default 19092) on, so
  # a broker left by another run does not stop this one.
  port="${TEST_KAFKA_PORT:-19092}"
  while _kafka_port_open "$port" || _kafka_port_open "$((port + 1))"; do
    port=$((port + 2))
  done
  KAFKA_THROWAWAY=$(mktemp -d "${TMPDIR:-/tmp}/bayes-test-kafka.XXXXXX")
  kafka_start test "$KAFKA_THROWAWAY" "$port" "$((port + 1))"
  export KAFKA_BROKERS="127.0.0.1:$port"
fi
log "Kafka: the suites run against $KAFKA_BROKERS"

log "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings

suites=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || suites=$?
else
  cargo test --workspace --no-fail-fast "$@" || suites=$?
fi

# Schemathesis from PyPI, into .dev/schemathesis; the services run against
# the same Postgres and broker as the suites.
fuzz=0
scripts/fuzz.sh || fuzz=$?

chaos=0
if [ "${TEST_CHAOS_SECONDS:-60}" != 0 ]; then
  # The suites' broker is done: its JVM would only compete for the CPU.
  if [ -n "$KAFKA_THROWAWAY" ]; then
    kafka_stop "$KAFKA_THROWAWAY" || true
    rm -rf "$KAFKA_THROWAWAY"
    KAFKA_THROWAWAY=""
  fi
  log "chaos: ${TEST_CHAOS_SECONDS:-60} s of SIGKILLs and restarts under load (scripts/chaos.sh)"
  "$ROOT/scripts/chaos.sh" --duration "${TEST_CHAOS_SECONDS:-60}" || chaos=$?
fi
[ "$suites" -eq 0 ] || die "the test suites failed (exit status $suites)"
[ "$fuzz" -eq 0 ] || die "the fuzz run failed (exit status $fuzz): see its output above"
[ "$chaos" -eq 0 ] || die "the chaos run failed (exit status $chaos): see its output above"
