#!/usr/bin/env bash
# Runs the whole stack under load while killing its parts, then checks that
# every acknowledged observation was counted exactly once.
#
#   Stack   its own throwaway Apache Kafka (scripts/lib/kafka.sh) and its own
#           Postgres cluster (pg_ctl, in a temporary directory), whatever
#           else runs on the machine; the topic with 4 partitions; the
#           producer, the model service and 2 consumer processes in one group
#           (each its own admin port, hence its own static group.instance.id).
#   Load    system-tests/examples/chaos-load (`chaos-load run`, built with the
#           services; its HTTP loop is test-support's bench module): HTTP
#           clients post observations (one, batches, binomial counts, text)
#           to the producer, each request with an Idempotency-Key, sent again
#           with the same key after a 503, a timeout or a connection error
#           until it gets its 202; kcat publishes records with JSON ids, a
#           chunk sent again whole when kcat reports a failure. A few
#           acknowledged requests and chunks are sent once more a few seconds
#           later, as by a client whose answer was lost, so the log always
#           holds copies. It keeps what was acknowledged per model.
#   Chaos   meanwhile, rounds of four actions in a seeded random order, a few
#           seconds apart: SIGKILL a consumer and start it again; stop Postgres
#           with `pg_ctl stop -m immediate` and start it again; SIGKILL the
#           broker and start it again on its data; SIGKILL the producer and
#           start it again. Each part must be back (ready) within 90 s.
#   Verdict `chaos-load verify`, once the load has stopped and the consumers
#           have caught up (the offset stored in Postgres equals the broker's
#           end offset on every partition, and the counts stand still): a
#           table of acknowledged
#           against counted per model (the model service's GET /models) and a
#           summary line (with the copies the log holds). On a difference it
#           says whether the log lacks acknowledged ids (lost before the
#           consumers) or holds them all (lost or doubled by the consumers).
#           Exit status 1 on any difference, when a part did not come back or
#           exited by itself, or when the consumers did not catch up within 180 s.
#
# Everything it started is stopped on exit (Ctrl-C included), and its
# directory removed unless --keep is given or the run failed.
#
# Options:
#   --duration SECONDS   load and chaos this long (default 60), and at least
#                        one round of the four actions; a longer run by hand:
#                        scripts/chaos.sh --duration 600
#   --seed N             the seed of the schedule and of the load (default:
#                        random, printed): the same seed gives the same actions
#                        in the same order at the same intervals, and the same
#                        requests (how they meet the kills is up to timing)
#   --keep               leave the directory (logs, Kafka's and Postgres's data)
#   --consumers N        consumer processes (default 2)
# The services and the load are built in the debug profile, as
# scripts/test.sh builds them for its suites (`cargo test --workspace
# --no-run` builds the examples too): run after them, the build costs nothing.
# Environment (the defaults lie below Linux's range of ports for outgoing
# connections, 32768-60999, so no client's socket takes one first):
# CHAOS_KAFKA_PORT (31140; its controller the next port),
# CHAOS_PG_PORT (31150), CHAOS_SERVICE_PORT (31160: the producer; the model
# service the next port, then the consumers' admin ports).
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"
cd "$ROOT"

DURATION=60
SEED=""
KEEP=""
CONSUMERS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="${2:?--duration needs a number of seconds}"; shift ;;
    --seed) SEED="${2:?--seed needs a number}"; shift ;;
    --keep) KEEP=1 ;;
    --consumers) CONSUMERS="${2:?--consumers needs a number}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive whole number of seconds"
[[ "$CONSUMERS" =~ ^([2-9]|[1-9][0-9]+)$ ]] || die "--consumers must be 2 or more"
[ -n "$SEED" ] || SEED=$(( $(od -An -N2 -tu2 /dev/urandom) ))
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a whole number"
# The schedule's random numbers: bash's RANDOM, seeded, read only by this shell.
RANDOM=$SEED

PARTITIONS=4
TOPIC=observations
GROUP=bayes-consumer
KAFKA_PORT="${CHAOS_KAFKA_PORT:-31140}"
PG_PORT="${CHAOS_PG_PORT:-31150}"
PRODUCER_PORT="${CHAOS_SERVICE_PORT:-31160}"
MODEL_PORT=$((PRODUCER_PORT + 1))
# How long a killed part may take to be ready again.
BACK_WITHIN=90

# --- state, and the cleanup that stops everything -------------------------

WORK=""
PG_DIR=""
KAFKA_DIR=""
LOGS=""
DRIVER_PID=""
declare -A SVC_PID=()       # service name -> pid (a child of this shell)
SERVICES=()                 # names, in start order
FAILURES=()                 # what went wrong besides the counts
T0=$SECONDS

ts() { printf '[%4d s]' $((SECONDS - T0)); }
say() { printf '%s %s\n' "$(ts)" "$*"; }

cleanup() {
  local rc=$?
  trap - EXIT
  # A second Ctrl-C must not cut the stopping short (it would leave processes behind).
  trap '' INT TERM HUP PIPE
  set +e
  [ -z "$DRIVER_PID" ] || { kill -TERM -- "-$DRIVER_PID" 2>/dev/null; wait "$DRIVER_PID" 2>/dev/null; }
  local i name
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    name=${SERVICES[$i]}
    [ -z "${SVC_PID[$name]:-}" ] || { stop_pid "${SVC_PID[$name]}" 10; wait "${SVC_PID[$name]}" 2>/dev/null; }
  done
  [ -z "$KAFKA_DIR" ] || kafka_stop "$KAFKA_DIR" 2>/dev/null
  if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/postmaster.pid" ]; then pg_cluster_stop "$PG_DIR" fast 2>/dev/null; fi
  # Nothing may be left behind: the services by pid, the broker and Postgres
  # by their directory on their command line.
  local left=()
  for name in "${SERVICES[@]}"; do
    kill -0 "${SVC_PID[$name]:-0}" 2>/dev/null && left+=("$name (pid ${SVC_PID[$name]})")
  done
  if [ -n "$WORK" ]; then
    while read -r pid args; do
      [ "$pid" = "$$" ] || left+=("pid $pid: ${args:0:100}")
    done < <(ps -eo pid=,args= | grep -F -- "$WORK" | grep -v -e "grep -F" -e "ps -eo" || true)
  fi
  if [ ${#left[@]} -gt 0 ]; then
    printf 'error: still running after the cleanup: %s\n' "${left[@]}" >&2
    rc=1
  fi
  if [ -n "$WORK" ]; then
    if [ -n "$KEEP" ] || [ "$rc" -ne 0 ]; then
      log "kept for inspection: $WORK (logs in $WORK/logs; remove it with rm -rf)"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- what the run needs ----------------------------------------------------

command -v kcat >/dev/null || apt_install kcat
command -v curl >/dev/null || apt_install curl
command -v psql >/dev/null || apt_install postgresql-client
pg_bin pg_ctl >/dev/null
ensure_kafka_jars

ports=("$KAFKA_PORT" "$((KAFKA_PORT + 1))" "$PG_PORT" "$PRODUCER_PORT" "$MODEL_PORT")
for ((i = 1; i <= CONSUMERS; i++)); do ports+=("$((MODEL_PORT + i))"); done
for port in "${ports[@]}"; do
  port_busy "$port" && die "port $port is in use (an earlier run? \`pgrep -fa bayes-chaos\`): stop it, or move the ports (CHAOS_KAFKA_PORT, CHAOS_PG_PORT, CHAOS_SERVICE_PORT)"
done

ensure_build_tools
log "building the services (debug)"
build_services
BIN="$CARGO_TARGET_DIR/debug"
LOAD="$BIN/examples/chaos-load"
[ -x "$LOAD" ] || die "the build made no $LOAD"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bayes-chaos.XXXXXX")
# Postgres runs as the postgres user, which must reach its directory.
chmod 755 "$WORK"
PG_DIR="$WORK/postgres"
KAFKA_DIR="$WORK/kafka"
LOGS="$WORK/logs"
mkdir -p "$LOGS"

log "chaos run: ${DURATION} s, seed $SEED (the same again: scripts/chaos.sh --duration $DURATION --seed $SEED), in $WORK"

# --- the stack ---------------------------------------------------------------

log "Postgres: a cluster of its own in $PG_DIR on port $PG_PORT"
pg_cluster_start "$PG_DIR" "$PG_PORT"
SERVER_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
DATABASE="postgres://postgres@127.0.0.1:$PG_PORT/bayes_chaos"
psql "$SERVER_URL" -qc "CREATE DATABASE bayes_chaos" >/dev/null

kafka_start chaos "$KAFKA_DIR" "$KAFKA_PORT" "$((KAFKA_PORT + 1))"
# Not a job of this shell (its pid file is what counts): no notice from bash when it is killed.
disown -a
BROKERS="127.0.0.1:$KAFKA_PORT"
# kcat reaches the broker with the services' librdkafka options (none for
# this plaintext broker, unless the caller's environment sets some).
KCAT_CONFIG="$WORK/kcat.conf"
kafka_librdkafka_config "$KCAT_CONFIG"

export BAYES_CONFIG_DIR="$ROOT/config"
export BAYES__DATABASE__URL="$DATABASE"
export BAYES__KAFKA__BROKERS="$BROKERS"
export BAYES__KAFKA__TOPIC="$TOPIC"
export BAYES__KAFKA__PARTITIONS=$PARTITIONS
export BAYES__PRODUCER__PORT=$PRODUCER_PORT
export BAYES__MODEL_SERVICE__PORT=$MODEL_PORT
export BAYES__CONSUMER__GROUP_ID=$GROUP

SERVICES=(producer model-service)
for ((i = 1; i <= CONSUMERS; i++)); do SERVICES+=("consumer-$i"); done

# ready_url NAME: the readiness URL of a service.
ready_url() {
  case "$1" in
    producer) echo "http://127.0.0.1:$PRODUCER_PORT/readyz" ;;
    model-service) echo "http://127.0.0.1:$MODEL_PORT/readyz" ;;
    consumer-*) echo "http://127.0.0.1:$((MODEL_PORT + ${1#consumer-}))/readyz" ;;
  esac
}

# start_service NAME: starts it in its own session (a Ctrl-C reaches this
# script only), its log appended to $LOGS/NAME.log.
start_service() {
  local name="$1" bin="$1" extra=()
  case "$name" in
    consumer-*)
      bin=consumer
      # Its own admin port: its own stable group.instance.id ("auto").
      extra=("BAYES__CONSUMER__ADMIN_PORT=$((MODEL_PORT + ${name#consumer-}))")
      ;;
  esac
  printf '==== %s scripts/chaos.sh: starting %s ====\n' "$(date -u +%FT%TZ)" "$name" >>"$LOGS/$name.log"
  setsid env "${extra[@]}" "$BIN/$bin" >>"$LOGS/$name.log" 2>&1 </dev/null &
  SVC_PID[$name]=$!
}

# reap NAME: sets REAPED to the exit status of the service NAME, which has
# exited or been killed (it is a child of this shell, so not in a $(...)).
REAPED=""
reap() {
  REAPED=0
  wait "${SVC_PID[$1]}" 2>/dev/null || REAPED=$?
}

# wait_ready NAME: true once NAME answers its readiness URL; false when it
# exits or is not ready within $BACK_WITHIN seconds.
wait_ready() {
  local name="$1" url deadline=$((SECONDS + BACK_WITHIN))
  url=$(ready_url "$name")
  while :; do
    curl -fsS -m 2 "$url" >/dev/null 2>&1 && return 0
    if ! kill -0 "${SVC_PID[$name]}" 2>/dev/null; then
      reap "$name"
      FAILURES+=("$name exited during start-up (status $REAPED): see $LOGS/$name.log")
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      FAILURES+=("$name was not ready within $BACK_WITHIN s: see $LOGS/$name.log")
      return 1
    fi
    sleep 0.2
  done
}

for name in "${SERVICES[@]}"; do start_service "$name"; done
for name in "${SERVICES[@]}"; do
  wait_ready "$name" || { tail -n 20 "$LOGS/$name.log" >&2; die "${FAILURES[-1]}"; }
done
# The services create the topic at start-up; records published before would
# have made the broker create it with one partition.
partitions=$(kcat -b "$BROKERS" -F "$KCAT_CONFIG" -L -t "$TOPIC" 2>/dev/null | grep -c '^ *partition ' || true)
[ "$partitions" = "$PARTITIONS" ] || die "topic $TOPIC has ${partitions:-no} partitions, not $PARTITIONS"
log "stack ready: producer :$PRODUCER_PORT, model service :$MODEL_PORT, $CONSUMERS consumers (admin :$((MODEL_PORT + 1))..), Kafka $BROKERS ($PARTITIONS partitions), Postgres :$PG_PORT"

# --- load and chaos ----------------------------------------------------------

# Any service that exited by itself is a failure: it is restarted so the run
# goes on, and the verdict says so.
check_services() {
  local name
  for name in "${SERVICES[@]}"; do
    kill -0 "${SVC_PID[$name]}" 2>/dev/null && continue
    reap "$name"
    FAILURES+=("$name exited by itself (status $REAPED): see $LOGS/$name.log")
    say "!!! $name exited by itself (status $REAPED); starting it again"
    start_service "$name"
  done
}

# pause SECONDS: sleeps, watching the services meanwhile.
pause() {
  local until=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$until" ]; do
    check_services
    sleep 0.5
  done
}

declare -A PERFORMED=([consumer]=0 [postgres]=0 [broker]=0 [producer]=0)

# kill_service NAME: SIGKILL, as a crash (or the OOM killer) would.
kill_service() {
  local name="$1"
  kill -KILL "${SVC_PID[$name]}" 2>/dev/null || true
  reap "$name"
}

# restart_service NAME: SIGKILL, start again, wait until ready.
restart_service() {
  local name="$1" since
  say "SIGKILL $name (pid ${SVC_PID[$name]}), then start it again"
  kill_service "$name"
  since=$SECONDS
  start_service "$name"
  wait_ready "$name" || return 1
  say "  $name is back (ready after $((SECONDS - since)) s)"
}

action_consumer() {
  restart_service "consumer-$((RANDOM % CONSUMERS + 1))"
}

action_producer() {
  restart_service producer
}

action_postgres() {
  local down=$((RANDOM % 5 + 1)) since
  say "Postgres: pg_ctl stop -m immediate, down for $down s, then start"
  pg_cluster_stop "$PG_DIR" immediate
  pause "$down"
  since=$SECONDS
  if ! pg_cluster_start "$PG_DIR" "$PG_PORT" 2>>"$LOGS/chaos.log"; then
    FAILURES+=("Postgres did not start again: see $PG_DIR/server.log")
    return 1
  fi
  say "  Postgres is back (accepting connections after $((SECONDS - since)) s)"
}

action_broker() {
  local down=$((RANDOM % 4)) since
  say "Kafka: SIGKILL the broker, down for $down s, then start it again on its data"
  kafka_kill "$KAFKA_DIR" 2>>"$LOGS/chaos.log"
  pause "$down"
  since=$SECONDS
  # In a subshell: kafka_start dies (exits) when the broker does not come back.
  if ! (KAFKA_START_TIMEOUT=$BACK_WITHIN kafka_start chaos "$KAFKA_DIR" "$KAFKA_PORT" "$((KAFKA_PORT + 1))") 2>>"$LOGS/chaos.log"; then
    FAILURES+=("the broker did not come back within $BACK_WITHIN s: see $KAFKA_DIR/server.log")
    return 1
  fi
  say "  the broker is back (answering after $((SECONDS - since)) s)"
}

log "load and chaos for $DURATION s"
# The load in its own process group, so the cleanup stops its kcat runs too.
setsid "$LOAD" run \
  --producer "http://127.0.0.1:$PRODUCER_PORT" --brokers "$BROKERS" --topic "$TOPIC" \
  --kcat-config "$KCAT_CONFIG" \
  --seed "$SEED" --stop-file "$WORK/stop" --out "$WORK/acknowledged.json" &
DRIVER_PID=$!
CHAOS_END=$((SECONDS + DURATION))
T0=$SECONDS

# Rounds of the four actions, each round in a random order (Fisher-Yates on
# RANDOM), 2 to 6 s apart, until the duration has passed; the first round is
# always played out whole, so even a short run does each action once.
ACTIONS=(consumer postgres broker producer)
stopped=""
rounds=0
while [ -z "$stopped" ] && { [ "$rounds" -eq 0 ] || [ "$SECONDS" -lt "$CHAOS_END" ]; }; do
  round=("${ACTIONS[@]}")
  for ((i = ${#round[@]} - 1; i > 0; i--)); do
    j=$((RANDOM % (i + 1)))
    tmp=${round[i]} round[i]=${round[j]} round[j]=$tmp
  done
  for action in "${round[@]}"; do
    pause $((RANDOM % 5 + 2))
    [ "$rounds" -eq 0 ] || [ "$SECONDS" -lt "$CHAOS_END" ] || break
    if "action_$action"; then
      PERFORMED[$action]=$((PERFORMED[$action] + 1))
    else
      say "!!! ${FAILURES[-1]}; no more chaos"
      stopped=1
      break
    fi
  done
  rounds=$((rounds + 1))
done
# A last pause, so the load meets the stack whole again before it stops.
pause 2
CHAOS_DONE=$SECONDS
say "chaos over; the load stops and finishes what is not acknowledged yet"
touch "$WORK/stop"
while kill -0 "$DRIVER_PID" 2>/dev/null; do pause 1; done
load_rc=0
wait "$DRIVER_PID" || load_rc=$?
DRIVER_PID=""
check_services
[ "$load_rc" -eq 0 ] || FAILURES+=("the load did not get every request acknowledged (exit status $load_rc)")

# --- the verdict ---------------------------------------------------------------

actions="kills/restarts: ${PERFORMED[consumer]} consumer, ${PERFORMED[postgres]} Postgres, ${PERFORMED[broker]} broker, ${PERFORMED[producer]} producer"
say "waiting for the consumers to catch up, then comparing"
verify_rc=0
"$LOAD" verify --acked "$WORK/acknowledged.json" \
  --model-service "http://127.0.0.1:$MODEL_PORT" --database "$DATABASE" \
  --brokers "$BROKERS" --kcat-config "$KCAT_CONFIG" --topic "$TOPIC" --group "$GROUP" --partitions "$PARTITIONS" \
  --actions "$actions (seed $SEED, $((CHAOS_DONE - T0)) s)" || verify_rc=$?
check_services

if [ ${#FAILURES[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${FAILURES[@]}"
fi
if [ "$verify_rc" -ne 0 ] || [ ${#FAILURES[@]} -gt 0 ]; then
  exit 1
fi
echo "OK: every acknowledged observation counted exactly once"
