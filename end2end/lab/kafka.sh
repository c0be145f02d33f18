#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, from Maven Central: end2end/lab/kafka/pom.xml) as a pod behind
# a Service and Kafka's own Java clients (apps/KafkaLab.java) in a client pod, on one node (tier.sh,
# db_tier.py). The clients bootstrap through the Service's ClusterIP, then reach the broker at the
# address it advertises, its pod's, as Kafka clients in a cluster do. The producer connects and
# sends first; only then does the capture start on the pods' veths (podtap joins that connection
# mid-stream). The broker's request log (kafka.request.logger at TRACE: every request it
# completed, header, body and response as JSON) is the ground truth. Writes kafka.pcapng,
# db-cluster.json and logs/kafka-*.log to OUTDIR.
#
# usage: sudo end2end/lab/kafka.sh OUTDIR
# The broker's jars are fetched once into ${KAFKA_LIB:-~/.cache/podtap/kafka-4.1.1/lib} (about
# 45 MB, half a minute). Creates only namespaces ptl-kf-* and a directory under /tmp; the root
# namespace gets no address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: kafka.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/tier.sh"
source "$LAB/kafka-broker.sh"
[[ $EUID -eq 0 ]] || { echo "kafka: needs root (network namespaces)" >&2; exit 1; }
for tool in ip dumpcap iptables-restore java mvn; do
  command -v "$tool" >/dev/null || { echo "kafka: missing $tool (a JDK 17 and Maven)" >&2; exit 1; }
done
kafka_jars "$LAB"
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tier_env kafka
S=$SERVERS
DIR=$(mktemp -d /tmp/podtap-kafka.XXXXXX)
down() {
  tier_down
  rm -rf "$DIR"
}
trap down EXIT
trap 'exit 130' INT TERM
tier_down
rm -f "$OUT/kafka.pcapng" "$OUT"/logs/kafka-*

python3 "$LAB/db_tier.py" list >"$OUT/db-cluster.json"
tier_up
kafka_broker $S "$SERVER_IPS:$SVC_PORT" "$DIR" "$OUT/logs"

# The clients connect and talk; the capture starts only then.
READY=$DIR/ready GO=$DIR/go
kafka_java $C "$OUT/logs" "$LAB/apps/KafkaLab.java" "$SVC_IP:$SVC_PORT" "$READY" "$GO" >"$OUT/logs/kafka-client.log" 2>&1 &
CLIENT=$!
for _ in $(seq 600); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "kafka: the client did not get ready" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
tier_capture_start "$OUT/kafka.pcapng" "$OUT/logs/kafka-dumpcap.err"
touch "$GO"
wait $CLIENT || { echo "kafka: the client failed" >&2; cat "$OUT/logs/kafka-client.log" >&2; exit 1; }
tier_capture_stop "$OUT/logs/kafka-dumpcap.err" kafka
echo "kafka: $(grep -c "\"connection\":\"$SERVER_IPS:$SVC_PORT-$CLIENT_IP:" "$OUT/logs/kafka-requests.log") requests from the clients in the broker's log"
