#!/usr/bin/env bash
# Benchmarks the model service: answers/s, p50 and p99 of GET
# /models/{id}/posterior and the cached GET /models/{id}/posterior.png, each
# next to GET /healthz measured just before it, steady and while a commit
# lands every 50 ms, with how long a commit takes to show; then uncached PNGs
# and a cold 800x600 render. Builds the example
# model-service/examples/bench-model-service.rs (see its header).
#
# Usage: scripts/bench-model-service.sh [--connections N] [--seconds S] [--max-requests N]
# Targets: each route >= 50 % of /healthz with p99 < 5 ms.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
bench_example model-service bench-model-service "$@"
