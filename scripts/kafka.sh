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
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"

DIR="${KAFKA_DATA_DIR:-$ROOT/.dev/kafka-data}"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    --port) PORT="${2:?--port needs a port}"; shift 2 ;;
    --controller-port) CPORT="${2:?--controller-port needs a port}"; shift 2 ;;
    -h|--help|help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (try --help)" ;;
    *) break ;;
  esac
done
CPORT="${CPORT:-$((PORT + 1))}"
[ $# -gt 0 ] || { sed -n '2,21p' "$0"; exit 2; }
cmd="$1"; shift
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
