#!/usr/bin/env bash
# The development Apache Kafka broker, without Docker: one KRaft node from the
# released jars (scripts/kafka/pom.xml, resolved once into .dev/kafka), on
# 127.0.0.1:9092 (controller 127.0.0.1:9093), data in .dev/kafka-data (kept
# across restarts and crashes).
#
#   scripts/kafka.sh start          start it (formats the storage the first time); returns once it answers
#   scripts/kafka.sh stop           controlled shutdown (SIGKILL after 30 s)
#   scripts/kafka.sh restart
#   scripts/kafka.sh status         exit status 0 when running
#   scripts/kafka.sh kill           SIGKILL, as a crash would
#   scripts/kafka.sh topics ARGS... kafka-topics (--bootstrap-server added unless given), e.g.
#                                   topics --create --topic observations --partitions 4
#   scripts/kafka.sh logs [-f]      the end of its server.log (-f: follow)
#   scripts/kafka.sh run CLASS ARGS... any Kafka class with the classpath
#   scripts/kafka.sh install        only resolve the jars (Java and Maven installed when missing)
#
# Another instance (tests): --dir DIR, --port PORT, --controller-port PORT
# before the command, or KAFKA_DATA_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT
# (default PORT+1), e.g. scripts/kafka.sh --dir /tmp/k2 --port 19092 start.
# The console clients and perf tests: scripts/kafka-console-producer.sh and friends.
#
# A 3-node cluster: --nodes 3 (or KAFKA_NODES=3) before the command. Node I
# listens on 127.0.0.1:PORT+2(I-1) (9092, 9094, 9096; controllers on the port
# after each), data in DIR/node-I (default .dev/kafka-cluster), replication
# factor 3 and min.insync.replicas=2 (scripts/kafka/cluster.properties, see
# docs/operations.md, "Running a cluster"). start starts all nodes together;
# restart is a rolling restart (one node at a time, each back before the
# next); stop, kill and status act on every node, or on one with --node I:
#   scripts/kafka.sh --nodes 3 start
#   scripts/kafka.sh --nodes 3 --node 2 kill      (a crash of node 2)
#   scripts/kafka.sh --nodes 3 --node 2 start     (and it is back)
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"

DIR="${KAFKA_DATA_DIR:-}"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-}"
NODES="${KAFKA_NODES:-1}"
NODE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    --port) PORT="${2:?--port needs a port}"; shift 2 ;;
    --controller-port) CPORT="${2:?--controller-port needs a port}"; shift 2 ;;
    --nodes) NODES="${2:?--nodes needs a number}"; shift 2 ;;
    --node) NODE="${2:?--node needs a node id}"; shift 2 ;;
    -h|--help|help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
    *) break ;;
  esac
done
CPORT="${CPORT:-$((PORT + 1))}"
[ $# -gt 0 ] || { sed -n '2,32p' "$0"; exit 2; }
cmd="$1"; shift
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "--nodes needs a positive number, not $NODES"

if [ "$NODES" -gt 1 ]; then
  [ "$CPORT" = "$((PORT + 1))" ] || die "--controller-port is for one node: a cluster's controllers follow each node's port"
  DIR="${DIR:-$ROOT/.dev/kafka-cluster}"
  NAME=cluster
  [ "$DIR" = "$ROOT/.dev/kafka-cluster" ] || NAME="$(basename "$DIR")"
  if [ -n "$NODE" ]; then
    [[ "$NODE" =~ ^[0-9]+$ ]] && [ "$NODE" -ge 1 ] && [ "$NODE" -le "$NODES" ] || die "--node must be between 1 and $NODES"
    ids=("$NODE")
  else
    ids=($(seq 1 "$NODES"))
  fi
  case "$cmd" in
    start)
      if [ -n "$NODE" ]; then kafka_cluster_node_start "$NAME" "$DIR" "$PORT" "$NODES" "$NODE"
      else kafka_cluster_start "$NAME" "$DIR" "$PORT" "$NODES"; fi
      ;;
    stop)
      # All together: one at a time, the last node's controlled shutdown
      # waits for a quorum that is gone (30 s, then SIGKILL).
      pids=()
      for i in "${ids[@]}"; do kafka_stop "$DIR/node-$i" & pids+=($!); done
      for pid in "${pids[@]}"; do wait "$pid"; done
      ;;
    kill) for i in "${ids[@]}"; do kafka_kill "$DIR/node-$i"; done ;;
    restart)
      # One at a time: each node answers again before the next one stops.
      for i in "${ids[@]}"; do
        kafka_stop "$DIR/node-$i"
        kafka_cluster_node_start "$NAME" "$DIR" "$PORT" "$NODES" "$i"
      done
      ;;
    status)
      rc=0
      for i in "${ids[@]}"; do printf 'node %s: ' "$i"; kafka_status "$DIR/node-$i" || rc=1; done
      exit "$rc"
      ;;
    topics)
      extra=(--bootstrap-server "$(kafka_cluster_bootstrap "$PORT" "$NODES")")
      for arg in "$@"; do
        case "$arg" in --bootstrap-server|--bootstrap-server=*|--bootstrap-controller|--bootstrap-controller=*) extra=() ;; esac
      done
      KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256M}" kafka_exec org.apache.kafka.tools.TopicCommand "${extra[@]}" "$@"
      ;;
    logs)
      log_dir="$DIR/node-${NODE:-1}"
      [ -f "$log_dir/server.log" ] || die "no log yet: $log_dir/server.log"
      if [ "${1:-}" = -f ]; then exec tail -n 50 -F "$log_dir/server.log"; else exec tail -n 100 "$log_dir/server.log"; fi
      ;;
    run) [ $# -gt 0 ] || die "usage: $0 run CLASS ARGS..."; kafka_exec "$@" ;;
    install) ensure_kafka_jars ;;
    *) die "unknown command $cmd (try --help)" ;;
  esac
  exit 0
fi

[ -z "$NODE" ] || die "--node is for a cluster: give --nodes too"
DIR="${DIR:-$ROOT/.dev/kafka-data}"
NAME=dev
[ "$DIR" = "$ROOT/.dev/kafka-data" ] || NAME="$(basename "$DIR")"

case "$cmd" in
  start) kafka_start "$NAME" "$DIR" "$PORT" "$CPORT" ;;
  stop) kafka_stop "$DIR" ;;
  restart) kafka_stop "$DIR"; kafka_start "$NAME" "$DIR" "$PORT" "$CPORT" ;;
  status) kafka_status "$DIR" ;;
  kill) kafka_kill "$DIR" ;;
  install) ensure_kafka_jars ;;
  topics)
    extra=(--bootstrap-server "127.0.0.1:$PORT")
    for arg in "$@"; do
      case "$arg" in --bootstrap-server|--bootstrap-server=*|--bootstrap-controller|--bootstrap-controller=*) extra=() ;; esac
    done
    KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256M}" kafka_exec org.apache.kafka.tools.TopicCommand "${extra[@]}" "$@"
    ;;
  logs)
    [ -f "$DIR/server.log" ] || die "no log yet: $DIR/server.log"
    if [ "${1:-}" = -f ]; then exec tail -n 50 -F "$DIR/server.log"; else exec tail -n 100 "$DIR/server.log"; fi
    ;;
  run) [ $# -gt 0 ] || die "usage: $0 run CLASS ARGS..."; kafka_exec "$@" ;;
  *) die "unknown command $cmd (try --help)" ;;
esac
