#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, from Maven Central: end2end/lab/kafka/pom.xml) in one network
# namespace and Kafka's own Java clients (apps/KafkaLab.java) in another, joined by a veth as a pod
# and its broker are. The producer connects and sends first; only then does tcpdump start on the
# client's interface (podtap joins that connection mid-stream). The broker's request log
# (kafka.request.logger at TRACE: every request it completed, header, body and response as JSON)
# is the ground truth. Writes kafka.pcap and logs/kafka-*.log to OUTDIR.
#
# usage: sudo end2end/lab/kafka.sh OUTDIR
# The broker's jars are fetched once into ${KAFKA_LIB:-~/.cache/podtap/kafka-4.1.1/lib} (about
# 45 MB, half a minute). Creates only namespaces ptl-kf-c and ptl-kf-s and a directory under /tmp;
# the root namespace gets no address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: kafka.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/pair.sh"
[[ $EUID -eq 0 ]] || { echo "kafka: needs root (network namespaces)" >&2; exit 1; }
for tool in ip tcpdump java mvn; do
  command -v "$tool" >/dev/null || { echo "kafka: missing $tool (a JDK 17 and Maven)" >&2; exit 1; }
done
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$LAB/kafka/pom.xml")
LIB=${KAFKA_LIB:-${XDG_CACHE_HOME:-$HOME/.cache}/podtap/kafka-$VERSION/lib}
if [[ ! -e $LIB/.complete ]]; then
  echo "kafka: fetching Apache Kafka $VERSION's jars from Maven Central into $LIB"
  rm -rf "$LIB"
  mvn -q -B -f "$LAB/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$LIB" -DincludeScope=runtime
  touch "$LIB/.complete"
fi
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-kf-c S=ptl-kf-s
DIR=$(mktemp -d /tmp/podtap-kafka.XXXXXX)
down() {
  pair_down $C $S
  rm -rf "$DIR"
}
trap down EXIT
trap 'exit 130' INT TERM
pair_down $C $S
rm -f "$OUT/kafka.pcap" "$OUT"/logs/kafka-*

pair_up $C $S 10.251.5
BROKER=10.251.5.2:9092
java_in() {  # NS ARGS…: the JDK with the broker's jars and the lab's log4j2 configuration
  local ns=$1
  shift
  ip netns exec "$ns" java -Xmx512m -Dlog4j2.configurationFile="$LAB/kafka/log4j2.xml" -Dlab.logs="$OUT/logs" \
    -cp "$LIB/*" "$@"
}

# One node that is broker and controller (KRaft); the controller's listener on the server's
# loopback, not captured. No topic is made unless asked.
cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://$BROKER,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$BROKER
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
java_in $S kafka.tools.StorageTool format -t "$(java_in $S kafka.tools.StorageTool random-uuid)" \
  -c "$DIR/server.properties" >"$OUT/logs/kafka-format.log" 2>&1
java_in $S kafka.Kafka "$DIR/server.properties" >"$OUT/logs/kafka-stdout.log" 2>&1 &
disown $!  # ended by `down`
for _ in $(seq 600); do grep -q "Kafka Server started" "$OUT/logs/kafka-server.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Kafka Server started" "$OUT/logs/kafka-server.log" || { echo "kafka: the broker did not start" >&2; tail -20 "$OUT/logs/kafka-server.log" >&2; exit 1; }

# The clients connect and talk; the capture starts only then.
READY=$DIR/ready GO=$DIR/go
java_in $C "$LAB/apps/KafkaLab.java" $BROKER "$READY" "$GO" >"$OUT/logs/kafka-client.log" 2>&1 &
CLIENT=$!
for _ in $(seq 600); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "kafka: the client did not get ready" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
capture_start $C "$OUT/kafka.pcap" "$OUT/logs/kafka-tcpdump.err"
touch "$GO"
wait $CLIENT || { echo "kafka: the client failed" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
capture_stop $C "$OUT/logs/kafka-tcpdump.err" kafka
echo "kafka: $(grep -c '"connection":"10.251.5.2:9092-10.251.5.1:' "$OUT/logs/kafka-requests.log") requests from the clients in the broker's log"
