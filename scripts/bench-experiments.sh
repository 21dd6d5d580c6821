#!/usr/bin/env bash
# Benchmarks the experiment routes: GET /experiments/{id} (steady and while
# the arms change) and POST /experiments/{id}/assignments, next to GET
# /healthz (the HTTP ceiling) in the same run. Builds the example
# model-service/examples/bench-experiments.rs (see its header).
#
# Usage: scripts/bench-experiments.sh [--connections N] [--seconds S]
# Targets on a 2-core machine: 5 000 answers/s with p99 < 20 ms; 5 000
# assignments/s.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
bench_example model-service bench-experiments "$@"
