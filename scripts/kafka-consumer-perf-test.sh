#!/usr/bin/env bash
# Apache Kafka's consumer performance test, as upstream's bin/kafka-consumer-perf-test.sh: every argument is
# passed on unchanged. Runs the jars of scripts/kafka/pom.xml (resolved on
# first use by scripts/lib/kafka.sh), e.g.
#   scripts/kafka-consumer-perf-test.sh --bootstrap-server 127.0.0.1:9092 --topic perf --messages 200000
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512M}"
kafka_exec org.apache.kafka.tools.ConsumerPerformance "$@"
