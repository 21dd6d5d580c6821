#!/usr/bin/env bash
# Apache Kafka's console consumer, as upstream's bin/kafka-console-consumer.sh: every argument is
# passed on unchanged. Runs the jars of scripts/kafka/pom.xml (resolved on
# first use by scripts/lib/kafka.sh), e.g.
#   scripts/kafka-console-consumer.sh --bootstrap-server 127.0.0.1:9092 --topic observations --from-beginning --property print.key=true
set -euo pipefail
source "$(dirname "$0")/lib/kafka.sh"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512M}"
kafka_exec org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
