#!/usr/bin/env bash
# Benchmarks bulk CSV uploads end to end (a tool, not a test): generates a CSV
# (default 50 million rows, about 1 GiB: `landing-variant-NN,w`), starts the
# release producer and consumer on a fresh database, POSTs the file with curl
# (streamed from disk), and prints
#   - validation rows/s (the POST's time: transfer, hashing, spooling and
#     validating every row, up to the 202),
#   - produce rows/s (validated_at to produced_at) next to Apache Kafka's own
#     kafka-producer-perf-test in the same run (records of the same size,
#     acks=all, idempotence: the raw producer rate), and the share,
#   - the end-to-end time to `applied` (the consumer's stored offsets past the
#     upload's last record) and the counts the model service's table holds,
#   - the producer's peak RSS (VmHWM), which must stay flat whatever the size,
#   - that the same file sent again is refused with 409,
# then a table of the targets (>= 1 000 000 rows/s validated; produce >= 50 %
# of the raw rate).
#
# Usage: scripts/bench-upload.sh [--rows N] [--no-consumer] [--cli] [--keep]
#   --rows N        rows in the file (default 50000000)
#   --no-consumer   stop once produced (no time to applied)
#   --cli           as a user would: the consumer runs from the start and the
#                   file goes up with one `bayes upload`, which returns once
#                   the upload is applied; prints its wall time and peak RSS
#                   and the counts (no perf test, no repeat)
#   --keep          keep the generated file and logs (printed at the end)
# The broker: a throwaway Apache Kafka started here (stopped and removed on
# exit), or $KAFKA_BROKERS when set. Postgres: $DATABASE_URL, else the local
# server, else a throwaway cluster; the benchmark's database is dropped at
# the end. Needs disk for the file twice (the upload is spooled).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$ROOT/scripts/lib/bench.sh"
cd "$ROOT"

ROWS=50000000
CONSUME=1
CLI=""
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --no-consumer) CONSUME=""; shift ;;
    --cli) CLI=1; shift ;;
    --keep) KEEP=1; shift ;;
    *) die "unknown option $1 (see the header of $0)" ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bayes-bench-upload.XXXXXX")
PRODUCER_PID=""
CONSUMER_PID=""
BENCH_DB=""
upload_cleanup() {
  [ -z "$PRODUCER_PID" ] || stop_pid "$PRODUCER_PID" 10
  [ -z "$CONSUMER_PID" ] || stop_pid "$CONSUMER_PID" 10
  if [ -n "$BENCH_DB" ]; then
    PGOPTIONS="--client-min-messages=warning" psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$BENCH_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ -n "$KEEP" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  bench_cleanup
}
trap upload_cleanup EXIT
trap 'exit 130' INT TERM

ensure_build_tools
ensure_postgres "${TMPDIR:-/tmp}/bayes-bench-postgres" 55434
log "building the producer, the consumer and the bayes client (release)"
cargo build --release -p producer -p consumer -p cli --bins
bench_broker kafka-producer-perf-test.sh
# bench_broker replaced the EXIT trap with its own cleanup: put ours back.
trap upload_cleanup EXIT
BROKERS="${BENCH_ARGS[1]}"
log "measuring against $BENCH_WHERE"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"; }
seconds_between() { python3 -c 'import sys; from datetime import datetime as d; f=lambda s: d.fromisoformat(s.replace("Z","+00:00")); print((f(sys.argv[2])-f(sys.argv[1])).total_seconds())' "$1" "$2"; }
now() { date +%s.%N; }

CSV="$WORK/upload.csv"
log "generating $ROWS rows in $CSV"
awk -v rows="$ROWS" 'BEGIN {
  print "model,outcome"
  for (i = 0; i < rows; i++) printf "landing-variant-%02d,%s\n", i % 50, (i % 3 == 0 ? "w" : "l")
}' >"$CSV"
BYTES=$(stat -c %s "$CSV")
log "$BYTES bytes ($(awk -v b="$BYTES" 'BEGIN { printf "%.2f GiB", b / 1073741824 }'))"

BENCH_DB="bench_upload_$(date +%s)_$$"
psql "$DATABASE_URL" -qc "CREATE DATABASE \"$BENCH_DB\"" >/dev/null
DB_URL=$(python3 -c 'import sys, urllib.parse as u; p=u.urlparse(sys.argv[1]); print(p._replace(path="/"+sys.argv[2]).geturl())' "$DATABASE_URL" "$BENCH_DB")
TOPIC="bench-upload-$(date +%s)-$$"
GROUP="$TOPIC-consumer"
PORT=$(free_port)
export BAYES_CONFIG_DIR="$ROOT/config"
export BAYES__KAFKA__BROKERS="$BROKERS" BAYES__KAFKA__TOPIC="$TOPIC" BAYES__KAFKA__DLQ_TOPIC="$TOPIC.dlq"
export BAYES__DATABASE__URL="$DB_URL" BAYES__CONSUMER__GROUP_ID="$GROUP"
export BAYES__PRODUCER__PORT="$PORT" BAYES__UPLOADS__SPOOL_DIR="$WORK"
export BAYES__CONSUMER__ADMIN_PORT=0 RUST_LOG=warn

"$CARGO_TARGET_DIR/release/producer" >"$WORK/producer.log" 2>&1 &
PRODUCER_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 300); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$PRODUCER_PID" 2>/dev/null || { cat "$WORK/producer.log" >&2; die "the producer exited"; }
  sleep 0.1
done
curl -fsS "$URL/uploads?limit=1" >/dev/null || die "the producer's uploads are not open (database?): see $WORK/producer.log"

if [ -n "$CLI" ]; then
  "$CARGO_TARGET_DIR/release/consumer" >"$WORK/consumer.log" 2>&1 &
  CONSUMER_PID=$!
  log "bayes upload ($ROWS rows), the consumer running"
  started=$(now)
  /usr/bin/time -f '%M %e' -o "$WORK/bayes.time" \
    "$CARGO_TARGET_DIR/release/bayes" upload --producer-url "$URL" "$CSV" >"$WORK/bayes.out" 2>"$WORK/bayes.err" \
    || { cat "$WORK/bayes.out" "$WORK/bayes.err" >&2; die "bayes upload failed"; }
  finished=$(now)
  cat "$WORK/bayes.out" >&2
  ID=$(awk '/^upload [0-9a-f]+:/ { sub(":", "", $2); print $2; exit }' "$WORK/bayes.out")
  curl -fsS "$URL/uploads/$ID" -o "$WORK/upload.json" || die "GET /uploads/$ID failed"
  COUNTED=$(psql "$DB_URL" -qtAc "SELECT coalesce(sum(successes + failures), 0) FROM model_states")
  HWM_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$PRODUCER_PID/status")
  read -r CLI_KB _ <"$WORK/bayes.time"
  awk -v rows="$ROWS" -v bytes="$BYTES" -v a="$started" -v b="$finished" -v counted="$COUNTED" \
      -v hwm="$HWM_KB" -v cli="$CLI_KB" \
      -v status="$(json_field "$WORK/upload.json" status)" \
      -v p="$(seconds_between "$(json_field "$WORK/upload.json" received_at)" "$(json_field "$WORK/upload.json" validated_at)")" \
      -v q="$(seconds_between "$(json_field "$WORK/upload.json" validated_at)" "$(json_field "$WORK/upload.json" produced_at)")" 'BEGIN {
    t = b - a
    printf "\nbayes upload: %d rows, %.2f GiB, the consumer running throughout\n", rows, bytes / 1073741824
    printf "received to validated:     %8.1f s   %12.0f rows/s\n", p, rows / p
    printf "validated to produced:     %8.1f s   %12.0f rows/s\n", q, rows / q
    printf "bayes upload, start to end:%8.1f s   %12.0f rows/s (status %s)\n", t, rows / t, status
    printf "counted:                   %s of %d trials\n", counted, rows
    printf "bayes peak RSS:            %8.1f MiB\n", cli / 1024
    printf "producer peak RSS (VmHWM): %8.1f MiB\n", hwm / 1024
    printf "\n%-36s %-14s %s\n", "target", "measured", "met"
    printf "%-36s %-14s %s\n", "applied, every row counted once", counted, (status == "applied" && counted == rows ? "yes" : "NO")
  }'
  exit 0
fi

log "POST /uploads ($ROWS rows)"
started=$(now)
status=$(curl -sS -X POST -T "$CSV" -H 'content-type: text/csv' -H 'Expect:' \
  -o "$WORK/accepted.json" -w '%{http_code}' "$URL/uploads?filename=bench.csv")
validated=$(now)
[ "$status" = 202 ] || { cat "$WORK/accepted.json" >&2; die "POST /uploads answered $status"; }
ID=$(json_field "$WORK/accepted.json" id)
VALIDATE_S=$(awk -v a="$started" -v b="$validated" 'BEGIN { printf "%.3f", b - a }')
log "upload $ID accepted after ${VALIDATE_S}s; producing"

poll_status() { # poll_status STATUS...: waits until the upload has one of them
  local body="$WORK/upload.json" state
  while :; do
    curl -fsS "$URL/uploads/$ID" -o "$body" || die "GET /uploads/$ID failed"
    state=$(json_field "$body" status)
    [ "$state" != failed ] || { cat "$body" >&2; die "the upload failed"; }
    for want in "$@"; do [ "$state" = "$want" ] && return 0; done
    sleep 0.2
  done
}
poll_status produced applied
PRODUCE_S=$(seconds_between "$(json_field "$WORK/upload.json" validated_at)" "$(json_field "$WORK/upload.json" produced_at)")
HWM_KB=$(awk '/VmHWM/ { print $2 }' "/proc/$PRODUCER_PID/status")

# The raw producer rate, same broker, same run: records of the upload's size.
RECORD_BYTES=$(python3 -c 'import json,sys; r=int(sys.argv[2]); print(len(json.dumps({"model":"landing-variant-07","successes":1,"trials":1,"id":"%s:%d" % (sys.argv[1], r//2)}, separators=(",",":"))))' "$ID" "$ROWS")
PERF_RECORDS=$(( ROWS < 5000000 ? ROWS : 5000000 ))
log "kafka-producer-perf-test: $PERF_RECORDS records of $RECORD_BYTES bytes, acks=all, idempotence"
# As scripts/bench-producer.sh runs it: a fifth of the records to warm the
# JVM up, the steady-state rate after them; keys of up to 9 digits.
"$ROOT/scripts/kafka-producer-perf-test.sh" --topic "$TOPIC-perf" --num-records "$PERF_RECORDS" \
  --warmup-records "$((PERF_RECORDS / 5))" --record-size "$RECORD_BYTES" \
  --key-distribution range --record-key-range 1000000000 --throughput -1 \
  --producer-props "bootstrap.servers=$BROKERS" acks=all enable.idempotence=true \
  >"$WORK/perf.log" 2>&1 || { cat "$WORK/perf.log" >&2; die "kafka-producer-perf-test failed"; }
RAW_RATE=$(awk '/steady state records sent/ { r = $6 } END { print r }' "$WORK/perf.log")
[ -n "$RAW_RATE" ] || { cat "$WORK/perf.log" >&2; die "no steady-state rate in kafka-producer-perf-test's output"; }

# The same file again: refused.
again=$(curl -sS -X POST -T "$CSV" -H 'content-type: text/csv' -H 'Expect:' -o "$WORK/again.json" -w '%{http_code}' "$URL/uploads")

log "so far: validated in ${VALIDATE_S}s ($(awk -v r="$ROWS" -v s="$VALIDATE_S" 'BEGIN { printf "%.0f", r / s }') rows/s), produced in ${PRODUCE_S}s ($(awk -v r="$ROWS" -v s="$PRODUCE_S" 'BEGIN { printf "%.0f", r / s }') rows/s), raw ${RAW_RATE} records/s, VmHWM ${HWM_KB} kB, repeat HTTP $again"

APPLIED_S=""
if [ -n "$CONSUME" ]; then
  log "starting the consumer; waiting for the upload to be applied"
  CONSUMER_STARTED=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ | sed 's/\([0-9]\{6\}\)[0-9]*Z$/\1Z/')
  "$CARGO_TARGET_DIR/release/consumer" >"$WORK/consumer.log" 2>&1 &
  CONSUMER_PID=$!
  poll_status applied
  # From the POST to applied; the consumer starts only once the upload is
  # produced and the perf test done, so its own time is printed apart.
  APPLIED_S=$(seconds_between "$(json_field "$WORK/upload.json" received_at)" "$(json_field "$WORK/upload.json" applied_at)")
  CONSUME_S=$(seconds_between "$CONSUMER_STARTED" "$(json_field "$WORK/upload.json" applied_at)")
  COUNTED=$(psql "$DB_URL" -qtAc "SELECT coalesce(sum(successes + failures), 0) FROM model_states")
fi

awk -v rows="$ROWS" -v bytes="$BYTES" -v v="$VALIDATE_S" -v p="$PRODUCE_S" -v raw="$RAW_RATE" \
    -v hwm="$HWM_KB" -v applied="$APPLIED_S" -v consume="${CONSUME_S:-}" -v counted="${COUNTED:-}" -v again="$again" 'BEGIN {
  vr = rows / v; pr = rows / p
  printf "\nupload: %d rows, %.2f GiB\n", rows, bytes / 1073741824
  printf "validation (POST to 202):  %8.1f s   %12.0f rows/s   %6.1f MiB/s\n", v, vr, bytes / v / 1048576
  printf "produce (to produced):     %8.1f s   %12.0f rows/s\n", p, pr
  printf "raw producer (perf-test):                %12.0f records/s\n", raw
  printf "produce / raw:                           %11.0f%%\n", 100 * pr / raw
  if (applied != "") {
    printf "consumer start to applied: %8.1f s   %12.0f rows/s\n", consume, rows / consume
    printf "POST to applied:           %8.1f s   counted %s of %d trials (includes the perf test before the consumer starts)\n", applied, counted, rows
  }
  printf "producer peak RSS (VmHWM): %8.1f MiB\n", hwm / 1024
  printf "same file again:           HTTP %s\n", again
  printf "\n%-36s %-14s %s\n", "target", "measured", "met"
  printf "%-36s %-14.0f %s\n", "validation >= 1000000 rows/s", vr, (vr >= 1000000 ? "yes" : "NO")
  printf "%-36s %-14s %s\n", "produce >= 50% of raw", sprintf("%.0f%%", 100 * pr / raw), (pr >= raw / 2 ? "yes" : "NO")
  printf "%-36s %-14s %s\n", "same file refused", again, (again == 409 ? "yes" : "NO")
  if (applied != "") printf "%-36s %-14s %s\n", "every row counted once", counted, (counted == rows ? "yes" : "NO")
}'
