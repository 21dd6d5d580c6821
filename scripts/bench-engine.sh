#!/usr/bin/env bash
# Prints how long one posterior query (posterior + summaries + display grid)
# takes, for G = 1000 and G = 100000 (targets: < 50 µs and < 5 ms), then how
# long one experiment's figures take (P(best), expected loss, uplift, ROPE)
# for 2, 10 and 20 arms at 10^4 to 10^9 trials per arm (targets: < 1 ms up
# to 10 arms, < 3 ms for 20), next to a 10^6-draw Monte Carlo run of the
# same figures and its largest error; then the poisson and normal families'
# experiments at 2, 3 and 10 arms (target: < 1 ms for 10 arms).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"
ensure_build_tools
cargo run --quiet --release -p domain --example bench-engine
cargo run --quiet --release -p domain --example bench-experiment
cargo run --quiet --release -p domain --example bench-families
