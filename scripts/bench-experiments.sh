#!/usr/bin/env bash
# Benchmarks the experiment routes: GET /experiments/{id} and POST
# /experiments/{id}/assignments (new units, and units assigned before), each
# next to GET /healthz measured just before it, steady and while a commit
# lands on an arm every 50 ms. Builds the example
# model-service/examples/bench-experiments.rs (see its header).
#
# Usage: scripts/bench-experiments.sh [--connections N] [--seconds S] [--max-requests N]
# Targets: the experiment >= 40 % of /healthz with p99 < 5 ms; assignments
# >= 25 % with p99 < 10 ms.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
bench_example model-service bench-experiments "$@"
