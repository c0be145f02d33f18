#!/bin/sh
# An Apache Kafka broker (KRaft, one node that is broker and controller; the jars in LIB, fetched
# from Maven Central by end2end/lab/kafka.sh) as the lab's pods run it: its data and logs in
# LOGDIR, among them kafka-requests.log (kafka.request.logger at TRACE: every request it
# completed, the ground truth). It listens on every address and advertises the pod's own
# (POD_IP), as a StatefulSet's brokers do: clients bootstrap through the Service, then talk to
# the pod. The controller's listener is on the pod's loopback. The pod's SIGTERM reaches the JVM
# (the lab's node signals the pod's process group); `cluster down` removes LOGDIR with the lab's
# directory.
#
# usage: POD_IP=… kafka_pod.sh LOGDIR LIB
set -eu
LOGDIR=$1 LIB=$2
LAB=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
. "$LAB/kafka/server-properties.sh"
kafka_properties 0.0.0.0:9092 "$POD_IP:9092" "$LOGDIR/data" >"$LOGDIR/server.properties"
jvm() {
  java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$LOGDIR" -cp "$LIB/*" "$@"
}
jvm kafka.tools.StorageTool format -t "$(jvm kafka.tools.StorageTool random-uuid)" -c "$LOGDIR/server.properties" \
  >"$LOGDIR/format.log" 2>&1
exec java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$LOGDIR" -cp "$LIB/*" \
  kafka.Kafka "$LOGDIR/server.properties"
