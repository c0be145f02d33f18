#!/usr/bin/env bash
# A real Redis 7 (Debian's) in one network namespace and redis-py clients in another, joined by a
# veth as a pod and its cache are. The clients connect and talk first; only then does tcpdump
# start on the client's interface (podtap joins their connections mid-stream). The server's own
# MONITOR feed (every command, with the client's address and port) is the ground truth.
# Writes redis.pcap and logs/redis-monitor.log (and the client's and tcpdump's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/redis.sh OUTDIR
# Creates only namespaces ptl-rd-c and ptl-rd-s and a directory under /tmp; the root namespace
# gets no address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: redis.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/pair.sh"
[[ $EUID -eq 0 ]] || { echo "redis: needs root (network namespaces)" >&2; exit 1; }
for tool in ip tcpdump redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "redis: missing $tool (Debian's redis-server, redis-tools)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import redis' || { echo "redis: missing redis-py (Debian's python3-redis)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-rd-c S=ptl-rd-s
DIR=$(mktemp -d /tmp/podtap-redis.XXXXXX)
down() {
  pair_down $C $S
  rm -rf "$DIR"
}
trap down EXIT
trap 'exit 130' INT TERM
pair_down $C $S
rm -f "$OUT/redis.pcap" "$OUT"/logs/redis-*

pair_up $C $S 10.251.1

ip netns exec $S redis-server --bind 10.251.1.2 127.0.0.1 --port 6379 --protected-mode no --save '' \
  --appendonly no --dir "$DIR" >"$OUT/logs/redis-server.log" 2>&1 &
disown $!  # ended by `down`
for _ in $(seq 100); do
  ip netns exec $S redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
# The ground truth: every command the server runs, from its own feed (on the server's loopback,
# not captured).
ip netns exec $S redis-cli -h 127.0.0.1 monitor >"$OUT/logs/redis-monitor.log" 2>&1 &
disown $!
for _ in $(seq 100); do grep -q OK "$OUT/logs/redis-monitor.log" 2>/dev/null && break; sleep 0.1; done

# The clients connect and talk; the capture starts only then.
READY=$DIR/ready GO=$DIR/go
ip netns exec $C /usr/bin/python3 "$LAB/apps/redis_client.py" 10.251.1.2 "$READY" "$GO" 2>"$OUT/logs/redis-client.err" &
CLIENT=$!
for _ in $(seq 300); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "redis: the client did not get ready" >&2; cat "$OUT/logs/redis-client.err" >&2; exit 1; }
capture_start $C "$OUT/redis.pcap" "$OUT/logs/redis-tcpdump.err"
touch "$GO"
wait $CLIENT || { echo "redis: the client failed" >&2; cat "$OUT/logs/redis-client.err" >&2; exit 1; }
capture_stop $C "$OUT/logs/redis-tcpdump.err" redis
# The feed has every command once the server is idle: one more, from the loopback, to be sure.
ip netns exec $S redis-cli -h 127.0.0.1 get end-of-run >/dev/null
for _ in $(seq 100); do grep -q '"end-of-run"' "$OUT/logs/redis-monitor.log" && break; sleep 0.1; done
echo "redis: $(grep -c '10.251.1.1:' "$OUT/logs/redis-monitor.log") commands from the clients in the server's feed"
