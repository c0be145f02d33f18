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
source "$LAB/kafka-broker.sh"
[[ $EUID -eq 0 ]] || { echo "kafka: needs root (network namespaces)" >&2; exit 1; }
for tool in ip tcpdump java mvn; do
  command -v "$tool" >/dev/null || { echo "kafka: missing $tool (a JDK 17 and Maven)" >&2; exit 1; }
done
kafka_jars "$LAB"
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
kafka_broker $S $BROKER "$DIR" "$OUT/logs"

# The clients connect and talk; the capture starts only then.
READY=$DIR/ready GO=$DIR/go
kafka_java $C "$OUT/logs" "$LAB/apps/KafkaLab.java" $BROKER "$READY" "$GO" >"$OUT/logs/kafka-client.log" 2>&1 &
CLIENT=$!
for _ in $(seq 600); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "kafka: the client did not get ready" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
capture_start $C "$OUT/kafka.pcap" "$OUT/logs/kafka-tcpdump.err"
touch "$GO"
wait $CLIENT || { echo "kafka: the client failed" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
capture_stop $C "$OUT/logs/kafka-tcpdump.err" kafka
echo "kafka: $(grep -c '"connection":"10.251.5.2:9092-10.251.5.1:' "$OUT/logs/kafka-requests.log") requests from the clients in the broker's log"
