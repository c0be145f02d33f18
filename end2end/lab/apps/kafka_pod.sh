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
cat >"$LOGDIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$POD_IP:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$LOGDIR/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
jvm() {
  java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$LOGDIR" -cp "$LIB/*" "$@"
}
jvm kafka.tools.StorageTool format -t "$(jvm kafka.tools.StorageTool random-uuid)" -c "$LOGDIR/server.properties" \
  >"$LOGDIR/format.log" 2>&1
exec java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$LOGDIR" -cp "$LIB/*" \
  kafka.Kafka "$LOGDIR/server.properties"
