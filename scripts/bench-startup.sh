#!/usr/bin/env bash
# Benchmarks the model service's start-up and memory with many models: the
# time from spawning the release binary to GET /readyz 200, and its VmRSS and
# VmHWM once ready and after reading every model once, with N models and
# with an empty database in the same run. Builds the binary and the example
# model-service/examples/bench-startup.rs (see its header).
#
# Usage: scripts/bench-startup.sh [--models N]   (N defaults to 100 000)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
ensure_build_tools
log "building the model service (release)"
cargo build --release -p model-service --bin model-service >&2
bench_example model-service bench-startup "$@"
