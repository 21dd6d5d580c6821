# shellcheck shell=bash
# Apache Kafka without Docker: the released jars from Maven Central (resolved
# once by scripts/kafka/pom.xml), run with Java as upstream's bin/*.sh do.
# Sourced by scripts/kafka.sh, the console/perf wrappers and the test scripts.
# Every function prints what it does on stderr.
#
#   ensure_kafka_jars                     Java, Maven and the jars (cached; instant once done)
#   kafka_start NAME DIR PORT CONTROLLER_PORT
#                                         one KRaft node (broker+controller) with its data in
#                                         DIR, on 127.0.0.1:PORT; returns once it answers
#   kafka_cluster_start NAME DIR PORT N   N such nodes (broker+controller each) as one cluster,
#                                         started together (see kafka_cluster_node_start)
#   kafka_stop DIR | kafka_kill DIR       SIGTERM (then SIGKILL after 30 s) | SIGKILL at once
#   kafka_status DIR                      prints the state; true when running
#   kafka_run CLASS ARGS... | kafka_exec CLASS ARGS...
#                                         any Kafka class with the classpath (exec: replaces
#                                         the shell, as upstream's kafka-run-class.sh does)
#   kafka_librdkafka_config FILE          the services' librdkafka options (BAYES__KAFKA__
#                                         LIBRDKAFKA__*, *_FILE too) as a kcat -F file
#
# The tests start their brokers from Rust (test-support's KafkaProcess builds
# the same command lines); these functions are for people and the scripts.
#
# Environment, as upstream's kafka-run-class.sh: KAFKA_HEAP_OPTS,
# KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS; BAYES_KAFKA_HOME (the cache of jars
# and logging configs, default $ROOT/.dev/kafka); KAFKA_START_TIMEOUT (60 s),
# KAFKA_STOP_TIMEOUT (30 s); KAFKA_CDS=off (no class-data sharing
# archives); KAFKA_SERVER_PROPERTIES (lines appended to the
# broker's server.properties, later ones win, e.g. "log.retention.hours=1");
# KAFKA_SERVER_CONFIG (a file of the caller's used instead of the generated
# configuration: it names the listeners, log.dirs and the quorum itself, as
# the compose test does with compose.yaml's settings).

declare -F apt_install >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_POM="$ROOT/scripts/kafka/pom.xml"
# What every node of a cluster adds to its configuration; test-support's
# KafkaCluster reads the same file.
KAFKA_CLUSTER_PROPERTIES="$ROOT/scripts/kafka/cluster.properties"
# What every node adds after its listeners and log.dirs (one node's defaults;
# a cluster's properties win over them); test-support reads the same file.
KAFKA_NODE_PROPERTIES="$ROOT/scripts/kafka/node.properties"
KAFKA_CACHE="${BAYES_KAFKA_HOME:-$ROOT/.dev/kafka}"
KAFKA_LIBS="$KAFKA_CACHE/libs"
# upstream's kafka-run-class.sh defaults
KAFKA_DEFAULT_JVM_OPTS="-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"

# kafka_version: the Kafka version the POM pins.
kafka_version() {
  sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$KAFKA_POM" | head -n 1
}

# ensure_kafka_jars: Java 17+ and Maven (Debian packages) when missing, then
# the jars of scripts/kafka/pom.xml in $KAFKA_LIBS, resolved with Maven (the
# default ~/.m2 repository, so CI caches reuse it). A stamp holding the POM's
# hash skips all of it next time: once installed, nothing is downloaded.
ensure_kafka_jars() {
  local stamp="$KAFKA_CACHE/libs.stamp" want
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  if [ -d "$KAFKA_LIBS" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local need=()
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
  local major
  major=$(java -version 2>&1 | sed -nE 's/.* version "(1\.)?([0-9]+).*/\2/p' | head -n 1)
  [ "${major:-0}" -ge 17 ] || die "Apache Kafka $(kafka_version) needs Java 17 or later; \`java\` is version ${major:-unknown}"

  mkdir -p "$KAFKA_CACHE"
  # One resolve at a time (dev.sh and a test run may start together).
  local lock
  exec {lock}>"$KAFKA_CACHE/.lock"
  flock "$lock"
  if [ -d "$KAFKA_LIBS" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exec {lock}>&-
    return 0
  fi
  log "resolving Apache Kafka $(kafka_version) from Maven Central into $KAFKA_LIBS"
  # Into a fresh folder, then swapped in: an interrupted run leaves nothing
  # half-done, and a version change leaves no old jars on the classpath.
  rm -rf "$KAFKA_LIBS.new"
  if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.new" >"$KAFKA_CACHE/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_CACHE/mvn.log" >&2
    exec {lock}>&-
    die "could not resolve the Kafka jars (Maven's output: $KAFKA_CACHE/mvn.log)"
  fi
  rm -rf "$KAFKA_LIBS"
  rm -f "$KAFKA_CACHE"/*.jsa
  mv "$KAFKA_LIBS.new" "$KAFKA_LIBS"
  printf '%s\n' "$want" >"$stamp"
  exec {lock}>&-
  local jars=("$KAFKA_LIBS"/*.jar)
  log "Apache Kafka $(kafka_version): ${#jars[@]} jars in $KAFKA_LIBS"
}

# Class-data sharing (AppCDS): an archive of the classes a JVM loaded, parsed
# and verified once, mapped by the next JVMs. It cuts the CPU a start costs
# by about 40% (broker: ~9 s -> ~5 s of CPU; a tool: ~4 s -> ~2.5 s wall on
# 2 cores). There are two, "broker" and "tools", per java build, in
# $KAFKA_CACHE (dropped when the jars change). The first JVM run without one
# dumps it when it exits (a few seconds more, once); it is checked and
# adopted then. KAFKA_CDS=off disables it.
_kafka_cds_archive() {
  local java_bin
  java_bin=$(readlink -f "$(command -v java)")
  printf '%s/%s-%s.jsa' "$KAFKA_CACHE" "$1" "$(stat -c %Y "$java_bin")"
}

# The JVM's CDS messages go to stdout by default, which is the console
# consumer's: only errors, and on stderr.
KAFKA_CDS_LOG=("-Xlog:cds*=off" "-Xlog:cds*=error:stderr")

# _kafka_cds_usable ARCHIVE: true when the JVM maps ARCHIVE (0.1 s). A
# truncated archive crashes the JVM (SIGBUS) rather than being ignored.
_kafka_cds_usable() {
  java -Xshare:on "-XX:SharedArchiveFile=$1" -XX:ErrorFile=/dev/null -XX:-CreateCoredumpOnCrash \
    -cp "$KAFKA_LIBS/*" -version >/dev/null 2>&1
}

# _kafka_cds_can_dump: true when the JDK's own (base) archive maps, without
# which -XX:ArchiveClassesAtExit stops the JVM at start-up.
_kafka_cds_can_dump() {
  java -Xshare:on -XX:ErrorFile=/dev/null -XX:-CreateCoredumpOnCrash -version >/dev/null 2>&1
}

# _kafka_cds_adopt FILE NAME: makes FILE (a dump) archive NAME when it is
# usable and there is none yet; removes FILE in any case.
_kafka_cds_adopt() {
  local file="$1" archive tmp
  archive=$(_kafka_cds_archive "$2")
  if [ -s "$file" ] && [ ! -f "$archive" ]; then
    tmp="$archive.$BASHPID.tmp"
    if mv -f "$file" "$tmp" && _kafka_cds_usable "$tmp" && mv -f "$tmp" "$archive"; then
      log "Kafka: saved a class-data sharing archive for the next $2 starts ($archive)"
    fi
    rm -f "$tmp"
  fi
  rm -f "$file"
}

# _kafka_java_cmd CLASS ARGS...: sets KAFKA_CMD to the java command line that
# runs CLASS as a tool, and KAFKA_CDS_DUMP to the file it dumps its
# class-data sharing archive into when there is none yet (else empty).
_kafka_java_cmd() {
  ensure_kafka_jars
  local heap="${KAFKA_HEAP_OPTS:--Xmx256M}" perf="${KAFKA_JVM_PERFORMANCE_OPTS:-$KAFKA_DEFAULT_JVM_OPTS}"
  local cds=() archive
  KAFKA_CDS_DUMP=""
  if [ "${KAFKA_CDS:-on}" != off ]; then
    archive=$(_kafka_cds_archive tools)
    if [ -f "$archive" ]; then
      cds=("-XX:SharedArchiveFile=$archive" "${KAFKA_CDS_LOG[@]}")
    elif _kafka_cds_can_dump; then
      KAFKA_CDS_DUMP="$KAFKA_CACHE/tools.$BASHPID.jsa.dump"
      cds=("-XX:ArchiveClassesAtExit=$KAFKA_CDS_DUMP" "${KAFKA_CDS_LOG[@]}")
    fi
  fi
  # shellcheck disable=SC2206 # option strings split on spaces, as upstream
  KAFKA_CMD=(java $heap $perf "${cds[@]}" "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/tools-log4j2.properties"
             -cp "$KAFKA_LIBS/*" ${KAFKA_OPTS:-} "$@")
}

# kafka_run CLASS ARGS...: runs a Kafka class (a tool) with the classpath.
kafka_run() {
  local KAFKA_CMD KAFKA_CDS_DUMP rc=0
  _kafka_java_cmd "$@"
  "${KAFKA_CMD[@]}" || rc=$?
  [ -z "$KAFKA_CDS_DUMP" ] || _kafka_cds_adopt "$KAFKA_CDS_DUMP" tools
  return "$rc"
}

# kafka_exec CLASS ARGS...: the same, replacing this shell (except the one
# time the class-data sharing archive is made: it is adopted after the exit).
kafka_exec() {
  local KAFKA_CMD KAFKA_CDS_DUMP
  _kafka_java_cmd "$@"
  [ -n "$KAFKA_CDS_DUMP" ] || exec "${KAFKA_CMD[@]}"
  kafka_run "$@"
  exit
}

# _kafka_quick SECONDS CLASS ARGS...: a short-lived tool (kafka-storage
# format), tuned to start fast rather than run fast, killed after SECONDS.
_kafka_quick() {
  local limit="$1" KAFKA_CMD KAFKA_CDS_DUMP; shift
  KAFKA_HEAP_OPTS="-Xmx128M" \
  KAFKA_JVM_PERFORMANCE_OPTS="-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true" \
  KAFKA_OPTS="" KAFKA_CDS=off _kafka_java_cmd "$@"
  timeout "$limit" "${KAFKA_CMD[@]}"
}

# _kafka_pid DIR: prints the pid of the broker whose data is in DIR, when it
# runs (a stale pid file, a pid taken by another process, or a zombie do not count).
_kafka_pid() {
  local dir="$1" pid
  [ -f "$dir/kafka.pid" ] || return 1
  read -r pid <"$dir/kafka.pid" || return 1
  [ -n "$pid" ] && _kafka_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties" || return 1
  printf '%s\n' "$pid"
}

# _kafka_alive PID: true until PID has fully exited. A zombie counts as gone
# (nobody may reap it soon: the broker is not our child), but only once its
# last thread is gone: after SIGKILL the main thread turns zombie while the
# others still hold the sockets.
_kafka_alive() {
  [ -r "/proc/$1/status" ] &&
    awk '/^State:/ { z = ($2 == "Z") } /^Threads:/ { t = $2 } END { exit !(!z || t > 1) }' "/proc/$1/status" 2>/dev/null
}

_kafka_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _kafka_answers PORT: true when a broker on 127.0.0.1:PORT answers a Kafka
# request: an ApiVersions request (v0, correlation id 1, client id "probe"),
# as kafka-broker-api-versions sends, written straight to the socket (a JVM
# would cost a second and a half per probe); the reply must carry correlation
# id 1 and error code 0. A KRaft broker opens its client port only once it is
# unfenced, so an answer means it is ready.
_kafka_answers() {
  local reply
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash
  reply=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05probe" >&3
    head -c 10 <&3 | od -An -tx1' "$1" 2>/dev/null) || return 1
  reply=$(tr -d ' \n' <<<"$reply")
  [ "${reply:8:12}" = 000000010000 ]
}

# _kafka_random_cluster_id: a random UUID in Kafka's form (base64url, 22
# characters), not starting with '-' (kafka-storage random-uuid does the
# same, but costs a JVM).
_kafka_random_cluster_id() {
  local id=-
  while [ "${id#-}" != "$id" ]; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  done
  printf '%s\n' "$id"
}

_kafka_fail() {
  local dir="$1"; shift
  if [ -s "$dir/kafka.out" ]; then printf -- '--- %s\n' "$dir/kafka.out" >&2; tail -n 20 "$dir/kafka.out" >&2; fi
  if [ -s "$dir/server.log" ]; then printf -- '--- %s\n' "$dir/server.log" >&2; tail -n 40 "$dir/server.log" >&2; fi
  die "$*"
}

# kafka_start NAME DIR PORT CONTROLLER_PORT: starts one Apache Kafka node in
# KRaft mode (broker and controller in one process, node 1) listening on
# 127.0.0.1:PORT (clients) and 127.0.0.1:CONTROLLER_PORT (its controller),
# data in DIR/kraft-combined-logs, logs in DIR/server.log. The storage is
# formatted on the first start only, so the data survives restarts and
# crashes. Runs in its own session (a Ctrl-C in the caller's terminal does not
# reach it), pid in DIR/kafka.pid. Returns once the broker answers clients;
# dies, with the end of its logs, when it exits or does not answer within
# $KAFKA_START_TIMEOUT seconds (60). A broker already running in DIR is left as is.
# With KAFKA_SERVER_CONFIG the listeners and the data are that file's: PORT
# is where the broker is asked whether it is ready, and both ports must be free.
kafka_start() {
  [ $# -eq 4 ] || die "usage: kafka_start NAME DIR PORT CONTROLLER_PORT"
  local name="$1" dir="$2" port="$3" cport="$4" pid
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  if pid=$(_kafka_pid "$dir"); then
    log "Kafka $name: already running (pid $pid) in $dir"
    return 0
  fi
  ensure_kafka_jars
  local p
  for p in "$port" "$cport"; do
    _kafka_port_open "$p" && die "Kafka $name: port $p is in use by another process: stop it or pick other ports"
  done

  local data="$dir/kraft-combined-logs"
  local props
  if [ -n "${KAFKA_SERVER_CONFIG:-}" ]; then
    props="$(cat "$KAFKA_SERVER_CONFIG")"$'\n'"${KAFKA_SERVER_PROPERTIES:-}" ||
      die "Kafka $name: cannot read KAFKA_SERVER_CONFIG ($KAFKA_SERVER_CONFIG)"
    # The data is where the caller's configuration says (its first log dir).
    data=$(sed -n 's/^log\.dirs=//p' <<<"$props" | tail -n 1 | cut -d, -f1)
    [ -n "$data" ] || die "Kafka $name: $KAFKA_SERVER_CONFIG sets no log.dirs"
  else
    # A node of a cluster (kafka_cluster_start) names the fixed voters and
    # adds the cluster's settings, which win over the one-node ones.
    local quorum="controller.quorum.bootstrap.servers=127.0.0.1:$cport" cluster=""
    if [ -n "${KAFKA_VOTERS:-}" ]; then
      quorum="controller.quorum.voters=$KAFKA_VOTERS"
      cluster=$(cat "$KAFKA_CLUSTER_PROPERTIES")
    fi
    props=$(cat <<EOF
# Written by scripts/lib/kafka.sh on every start: one KRaft node, broker and
# controller in one process.
process.roles=broker,controller
node.id=${KAFKA_NODE_ID:-1}
$quorum
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$data
$(cat "$KAFKA_NODE_PROPERTIES")
$cluster
${KAFKA_SERVER_PROPERTIES:-}
EOF
    )
  fi
  if [ -f "$data/meta.properties" ]; then
    # The controller's endpoint is written into the metadata log at format time.
    local was
    was=$(sed -n 's/^controller\.quorum\.bootstrap\.servers=//p' "$dir/server.properties" 2>/dev/null)
    [ -z "$was" ] || [ "$was" = "127.0.0.1:$cport" ] ||
      die "Kafka $name: $dir was formatted for the controller at $was, not 127.0.0.1:$cport: use the same ports or another directory"
  fi
  printf '%s\n' "$props" >"$dir/server.properties"

  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id="${KAFKA_CLUSTER_ID:-}"
    [ -n "$cluster_id" ] || cluster_id=$(_kafka_random_cluster_id)
    # A quorum of fixed voters (controller.quorum.voters, as compose.yaml
    # has) is formatted as it is; a dynamic one starts with this node alone.
    local quorum=(--standalone)
    ! grep -q '^controller\.quorum\.voters=' <<<"$props" || quorum=()
    log "Kafka $name: formatting $data (cluster $cluster_id)"
    _kafka_quick 60 kafka.tools.StorageTool format "${quorum[@]}" --ignore-formatted \
      -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
      { cat "$dir/format.log" >&2; die "Kafka $name: formatting $data failed"; }
  fi

  log "Kafka $name: starting Apache Kafka $(kafka_version) on 127.0.0.1:$port (controller :$cport, data in $dir)"
  local heap="${KAFKA_HEAP_OPTS:--Xms256M -Xmx1G}" perf="${KAFKA_JVM_PERFORMANCE_OPTS:-$KAFKA_DEFAULT_JVM_OPTS}"
  local cds=() archive
  rm -f "$dir/broker.jsa"
  if [ "${KAFKA_CDS:-on}" != off ]; then
    archive=$(_kafka_cds_archive broker)
    # Checked at every start (0.1 s): a bad one would crash the broker.
    if [ -f "$archive" ] && ! _kafka_cds_usable "$archive"; then
      log "Kafka $name: dropping an unusable class-data sharing archive ($archive)"
      rm -f "$archive"
    fi
    if [ -f "$archive" ]; then
      cds=("-XX:SharedArchiveFile=$archive" "${KAFKA_CDS_LOG[@]}")
    elif _kafka_cds_can_dump; then
      cds=("-XX:ArchiveClassesAtExit=$dir/broker.jsa" "${KAFKA_CDS_LOG[@]}")
    fi
  fi
  # shellcheck disable=SC2086
  setsid java $heap $perf "${cds[@]}" "-XX:ErrorFile=$dir/hs_err_pid%p.log" ${KAFKA_OPTS:-} \
    "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/server-log4j2.properties" "-Dkafka.logs.dir=$dir" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$dir/kafka.pid"

  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-60}))
  while :; do
    _kafka_alive "$pid" || _kafka_fail "$dir" "Kafka $name: the broker exited during start-up"
    if _kafka_port_open "$port" && _kafka_answers "$port"; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      _kafka_fail "$dir" "Kafka $name: no answer on 127.0.0.1:$port within ${KAFKA_START_TIMEOUT:-60} s (killed it)"
    fi
    sleep 0.2
  done
  log "Kafka $name: ready on 127.0.0.1:$port (pid $pid)"
}

# A cluster of N nodes (kafka_cluster_*): node I (1..N) has its data in
# DIR/node-I, clients on 127.0.0.1:PORT+2(I-1) and its controller on the port
# after it (so node 1 has the one-node ports), the cluster id in
# DIR/cluster.id and scripts/kafka/cluster.properties in its configuration.

# kafka_cluster_bootstrap PORT N: every node's client address, comma-separated.
kafka_cluster_bootstrap() {
  local i list=""
  for ((i = 1; i <= $2; i++)); do list+="${list:+,}127.0.0.1:$(($1 + 2 * (i - 1)))"; done
  printf '%s\n' "$list"
}

# kafka_cluster_node_start NAME DIR PORT N I: starts node I of the cluster
# (formatting it the first time); returns once it answers clients.
kafka_cluster_node_start() {
  local name="$1" dir="$2" port="$3" nodes="$4" node="$5" i voters=""
  mkdir -p "$dir"
  [ -s "$dir/cluster.id" ] || _kafka_random_cluster_id >"$dir/cluster.id"
  for ((i = 1; i <= nodes; i++)); do voters+="${voters:+,}$i@127.0.0.1:$((port + 2 * (i - 1) + 1))"; done
  KAFKA_NODE_ID="$node" KAFKA_VOTERS="$voters" KAFKA_CLUSTER_ID="$(cat "$dir/cluster.id")" \
    kafka_start "$name-$node" "$dir/node-$node" "$((port + 2 * (node - 1)))" "$((port + 2 * (node - 1) + 1))"
}

# kafka_cluster_start NAME DIR PORT N: starts the N nodes together (a voter
# answers clients only once a quorum has elected a leader, so one at a time
# would never finish); returns once every one answers.
kafka_cluster_start() {
  local name="$1" dir="$2" port="$3" nodes="$4" i pids=() failed=0
  ensure_kafka_jars
  mkdir -p "$dir"
  [ -s "$dir/cluster.id" ] || _kafka_random_cluster_id >"$dir/cluster.id"
  for ((i = 1; i <= nodes; i++)); do
    kafka_cluster_node_start "$name" "$dir" "$port" "$nodes" "$i" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  [ "$failed" -eq 0 ] || die "Kafka $name: a node of the cluster did not start (see above)"
  log "Kafka $name: $nodes nodes ready on $(kafka_cluster_bootstrap "$port" "$nodes")"
}

# _kafka_wait_gone PID SECONDS: true once PID is gone, false after SECONDS.
_kafka_wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2))
  while _kafka_alive "$pid"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# kafka_stop DIR: stops the broker of DIR (controlled shutdown on SIGTERM;
# SIGKILL after $KAFKA_STOP_TIMEOUT seconds, 30).
kafka_stop() {
  local dir pid
  dir="$(cd "$1" 2>/dev/null && pwd -P)" || { log "Kafka: $1 does not exist, nothing to stop"; return 0; }
  if ! pid=$(_kafka_pid "$dir"); then
    rm -f "$dir/kafka.pid"
    log "Kafka: not running in $dir"
    return 0
  fi
  log "Kafka: stopping pid $pid ($dir)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! _kafka_wait_gone "$pid" "${KAFKA_STOP_TIMEOUT:-30}"; then
    log "Kafka: pid $pid still running after ${KAFKA_STOP_TIMEOUT:-30} s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    _kafka_wait_gone "$pid" 10 || die "Kafka: pid $pid survives SIGKILL"
    rm -f "$dir/broker.jsa"
  fi
  rm -f "$dir/kafka.pid"
  _kafka_cds_adopt "$dir/broker.jsa" broker
}

# kafka_kill DIR: SIGKILL, as a crash would (for tests of recovery).
kafka_kill() {
  local dir pid
  dir="$(cd "$1" 2>/dev/null && pwd -P)" || return 0
  pid=$(_kafka_pid "$dir") || { log "Kafka: not running in $dir"; return 0; }
  log "Kafka: killing pid $pid ($dir)"
  kill -KILL "$pid" 2>/dev/null || true
  _kafka_wait_gone "$pid" 10 || die "Kafka: pid $pid survives SIGKILL"
  rm -f "$dir/kafka.pid" "$dir/broker.jsa"
}

# kafka_librdkafka_config FILE: writes the librdkafka options the services
# read from the environment (BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD=...,
# or ..._FILE=/run/secrets/...) to FILE as `key=value` lines in librdkafka's
# spelling, for `kcat -F FILE`: so kcat reaches the broker as the services do.
# FILE is readable by its owner only (it may hold a password); empty when
# no option is set.
kafka_librdkafka_config() {
  local file="$1" name key value
  (umask 077 && : >"$file")
  while IFS= read -r name; do
    key="${name#BAYES__KAFKA__LIBRDKAFKA__}"
    if [ "${key%_FILE}" != "$key" ]; then
      key="${key%_FILE}"
      value=$(cat "${!name}") || die "$name: cannot read ${!name}"
    else
      value="${!name}"
    fi
    key=$(tr 'A-Z_' 'a-z.' <<<"$key")
    printf '%s=%s\n' "$key" "$value" >>"$file"
  done < <(compgen -e | grep '^BAYES__KAFKA__LIBRDKAFKA__' || true)
}

# kafka_status DIR: prints whether the broker of DIR runs; true when it does.
kafka_status() {
  local dir pid listeners
  dir="$(cd "$1" 2>/dev/null && pwd -P)" || { echo "stopped (no $1)"; return 1; }
  if pid=$(_kafka_pid "$dir"); then
    listeners=$(sed -n 's/^listeners=//p' "$dir/server.properties")
    echo "running: pid $pid, $listeners, data in $dir"
  else
    echo "stopped (data in $dir)"
    return 1
  fi
}
