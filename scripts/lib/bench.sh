# shellcheck shell=bash disable=SC2034 # BENCH_ARGS, BENCH_WHERE: for the scripts sourcing this
# What the producer and consumer benchmark scripts share: the broker they
# measure against. Sourced after common.sh.
#
#   bench_broker ARGS...   reads --mock out of ARGS and sets BENCH_ARGS (the
#                          rest, plus --brokers and --perf-test for the
#                          program) and BENCH_WHERE (a line saying where):
#     --mock               librdkafka's mock cluster in-process (the program
#                          starts it; Kafka's perf tools do not run on it);
#     $KAFKA_BROKERS set   that Apache Kafka;
#     otherwise            a throwaway Apache Kafka from scripts/lib/kafka.sh,
#                          on the first free ports from 29092 (controller the
#                          next one), its data in a mktemp directory; stopped
#                          and removed on exit by bench_cleanup.
#   bench_cleanup          the EXIT trap: stops what bench_broker (and
#                          ensure_postgres) started.

source "$(dirname "${BASH_SOURCE[0]}")/kafka.sh"

BENCH_WHERE=""
BENCH_KAFKA_DIR=""

bench_cleanup() {
  if [ -n "$BENCH_KAFKA_DIR" ]; then
    kafka_stop "$BENCH_KAFKA_DIR" || true
    rm -rf "$BENCH_KAFKA_DIR"
    BENCH_KAFKA_DIR=""
  fi
  stop_throwaway_postgres
}

# bench_broker PERF_SCRIPT ARGS...: PERF_SCRIPT is the perf-test wrapper the
# program runs as its ceiling on a real broker.
bench_broker() {
  local perf_script="$1"; shift
  local mock="" arg
  BENCH_ARGS=()
  for arg in "$@"; do
    case "$arg" in
      --mock) mock=1 ;;
      *) BENCH_ARGS+=("$arg") ;;
    esac
  done
  if [ -n "$mock" ]; then
    BENCH_WHERE="librdkafka's mock cluster (in-process)"
    return 0
  fi
  local brokers="${KAFKA_BROKERS:-}"
  if [ -z "$brokers" ]; then
    local port=29092
    while _kafka_port_open "$port" || _kafka_port_open "$((port + 1))"; do
      port=$((port + 2))
      [ "$port" -lt 29200 ] || die "no free port pair between 29092 and 29200"
    done
    BENCH_KAFKA_DIR=$(mktemp -d /tmp/bayes-bench-kafka.XXXXXX)
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    kafka_start bench "$BENCH_KAFKA_DIR" "$port" "$((port + 1))"
    brokers="127.0.0.1:$port"
    BENCH_WHERE="a throwaway Apache Kafka $(kafka_version) at $brokers (this machine)"
  else
    BENCH_WHERE="Apache Kafka at $brokers (KAFKA_BROKERS)"
  fi
  # The perf tools' JVMs start faster with the jars' class-data archive.
  ensure_kafka_jars
  BENCH_ARGS=(--brokers "$brokers" --perf-test "$ROOT/scripts/$perf_script" "${BENCH_ARGS[@]}")
}
