#!/usr/bin/env bash
# Probes the HTTP services' limits as a careless or hostile client would and
# prints what each holds before, at the peak and after (resident memory, open
# files, /metrics size): /events streams from one client and from a hundred,
# thousands of silent connections, tens of thousands of invented methods.
# Builds the services as scripts/test.sh does (debug) and runs the example
# system-tests/examples/probe-limits.rs against a fresh database; no broker.
#
# Usage: scripts/probe-limits.sh [--streams N] [--idle N] [--methods N] [--rounds N]
# (3 rounds by default: what a service keeps after one must not grow with the next)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_build_tools
ensure_postgres "${TMPDIR:-/tmp}/bayes-probe-postgres" 55435
trap stop_throwaway_postgres EXIT

log "building the services and the probe"
build_services
"$CARGO_TARGET_DIR/debug/examples/probe-limits" "$@"
