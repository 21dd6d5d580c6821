# Helpers sourced by the scripts in scripts/: install what is missing, find or
# start Postgres. Every function prints what it does on stderr.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

APT_UPDATED=""
# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What building the workspace needs (librdkafka is compiled from source).
ensure_build_tools() {
  command -v cargo >/dev/null || die "cargo is missing: install the Rust toolchain (rustup) first"
  local need=()
  command -v cc >/dev/null || need+=(build-essential)
  command -v make >/dev/null || need+=(make)
  command -v perl >/dev/null || need+=(perl)
  command -v pkg-config >/dev/null || need+=(pkg-config)
  command -v curl >/dev/null || need+=(curl)
  # librdkafka is built with the system's OpenSSL (Kafka's TLS and SCRAM).
  [ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
}

# ensure_disk MIB: stops with a clear message unless the filesystem of
# $CARGO_TARGET_DIR has room for a build of MIB mebibytes in all, counting what
# the target directory already holds (a warm one needs little more).
ensure_disk() {
  local want="$1" dir="$CARGO_TARGET_DIR" have=0 free
  while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
  [ -d "$CARGO_TARGET_DIR" ] && have=$(du -sm "$CARGO_TARGET_DIR" | cut -f1)
  free=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
  if [ $((free + have)) -lt "$want" ]; then
    die "not enough disk: the build and test run need about $want MiB in $CARGO_TARGET_DIR (it holds $have MiB, $free MiB free on its filesystem)"
  fi
  log "disk: $free MiB free, the target directory holds $have MiB (about $want MiB needed in all)"
}

# pg_reachable URL: true when a Postgres answers at URL.
pg_reachable() {
  command -v psql >/dev/null || apt_install postgresql-client >/dev/null 2>&1 || return 1
  PGCONNECT_TIMEOUT=3 psql "$1" -qtAc 'select 1' >/dev/null 2>&1
}

# pg_bin NAME: the path of a PostgreSQL server binary, installing the server when absent.
pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$found" ]; then
    apt_install postgresql
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  printf '%s/%s' "$found" "$1"
}

# ensure_postgres_server: the server's binaries (pg_bin) and the postgres
# user they run as when we are root. The TLS tests (platform/tests/tls.rs,
# each service's tests/api/tls.rs) start a TLS-only server of their own with
# them, whichever Postgres DATABASE_URL names.
ensure_postgres_server() {
  pg_bin initdb >/dev/null
  id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
}

# pg_run CMD...: a PostgreSQL server command, as the postgres user when we
# are root (the server refuses to run as root).
pg_run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_cluster_start DIR PORT: starts the Postgres cluster of DIR on
# 127.0.0.1:PORT (trust authentication, user postgres), creating it first
# when DIR holds none; returns once it accepts connections. DIR must be
# reachable by the postgres user, hence the callers keep it under /tmp rather
# than inside the checkout. fsync is off: the data survives the server's
# crash (the kernel has it), not the machine's.
pg_cluster_start() {
  local dir="$1" port="$2" initdb pg_ctl user="postgres"
  ensure_postgres_server
  initdb=$(pg_bin initdb)
  pg_ctl=$(pg_bin pg_ctl)
  mkdir -p "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    [ "$(id -u)" = 0 ] && chown "$user" "$dir"
    pg_run "$initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  pg_run "$pg_ctl" -D "$dir" -l "$dir/server.log" -w -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
}

# pg_cluster_stop DIR [MODE]: stops the cluster of DIR with `pg_ctl stop -m
# MODE`: fast (the default: disconnects clients, then a clean shutdown) or
# immediate (no shutdown at all, as a crash: the next start recovers from
# the write-ahead log).
pg_cluster_stop() {
  local dir="$1" mode="${2:-fast}" pg_ctl
  pg_ctl=$(pg_bin pg_ctl)
  pg_run "$pg_ctl" -D "$dir" -m "$mode" stop >/dev/null
}

# ensure_postgres DIR PORT: exports DATABASE_URL. Uses $DATABASE_URL when it
# answers, else the local server on 127.0.0.1:5432, else starts a throwaway
# cluster in DIR on PORT (pg_cluster_start; stopped by stop_throwaway_postgres).
PG_THROWAWAY=""
ensure_postgres() {
  local dir="$1" port="$2"
  if [ -n "${DATABASE_URL:-}" ] && pg_reachable "$DATABASE_URL"; then
    log "Postgres: using DATABASE_URL"
    return 0
  fi
  local local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if pg_reachable "$local_url"; then
    log "Postgres: using the server on 127.0.0.1:5432"
    export DATABASE_URL="$local_url"
    return 0
  fi
  log "Postgres: starting a throwaway cluster in $dir on port $port"
  pg_cluster_start "$dir" "$port"
  PG_THROWAWAY="$dir"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_throwaway_postgres() {
  [ -n "$PG_THROWAWAY" ] || return 0
  pg_cluster_stop "$PG_THROWAWAY" fast 2>/dev/null || true
}

# port_busy PORT: true when something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# drop_stale_test_databases URL: every test makes its own database and leaves
# it behind for inspection; this drops those an hour old or more (by the time
# in their name, `test_<unix seconds>_<uuid>`), so runs do not pile them up,
# while a run going on beside this one keeps its own.
drop_stale_test_databases() {
  local url="$1" cutoff names
  cutoff=$(( $(date +%s) - 3600 ))
  names=$(psql "$url" -qtAc "SELECT datname FROM pg_database
    WHERE datname ~ '^test_[0-9]{10}_[0-9a-f]{32}\$'
      AND split_part(datname, '_', 2)::bigint < $cutoff") || return 0
  [ -n "$names" ] || return 0
  log "dropping $(wc -l <<<"$names") test databases left by earlier runs"
  while read -r name; do
    PGOPTIONS="--client-min-messages=warning" psql "$url" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null || true
  done <<<"$names"
}

# build_services: the debug binaries of the three services, built by the same
# command as the test suites (`cargo test --workspace`). The two feature sets
# then match: `cargo build -p ... --bins` resolves dependency features
# without the dev-dependencies' and rebuilt sea-orm and more for minutes after
# the suites, when this costs nothing.
build_services() {
  cargo test --workspace --no-run --quiet 2>/dev/null || cargo test --workspace --no-run
}

# bench_example CRATE EXAMPLE [ARGS...]: builds the benchmark example
# EXAMPLE of CRATE (release) and runs it with ARGS, against the Postgres of
# DATABASE_URL, or a throwaway one started here and stopped on exit.
bench_example() {
  local crate="$1" example="$2"
  shift 2
  ensure_build_tools
  ensure_postgres "${TMPDIR:-/tmp}/bayes-bench-postgres" 55434
  trap stop_throwaway_postgres EXIT
  log "building the benchmark (release)"
  cargo build --release -p "$crate" --example "$example" >&2
  "$CARGO_TARGET_DIR/release/examples/$example" "$@"
}
