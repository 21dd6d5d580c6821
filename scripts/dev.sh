#!/usr/bin/env bash
# Runs the whole pipeline locally, without Docker:
#   Postgres  $DATABASE_URL when it answers, else the server on 127.0.0.1:5432,
#             else a throwaway cluster in /tmp/bayes-dev-postgres (installed if absent).
#   Kafka     $KAFKA_BROKERS when it answers (left running at exit), else Apache
#             Kafka itself (scripts/kafka.sh: installed on first use, KRaft, on
#             127.0.0.1:9092, data kept in .dev/kafka-data; one already started
#             with `scripts/kafka.sh start` is used and left running).
#   Services  producer :8000, model-service :8001, consumer admin :8002, each
#             supervised like compose's `restart: unless-stopped`: one that dies
#             is restarted (back-off 1 s .. 10 s), its log (.dev/logs/) appended.
# The database `bayes_dev` keeps the counts of the Kafka log in use, so the
# posteriors survive restarts; it is reset only when it holds the counts of
# another log (a fresh .dev/kafka-data, another KAFKA_BROKERS).
# Ctrl-C (or SIGTERM) stops everything it started, in reverse order.
# Options:
#   --embedded  librdkafka's in-memory mock broker (no Java needed) on
#               127.0.0.1:$DEV_BROKER_PORT (9092): nothing survives a run, so its
#               database `bayes_dev_embedded` is reset at every start. Used
#               anyway, with a warning, when Java cannot be installed.
#   --release   optimised build
#   --keep      never reset the database
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"
cd "$ROOT"

PROFILE=debug
KEEP=""
EMBEDDED=""
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release ;;
    --keep) KEEP=1 ;;
    --embedded) EMBEDDED=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) die "unknown option $arg (try --help)" ;;
  esac
done

DEV_BROKER_PORT="${DEV_BROKER_PORT:-9092}"
KAFKA_PORT=9092 KAFKA_CPORT=9093
KAFKA_DIR="$ROOT/.dev/kafka-data"
PRODUCER_PORT=8000 MODEL_PORT=8001 ADMIN_PORT=8002
SERVICES=(consumer model-service producer)   # start order; stopped in reverse
STATE="$ROOT/.dev"
LOGS="$STATE/logs"
RUN="$STATE/run"          # pid files of the services and their restart records
mkdir -p "$LOGS" "$RUN"

ts() { date +%H:%M:%S; }
loud() {
  local line
  printf '\n' >&2
  while IFS= read -r line; do printf '!!! %s\n' "$line" >&2; done
  printf '\n' >&2
}

# What this run started and must stop: the services' supervisors (in start
# order), the embedded broker or Apache Kafka.
SUPERVISORS=()
DEV_BROKER_PID=""
STARTED_KAFKA=""
SLEEPER=""

# supervise NAME CMD...: run in the background. Starts CMD in its own
# session (a Ctrl-C in the terminal reaches dev.sh only), log appended to
# $LOGS/NAME.log, pid in $RUN/NAME.pid, and restarts it whenever it exits
# until this supervisor gets SIGTERM: then it passes SIGTERM on, waits for the
# service (SIGKILL after 10 s) and exits.
supervise() {
  local name="$1"; shift
  local child="" sleeper="" stop="" rc since ran restarts=0 delay=1 how i
  set +e
  trap - EXIT
  trap '' INT HUP PIPE
  trap 'stop=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null' TERM
  while :; do
    since=$SECONDS
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    child=$!
    printf '%s\n' "$child" >"$RUN/$name.pid"
    # (stderr: no "Killed" notice from bash; the line below says it)
    wait "$child" 2>/dev/null; rc=$?
    if [ -n "$stop" ]; then
      # SIGTERM was passed on by the trap; SIGKILL after 10 s.
      for ((i = 0; i < 100; i++)); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$child" 2>/dev/null
      wait "$child" 2>/dev/null
      rm -f "$RUN/$name.pid"
      exit 0
    fi
    child=""
    restarts=$((restarts + 1))
    ran=$((SECONDS - since))
    [ "$ran" -lt 60 ] || delay=1
    if [ "$rc" -gt 128 ]; then how="killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"; else how="exit code $rc"; fi
    printf '%s\n' "$rc" >>"$RUN/$name.exits"
    printf '==== %s scripts/dev.sh: %s exited (%s) after %s s; restarting it in %s s (restart %d) ====\n' \
      "$(date -u +%FT%TZ)" "$name" "$how" "$ran" "$delay" "$restarts" >>"$LOGS/$name.log"
    printf '==> %s %s exited (%s) after %s s: restarting it in %s s (restart %d; its log, appended: %s)\n' \
      "$(ts)" "$name" "$how" "$ran" "$delay" "$restarts" "${LOGS#"$ROOT"/}/$name.log" >&2
    sleep "$delay" &
    sleeper=$!
    wait "$sleeper"
    sleeper=""
    [ -z "$stop" ] || exit 0
    delay=$((delay * 2 > 10 ? 10 : delay * 2))
  done
}

cleanup() {
  trap - EXIT
  # A second Ctrl-C must not cut the stopping short (it would leave processes
  # behind), and a `| tee` that died with the Ctrl-C must not kill us half-way.
  trap '' INT TERM HUP PIPE
  set +e
  [ -z "$SLEEPER" ] || kill "$SLEEPER" 2>/dev/null
  local i name pid
  if [ ${#SUPERVISORS[@]} -gt 0 ]; then log "stopping the services"; fi
  for ((i = ${#SUPERVISORS[@]} - 1; i >= 0; i--)); do
    name=${SERVICES[$i]} pid=${SUPERVISORS[$i]}
    stop_pid "$pid" 15
    # The supervisor was killed: its service may still run.
    if [ -f "$RUN/$name.pid" ]; then
      read -r pid <"$RUN/$name.pid" && [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
      rm -f "$RUN/$name.pid"
    fi
  done
  if [ -n "$DEV_BROKER_PID" ]; then
    log "stopping the embedded broker (its records are gone)"
    stop_pid "$DEV_BROKER_PID" 10
  fi
  [ -z "$STARTED_KAFKA" ] || kafka_stop "$KAFKA_DIR"
  stop_throwaway_postgres
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

ensure_build_tools
command -v curl >/dev/null || apt_install curl
command -v kcat >/dev/null || (apt_install kcat) || log "kcat could not be installed: the kcat lines below will not work"
for port in $PRODUCER_PORT $MODEL_PORT $ADMIN_PORT; do
  port_busy "$port" && die "port $port is in use: stop whatever listens there (an earlier run? \`pgrep -fa target/\`) and retry"
done

# java_ok: true when `java` is Java 17 or later.
java_ok() {
  local major
  command -v java >/dev/null || return 1
  major=$(java -version 2>&1 | sed -nE 's/.* version "(1\.)?([0-9]+).*/\2/p' | head -n 1)
  [ "${major:-0}" -ge 17 ]
}

# Kafka, part 1: which broker. MODE is embedded (the mock), dev (Apache Kafka
# of .dev/kafka-data) or external (KAFKA_BROKERS, or a broker on 9092 that is ours).
MODE=""
FALLBACK_WHY=""
if [ -n "$EMBEDDED" ]; then
  MODE=embedded
elif [ -n "${KAFKA_BROKERS:-}" ]; then
  if command -v kcat >/dev/null && timeout 15 kcat -b "$KAFKA_BROKERS" -L -m 5 >/dev/null 2>&1 ||
     { ! command -v kcat >/dev/null && port_busy "${KAFKA_BROKERS##*:}"; }; then
    MODE=external
    # Our own broker, reached through KAFKA_BROKERS, is still ours.
    case "$KAFKA_BROKERS" in
      "127.0.0.1:$KAFKA_PORT"|"localhost:$KAFKA_PORT") kafka_status "$KAFKA_DIR" >/dev/null 2>&1 && MODE=dev ;;
    esac
  else
    log "Kafka: KAFKA_BROKERS=$KAFKA_BROKERS does not answer; using Apache Kafka on 127.0.0.1:$KAFKA_PORT instead"
  fi
fi
if [ -z "$MODE" ]; then
  MODE=dev
  if ! kafka_status "$KAFKA_DIR" >/dev/null 2>&1; then
    if port_busy "$KAFKA_PORT" || port_busy "$KAFKA_CPORT"; then
      die "port $KAFKA_PORT or $KAFKA_CPORT is in use, but not by the broker of .dev/kafka-data (an earlier \`dev.sh --embedded\`, docker compose?): stop it, or use that broker with KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT scripts/dev.sh"
    fi
    # Java 17 from Debian when missing, then the jars (cached after the first time).
    if ! java_ok; then
      (apt_install openjdk-17-jre-headless) || true
      hash -r
    fi
    if ! java_ok; then
      FALLBACK_WHY="no Java 17 or later (\`java\` is missing or older, and installing openjdk-17-jre-headless did not help)"
    elif ! (ensure_kafka_jars); then
      FALLBACK_WHY="Apache Kafka's jars could not be resolved from Maven Central (see .dev/kafka/mvn.log)"
    fi
    if [ -n "$FALLBACK_WHY" ]; then
      MODE=embedded
      loud <<EOF
Apache Kafka cannot run here: $FALLBACK_WHY.
FALLING BACK to the EMBEDDED in-memory broker (librdkafka's mock cluster):
nothing survives a restart, its log is bounded (a consumer far behind loses
records), and Apache Kafka's console producer does not work with it.
Not for real workloads.
Install Java 17 (apt-get install openjdk-17-jre-headless) and rerun.
EOF
    fi
  fi
fi

log "building ($PROFILE)"
cargo_flags=()
[ "$PROFILE" = release ] && cargo_flags+=(--release)
# One invocation for the services and the `bayes` client: one feature set,
# nothing compiled twice.
cargo build "${cargo_flags[@]}" -p producer -p consumer -p model-service -p cli --bins
BIN="$CARGO_TARGET_DIR/$PROFILE"

# Postgres.
ensure_postgres "${TMPDIR:-/tmp}/bayes-dev-postgres" 55433
SERVER_URL="$DATABASE_URL"

# Kafka, part 2: start it. LOG_ID names the log the counts in the database
# come from; the database is reset when it holds the counts of another one.
case "$MODE" in
  embedded)
    port_busy "$DEV_BROKER_PORT" && die "port $DEV_BROKER_PORT is in use (\`scripts/kafka.sh status\`?): stop that broker, or use DEV_BROKER_PORT for another port"
    log "Kafka: starting the embedded development broker (in memory) on 127.0.0.1:$DEV_BROKER_PORT"
    [ ! -f "$LOGS/dev-broker.log" ] || mv -f "$LOGS/dev-broker.log" "$LOGS/dev-broker.log.1"
    setsid "$BIN/dev-broker" --port "$DEV_BROKER_PORT" >"$LOGS/dev-broker.log" 2>&1 </dev/null &
    DEV_BROKER_PID=$!
    for _ in $(seq 1 100); do grep -q "dev-broker ready" "$LOGS/dev-broker.log" && break; sleep 0.1; done
    grep -q "dev-broker ready" "$LOGS/dev-broker.log" || die "the development broker did not start: see $LOGS/dev-broker.log"
    BROKERS="127.0.0.1:$DEV_BROKER_PORT"
    APP_DB=bayes_dev_embedded
    LOG_ID="embedded broker, pid $DEV_BROKER_PID"
    ;;
  dev)
    if kafka_status "$KAFKA_DIR" >/dev/null 2>&1; then
      log "Kafka: using the broker already running in .dev/kafka-data (left running at exit; \`scripts/kafka.sh stop\` stops it)"
    else
      kafka_start dev "$KAFKA_DIR" "$KAFKA_PORT" "$KAFKA_CPORT"
      STARTED_KAFKA=1
      # Not a job of this shell (its pid file is what counts): no "Killed"
      # notice from bash when it crashes, the line of the watch loop says it.
      disown -a
    fi
    BROKERS="127.0.0.1:$KAFKA_PORT"
    APP_DB=bayes_dev
    cluster=$(sed -n 's/^cluster\.id=//p' "$KAFKA_DIR/kraft-combined-logs/meta.properties" 2>/dev/null || true)
    LOG_ID="Kafka cluster ${cluster:-unknown} in .dev/kafka-data"
    ;;
  external)
    log "Kafka: using KAFKA_BROKERS=$KAFKA_BROKERS (left running at exit)"
    BROKERS="$KAFKA_BROKERS"
    APP_DB=bayes_dev
    LOG_ID="Kafka at $KAFKA_BROKERS"
    ;;
esac
base="${SERVER_URL%%\?*}" query=""
[[ "$SERVER_URL" == *\?* ]] && query="?${SERVER_URL#*\?}"
APP_DB_URL="${base%/*}/$APP_DB$query"

# The database: kept when it holds the counts of this log (its comment says
# which), else reset, since its stored offsets would skip or recount records.
had=$(psql "$SERVER_URL" -qtAc "SELECT coalesce(shobj_description(oid, 'pg_database'), '-') FROM pg_database WHERE datname = '$APP_DB'")
TAG="scripts/dev.sh: counts of the $LOG_ID"
if [ -n "$had" ] && [ "$had" != "$TAG" ]; then
  if [ -n "$KEEP" ]; then
    log "keeping database $APP_DB (--keep), although it holds ${had#scripts/dev.sh: } rather than the $LOG_ID"
  else
    if [ "$MODE" = embedded ]; then
      log "resetting database $APP_DB (the embedded broker starts empty)"
    else
      loud <<EOF
Database $APP_DB holds ${had#scripts/dev.sh: } (or counts from before
this check existed), not the $LOG_ID: resetting it so the posteriors
match the log (the consumer counts the whole log again). --keep prevents this.
EOF
    fi
    PGOPTIONS="--client-min-messages=warning" psql "$SERVER_URL" -qc "DROP DATABASE IF EXISTS $APP_DB WITH (FORCE)" >/dev/null
    had=""
  fi
elif [ -n "$had" ]; then
  log "database $APP_DB kept: it holds the counts of the $LOG_ID"
fi
if [ -z "$had" ]; then
  psql "$SERVER_URL" -qc "CREATE DATABASE $APP_DB" >/dev/null
  psql "$SERVER_URL" -qc "COMMENT ON DATABASE $APP_DB IS '${TAG//\'/\'\'}'" >/dev/null
fi

export BAYES__DATABASE__URL="$APP_DB_URL"
export BAYES__KAFKA__BROKERS="$BROKERS"
export BAYES__PRODUCER__PORT=$PRODUCER_PORT
export BAYES__MODEL_SERVICE__PORT=$MODEL_PORT
export BAYES__CONSUMER__ADMIN_PORT=$ADMIN_PORT

for svc in "${SERVICES[@]}"; do
  # The previous run's log is kept as NAME.log.1; restarts append to NAME.log.
  [ ! -f "$LOGS/$svc.log" ] || mv -f "$LOGS/$svc.log" "$LOGS/$svc.log.1"
  rm -f "$RUN/$svc.exits" "$RUN/$svc.pid"
  supervise "$svc" "$BIN/$svc" &
  SUPERVISORS+=($!)
done

# wait_ready NAME URL: until URL answers; a service exiting during start-up
# is a configuration problem, not a crash to restart: stop with its log.
wait_ready() {
  local name="$1" url="$2"
  for _ in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    for svc in "${SERVICES[@]}"; do
      if [ -s "$RUN/$svc.exits" ]; then
        printf -- '--- the end of %s\n' "$LOGS/$svc.log" >&2
        tail -n 20 "$LOGS/$svc.log" >&2
        die "$svc exited during start-up (status $(head -n 1 "$RUN/$svc.exits")): see $LOGS/$svc.log"
      fi
    done
    sleep 0.2
  done
  die "$name is not ready after 60 s: see $LOGS/$name.log"
}
wait_ready producer "http://127.0.0.1:$PRODUCER_PORT/readyz"
wait_ready model-service "http://127.0.0.1:$MODEL_PORT/readyz"
wait_ready consumer "http://127.0.0.1:$ADMIN_PORT/readyz"

# The services create the topics at start-up (kafka.create_topics).
if command -v kcat >/dev/null; then
  topics=$(timeout 15 kcat -b "$BROKERS" -L -m 5 2>/dev/null | sed -n 's/^ *topic "\([^"]*\)".*/\1/p' || true)
  for t in observations observations.dlq; do
    grep -qxF "$t" <<<"$topics" || log "warning: topic $t is missing on $BROKERS (see $LOGS/producer.log)"
  done
fi

P="scripts/kafka-console-producer.sh --bootstrap-server $BROKERS --topic observations"
if [ "$MODE" = embedded ]; then
  MODE_LINE="EMBEDDED in-memory broker: everything is lost at exit${FALLBACK_WHY:+ (fallback: $FALLBACK_WHY)}"
  CONSOLE="  (Apache Kafka's console producer does not work with the embedded broker:
   its Java client cannot talk to librdkafka's mock; use kcat as above)"
else
  case "$MODE" in
    dev) MODE_LINE="Apache Kafka $(kafka_version), data kept in .dev/kafka-data"
         if [ -n "$STARTED_KAFKA" ]; then MODE_LINE+=" (stopped at exit)"; else MODE_LINE+=" (left running at exit)"; fi ;;
    *) MODE_LINE="external broker (left running at exit)" ;;
  esac
  CONSOLE="Type events with Apache Kafka's console producer (one record a line, Ctrl-D ends):
  default model:  $P
                  then type:  w
  named model:    $P --property parse.key=true --property key.separator=:
                  then type:  globe:WLWWWLWLW
                  (every line needs a key then; add --property ignore.error=true
                   to also send lines without one, e.g. w, to the default model)"
fi
cat <<EOF

The pipeline is running. Logs: ${LOGS#"$ROOT"/}/ (services restarted when they die)
  producer       http://127.0.0.1:$PRODUCER_PORT   (POST /observations)
  model-service  http://127.0.0.1:$MODEL_PORT   (dashboard: http://127.0.0.1:$MODEL_PORT/)
  consumer       http://127.0.0.1:$ADMIN_PORT/metrics
  Kafka          $BROKERS   $MODE_LINE
  Postgres       $APP_DB_URL

Try:
  curl -sS -X POST localhost:$PRODUCER_PORT/observations -H 'content-type: application/json' -d '{"model":"globe","outcome":"w"}'
  curl -sS -X POST localhost:$PRODUCER_PORT/observations -H 'content-type: text/plain' --data 'W L W W W L W L W'
  curl -sS localhost:$MODEL_PORT/models/globe; echo
  curl -sS localhost:$MODEL_PORT/posterior | head -c 600; echo
  echo 'globe:WLWWWLWLW' | kcat -b $BROKERS -t observations -P -K:
  open http://127.0.0.1:$MODEL_PORT/ in a browser

The command-line client (its defaults are these ports):
  ${BIN#"$ROOT"/}/bayes post globe WLWWWLWLW
  ${BIN#"$ROOT"/}/bayes posterior globe
  ${BIN#"$ROOT"/}/bayes watch globe
  or put it on your PATH:  export PATH="$BIN:\$PATH"

$CONSOLE
${FALLBACK_WHY:+
!!! EMBEDDED FALLBACK: Apache Kafka cannot run here ($FALLBACK_WHY).
!!! Data is lost at exit; install Java 17 (openjdk-17-jre-headless) for the real broker.
}
Ctrl-C stops everything.
EOF

# Until Ctrl-C or SIGTERM (the EXIT trap stops everything). The broker this
# run started is watched too: Apache Kafka is restarted (its data is on disk);
# the embedded one cannot be (its log was in memory), so the run ends.
kafka_delay=1
while :; do
  sleep 2 &
  SLEEPER=$!
  wait "$SLEEPER" || true
  SLEEPER=""
  for i in "${!SUPERVISORS[@]}"; do
    kill -0 "${SUPERVISORS[$i]}" 2>/dev/null || die "the supervisor of ${SERVICES[$i]} exited (a bug in dev.sh)"
  done
  if [ -n "$DEV_BROKER_PID" ] && ! kill -0 "$DEV_BROKER_PID" 2>/dev/null; then
    die "the embedded broker exited, and its records with it: see $LOGS/dev-broker.log; run scripts/dev.sh again"
  fi
  if [ -n "$STARTED_KAFKA" ] && ! kafka_status "$KAFKA_DIR" >/dev/null 2>&1; then
    log "$(ts) Apache Kafka exited (see .dev/kafka-data/server.log): restarting it in $kafka_delay s (its data is on disk)"
    sleep "$kafka_delay"
    if (kafka_start dev "$KAFKA_DIR" "$KAFKA_PORT" "$KAFKA_CPORT"); then kafka_delay=1; else kafka_delay=$((kafka_delay * 2 > 30 ? 30 : kafka_delay * 2)); fi
  fi
done
