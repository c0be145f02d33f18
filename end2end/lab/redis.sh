#!/usr/bin/env bash
# Two real Redis 7 replicas (Debian's) as pods behind a Service with sessionAffinity: ClientIP,
# and redis-py clients in a client pod, on one node (tier.sh, db_tier.py). The clients connect
# to the Service's ClusterIP and talk first; kube-proxy's affinity sends all their connections to
# the one replica the first was sent to. Only then does the capture start on the pods' veths
# (podtap joins the connections mid-stream). Each replica's own MONITOR feed (every command, with
# the client's address and port) is the ground truth.
# Writes redis.pcapng, db-cluster.json and logs/POD-monitor.log (one per replica; and the
# client's and dumpcap's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/redis.sh OUTDIR
# Creates only namespaces ptl-rd-* and a directory under /tmp; the root namespace gets no address
# or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: redis.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/tier.sh"
[[ $EUID -eq 0 ]] || { echo "redis: needs root (network namespaces)" >&2; exit 1; }
for tool in ip dumpcap iptables-restore redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "redis: missing $tool (Debian's redis-server, redis-tools)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import redis' || { echo "redis: missing redis-py (Debian's python3-redis)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tier_env redis
DIR=$(mktemp -d /tmp/podtap-redis.XXXXXX)
down() {
  tier_down
  rm -rf "$DIR"
}
trap down EXIT
trap 'exit 130' INT TERM
tier_down
rm -f "$OUT/redis.pcapng" "$OUT"/logs/redis-*
python3 "$LAB/db_tier.py" list >"$OUT/db-cluster.json"

tier_up
servers=($SERVERS) ips=($SERVER_IPS) names=($SERVER_PODS)
for i in "${!servers[@]}"; do
  mkdir -p "$DIR/$i"
  ip netns exec "${servers[$i]}" redis-server --bind "${ips[$i]}" 127.0.0.1 --port 6379 --protected-mode no \
    --save '' --appendonly no --dir "$DIR/$i" >"$OUT/logs/redis-server-$i.log" 2>&1 &
  disown $!  # ended by `down`
done
for i in "${!servers[@]}"; do
  for _ in $(seq 100); do
    ip netns exec "${servers[$i]}" redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  # The ground truth: every command the replica runs, from its own feed (on its loopback, not
  # captured).
  feed="$OUT/logs/${names[$i]}-monitor.log"
  ip netns exec "${servers[$i]}" redis-cli -h 127.0.0.1 monitor >"$feed" 2>&1 &
  disown $!
  for _ in $(seq 100); do grep -q OK "$feed" 2>/dev/null && break; sleep 0.1; done
done

# The clients connect and talk; the capture starts only then.
READY=$DIR/ready GO=$DIR/go
ip netns exec $C /usr/bin/python3 "$LAB/apps/redis_client.py" "$SVC_IP" "$READY" "$GO" 2>"$OUT/logs/redis-client.err" &
CLIENT=$!
for _ in $(seq 300); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "redis: the client did not get ready" >&2; cat "$OUT/logs/redis-client.err" >&2; exit 1; }
tier_capture_start "$OUT/redis.pcapng" "$OUT/logs/redis-dumpcap.err"
touch "$GO"
wait $CLIENT || { echo "redis: the client failed" >&2; cat "$OUT/logs/redis-client.err" >&2; exit 1; }
tier_capture_stop "$OUT/logs/redis-dumpcap.err" redis
# Each feed has every command once its replica is idle: one more, from the loopback, to be sure.
for i in "${!servers[@]}"; do
  feed="$OUT/logs/${names[$i]}-monitor.log"
  ip netns exec "${servers[$i]}" redis-cli -h 127.0.0.1 get end-of-run >/dev/null
  for _ in $(seq 100); do grep -q '"end-of-run"' "$feed" && break; sleep 0.1; done
  echo "redis: ${names[$i]}: $(grep -c "$CLIENT_IP:" "$feed") commands from the clients in its feed"
done
