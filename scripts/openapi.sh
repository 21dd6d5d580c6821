#!/usr/bin/env bash
# Regenerates openapi.json from the code of both HTTP services.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
UPDATE_OPENAPI=1 cargo test --quiet -p system-tests --test system openapi::
log "wrote openapi.json"
