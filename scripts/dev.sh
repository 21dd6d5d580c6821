#!/usr/bin/env bash
# Runs the whole pipeline locally, without Docker:
#   Postgres  $DATABASE_URL when it answers, else the server on 127.0.0.1:5432,
#             else a throwaway cluster in /tmp/bayes-dev-postgres (installed if absent);
#             the services use the database `bayes_dev` on it.
#   Kafka     $KAFKA_BROKERS when it answers, else the embedded development
#             broker (librdkafka's mock cluster) on 127.0.0.1:$DEV_BROKER_PORT (9092).
#   Services  producer :8000, model-service :8001, consumer admin :8002.
# Ctrl-C stops everything it started. With the embedded broker (in memory)
# every run starts from empty: the bayes_dev database is reset too, so the
# posteriors always match the log. With an external broker the database is kept.
# Options: --release (optimised build), --keep (never reset bayes_dev).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

PROFILE=debug
KEEP=""
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

DEV_BROKER_PORT="${DEV_BROKER_PORT:-9092}"
PRODUCER_PORT=8000 MODEL_PORT=8001 ADMIN_PORT=8002
STATE="$ROOT/.dev"
LOGS="$STATE/logs"
mkdir -p "$LOGS"

# Children run in their own sessions, so a Ctrl-C reaches this script only,
# which then stops them in reverse start order: the services first (each
# finishes what it is doing), the broker last.
PIDS=()
start() {
  local name="$1"; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
}
cleanup() {
  trap - INT TERM EXIT
  # A `| tee` that died with the Ctrl-C must not kill us half-way through.
  trap '' PIPE
  local i pid
  [ ${#PIDS[@]} -gt 0 ] && log "stopping ${#PIDS[@]} processes"
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    # Wait, so ports are free when this script returns; 10 s at most.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_throwaway_postgres
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_build_tools
command -v curl >/dev/null || apt_install curl
command -v kcat >/dev/null || apt_install kcat
for port in $PRODUCER_PORT $MODEL_PORT $ADMIN_PORT; do
  port_busy "$port" && die "port $port is in use: stop whatever listens there (an earlier run?) and retry"
done

log "building ($PROFILE)"
cargo_flags=()
[ "$PROFILE" = release ] && cargo_flags+=(--release)
cargo build "${cargo_flags[@]}" -p producer -p consumer -p model-service --bins
BIN="$CARGO_TARGET_DIR/$PROFILE"

# Postgres.
ensure_postgres "${TMPDIR:-/tmp}/bayes-dev-postgres" 55433
SERVER_URL="$DATABASE_URL"
APP_DB=bayes_dev
base="${SERVER_URL%%\?*}" query=""
[[ "$SERVER_URL" == *\?* ]] && query="?${SERVER_URL#*\?}"
APP_DB_URL="${base%/*}/$APP_DB$query"

# Kafka.
EMBEDDED=""
if [ -n "${KAFKA_BROKERS:-}" ] && port_busy "${KAFKA_BROKERS##*:}"; then
  log "Kafka: using KAFKA_BROKERS=$KAFKA_BROKERS"
  BROKERS="$KAFKA_BROKERS"
else
  [ -n "${KAFKA_BROKERS:-}" ] && log "Kafka: KAFKA_BROKERS=$KAFKA_BROKERS does not answer"
  port_busy "$DEV_BROKER_PORT" && die "port $DEV_BROKER_PORT is in use: set KAFKA_BROKERS to use that broker, or DEV_BROKER_PORT for another port"
  log "Kafka: starting the embedded development broker on 127.0.0.1:$DEV_BROKER_PORT"
  start dev-broker "$BIN/dev-broker" --port "$DEV_BROKER_PORT"
  BROKERS="127.0.0.1:$DEV_BROKER_PORT"
  EMBEDDED=1
  for _ in $(seq 1 100); do grep -q "dev-broker ready" "$LOGS/dev-broker.log" && break; sleep 0.1; done
  grep -q "dev-broker ready" "$LOGS/dev-broker.log" || die "the development broker did not start: see $LOGS/dev-broker.log"
fi

if [ -n "$EMBEDDED" ] && [ -z "$KEEP" ]; then
  log "resetting database $APP_DB (the embedded broker starts empty)"
  PGOPTIONS="--client-min-messages=warning" psql "$SERVER_URL" -qc "DROP DATABASE IF EXISTS $APP_DB WITH (FORCE)" >/dev/null
fi
psql "$SERVER_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$APP_DB'" | grep -q 1 \
  || psql "$SERVER_URL" -qc "CREATE DATABASE $APP_DB" >/dev/null

export BAYES__DATABASE__URL="$APP_DB_URL"
export BAYES__KAFKA__BROKERS="$BROKERS"
export BAYES__PRODUCER__PORT=$PRODUCER_PORT
export BAYES__MODEL_SERVICE__PORT=$MODEL_PORT
export BAYES__CONSUMER__ADMIN_PORT=$ADMIN_PORT

for svc in consumer model-service producer; do
  start "$svc" "$BIN/$svc"
done

wait_ready() {
  local name="$1" url="$2"
  for _ in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a process exited early: see $LOGS/"; done
    sleep 0.2
  done
  die "$name is not ready after 60 s: see $LOGS/$name.log"
}
wait_ready producer "http://127.0.0.1:$PRODUCER_PORT/readyz"
wait_ready model-service "http://127.0.0.1:$MODEL_PORT/readyz"
wait_ready consumer "http://127.0.0.1:$ADMIN_PORT/readyz"

cat <<EOF

The pipeline is running. Logs: $LOGS/
  producer       http://127.0.0.1:$PRODUCER_PORT   (POST /observations)
  model-service  http://127.0.0.1:$MODEL_PORT   (dashboard: http://127.0.0.1:$MODEL_PORT/)
  consumer       http://127.0.0.1:$ADMIN_PORT/metrics
  Kafka          $BROKERS   Postgres  $APP_DB_URL

Try:
  curl -sS -X POST localhost:$PRODUCER_PORT/observations -H 'content-type: text/plain' --data 'W L W W W L W L W'
  curl -sS localhost:$MODEL_PORT/posterior | head -c 600; echo
  echo w | kcat -b $BROKERS -t observations -P -k globe       # a manual event
  open http://127.0.0.1:$MODEL_PORT/ in a browser

Ctrl-C stops everything.
EOF

# Until Ctrl-C (the trap stops everything) or until a process dies.
wait -n "${PIDS[@]}" || true
die "a process exited: see $LOGS/"
