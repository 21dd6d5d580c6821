#!/usr/bin/env bash
# Checks the live dashboard in headless Chromium and saves a screenshot:
# installs Debian's chromium and chromium-driver (chromedriver, which the
# test drives over WebDriver) when missing, then runs the API test that loads
# the page, publishes observations through the consumer's store function,
# waits for the page to show the new numbers by itself (server-sent events)
# and writes target/dashboard.png.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_build_tools
apt_install chromium chromium-driver
ensure_postgres "${TMPDIR:-/tmp}/bayes-test-postgres" 55432
trap stop_throwaway_postgres EXIT

test_name="dashboard::the_dashboard_in_headless_chromium_shows_new_data_live"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p model-service --test api --no-capture -E "test(=$test_name)"
else
  cargo test -p model-service --test api -- --exact "$test_name" --nocapture
fi
log "screenshot: $CARGO_TARGET_DIR/dashboard.png"
