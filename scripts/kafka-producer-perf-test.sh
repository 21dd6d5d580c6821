#!/usr/bin/env bash
# Apache Kafka's producer performance test, as upstream's bin/kafka-producer-perf-test.sh: every argument is
# passed on unchanged. Runs the jars of scripts/kafka/pom.xml (resolved on
# first use by scripts/lib/kafka.sh), e.g.
#   scripts/kafka-producer-perf-test.sh --topic perf --num-records 200000 --record-size 100 --throughput -1 --producer-props bootstrap.servers=127.0.0.1:9092
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512M}"
kafka_exec org.apache.kafka.tools.ProducerPerformance "$@"
