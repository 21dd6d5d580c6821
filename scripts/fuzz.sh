#!/usr/bin/env bash
# Fuzzes both HTTP services from openapi.json with schemathesis, with all of
# its checks: no 5xx, every response as the schema describes it (status,
# content type, headers, body), every request the schema allows accepted and
# every request it forbids rejected. Fails on any failure.
#
# It starts the producer, the consumer and the model service (built binaries)
# on free ports against $DATABASE_URL (a fresh database, dropped at the end)
# and $KAFKA_BROKERS (a fresh topic), as scripts/test.sh provides them; the
# consumer folds what the producer's fuzzing wrote into the database, so the
# model service is fuzzed with models that have data. Schemathesis comes
# from PyPI into a virtual environment in .dev/schemathesis.
#
# Bounded and repeatable: a fixed seed, FUZZ_EXAMPLES test cases per
# operation and phase (default 25), FUZZ_TIMEOUT seconds per service
# (default 300; a run here takes about 120, longer on a loaded machine).
# GET /events is left out: it is a stream that never ends. The consumer's
# admin server has no schema beyond health and metrics, so
# it is not fuzzed. scripts/fuzz/hooks.py states the rules that
# compare two values of one request, which JSON Schema cannot express.
#
# Both services run with keys (auth.required on, as compose.yaml runs them;
# models.auto_create stays on, so that generated observations are
# accepted): every request carries the bootstrap admin key,
# which holds every scope, and schemathesis's `ignored_auth` check sends
# each operation without it too, which must be refused. The keys' own
# routes (/keys) are fuzzed with the rest.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

SCHEMATHESIS_VERSION="4.32.5"
EXAMPLES="${FUZZ_EXAMPLES:-25}"
TIMEOUT="${FUZZ_TIMEOUT:-300}"
SEED="${FUZZ_SEED:-20261201}"

[ -n "${DATABASE_URL:-}" ] || die "DATABASE_URL is not set: run scripts/test.sh, or point it at a Postgres"
[ -n "${KAFKA_BROKERS:-}" ] || die "KAFKA_BROKERS is not set: run scripts/test.sh, or point it at a Kafka broker"

# ensure_schemathesis: the pinned schemathesis in .dev/schemathesis.
VENV="$ROOT/.dev/schemathesis"
ensure_schemathesis() {
  if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3
  # Debian's python3 has no venv module until python3-venv is installed.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}
ensure_schemathesis

log "building the services"
build_services
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bayes-fuzz.XXXXXX")
# Copies: other builds in a shared target directory may replace the binaries
# while they run.
for bin in producer model-service consumer; do
  cp "$CARGO_TARGET_DIR/debug/$bin" "$WORK/"
done

# A name that drop_stale_test_databases recognises, should this run be killed.
DB="test_$(date +%s)_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
psql "$DATABASE_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$DB")

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PGOPTIONS="--client-min-messages=warning" psql "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PRODUCER_PORT=$(free_port)
MODEL_PORT=$(free_port)
ADMIN_PORT=$(free_port)
RUN_ID="fuzz-$(date +%s)-$$"

export BAYES__DATABASE__URL="$DB_URL"
export BAYES__KAFKA__BROKERS="$KAFKA_BROKERS"
export BAYES__KAFKA__TOPIC="$RUN_ID"
export BAYES__KAFKA__DLQ_TOPIC="$RUN_ID.dlq"
export BAYES__CONSUMER__GROUP_ID="$RUN_ID"
export BAYES__DATABASE__NOTIFY_CHANNEL="${RUN_ID//-/_}"
export BAYES__PRODUCER__PORT="$PRODUCER_PORT"
export BAYES__MODEL_SERVICE__PORT="$MODEL_PORT"
export BAYES__CONSUMER__ADMIN_PORT="$ADMIN_PORT"
export BAYES__TELEMETRY__LOG_FILTER="${FUZZ_LOG:-warn}"
FUZZ_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export BAYES__AUTH__REQUIRED=true
export BAYES__AUTH__BOOTSTRAP_ADMIN_KEY="$FUZZ_KEY"
export BAYES__AUTH__NOTIFY_CHANNEL="${RUN_ID//-/_}_keys"

start() {
  local name="$1"
  "$WORK/$name" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}
# ready NAME PORT: waits up to 60 s for /readyz to answer 200.
ready() {
  local name="$1" port="$2" deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$WORK/$name.log" >&2
      die "$name did not become ready on port $port within 60 s"
    fi
    sleep 0.2
  done
}
start model-service
start consumer
start producer
ready model-service "$MODEL_PORT"
ready consumer "$ADMIN_PORT"
ready producer "$PRODUCER_PORT"

# fuzz NAME PORT PATH-REGEX: runs schemathesis on the operations of one service.
FAILED=""
fuzz() {
  local name="$1" port="$2" paths="$3"
  log "fuzzing the $name (port $port): $EXAMPLES examples per operation, seed $SEED"
  local rc=0
  PYTHONPATH="$ROOT/scripts/fuzz" SCHEMATHESIS_HOOKS=hooks timeout "$TIMEOUT" \
    "$VENV/bin/schemathesis" --config-file scripts/fuzz/schemathesis.toml run openapi.json \
      --url "http://127.0.0.1:$port" \
      --header "Authorization: Bearer $FUZZ_KEY" \
      --include-path-regex "$paths" \
      --exclude-path /events \
      --checks all \
      --max-examples "$EXAMPLES" \
      --seed "$SEED" \
      --workers 1 \
      --generation-database none \
      --request-timeout 30 \
      --no-color || rc=$?
  [ "$rc" -eq 0 ] && return 0
  if [ "$rc" -eq 124 ]; then
    # Not a finding, but not a pass either: some phase never ran.
    FAILED="$FAILED $name (timed out after $TIMEOUT s: raise FUZZ_TIMEOUT on a slow machine)"
  else
    FAILED="$FAILED $name"
  fi
  log "the $name's log:"
  tail -n 40 "$WORK/$name.log" >&2
}
fuzz producer "$PRODUCER_PORT" '^/(observations|update_model/|uploads|healthz$|readyz$|metrics$)'
fuzz model-service "$MODEL_PORT" '^/(posterior$|models|compare$|experiments|keys|healthz$|readyz$|metrics$|openapi\.json$|$)'

[ -z "$FAILED" ] || die "fuzzing found failures in:$FAILED"
log "fuzzing found nothing"
