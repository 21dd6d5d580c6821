#!/usr/bin/env bash
# Prints how long one posterior query (posterior + summaries + display grid)
# takes, for G = 1000 and G = 100000. Targets: < 50 µs and < 5 ms.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
ensure_build_tools
cargo run --quiet --release -p domain --example bench-engine
