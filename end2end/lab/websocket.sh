#!/usr/bin/env bash
# A WebSocket server and client (Python's `websockets`, from Debian) in two network namespaces
# joined by a veth, captured on the client's interface from before the connection opens (podtap
# needs the HTTP upgrade to know it is WebSocket). The server's own log (every message received
# and sent, its kind and size, and the close it got) is the ground truth. Writes websocket.pcap
# and logs/websocket-server.log (and the peers' and tcpdump's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/websocket.sh OUTDIR
# Creates only namespaces ptl-ws-c and ptl-ws-s; the root namespace gets no address or link.
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: websocket.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
[[ $EUID -eq 0 ]] || { echo "websocket: needs root (network namespaces)" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "websocket: missing tcpdump" >&2; exit 1; }
/usr/bin/python3 -c 'import websockets' || { echo "websocket: missing websockets (Debian's python3-websockets)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-ws-c S=ptl-ws-s
down() {
  local ns
  for ns in $C $S; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap down EXIT
trap 'exit 130' INT TERM
down
rm -f "$OUT/websocket.pcap" "$OUT"/logs/websocket-*

ip netns add $C
ip netns add $S
for ns in $C $S; do ip -n $ns link set lo up; done
ip -n $C link add eth0 type veth peer name eth0 netns $S
ip -n $C addr add 10.251.3.1/24 dev eth0
ip -n $S addr add 10.251.3.2/24 dev eth0
ip -n $C link set eth0 up
ip -n $S link set eth0 up

: >"$OUT/logs/websocket-server.log"
ip netns exec $S /usr/bin/python3 "$LAB/apps/ws_peer.py" server 10.251.3.2 8765 "$OUT/logs/websocket-server.log" \
  2>"$OUT/logs/websocket-server.err" &
disown $!  # ended by `down`
for _ in $(seq 100); do
  ip netns exec $C /usr/bin/python3 -c "import socket; socket.create_connection(('10.251.3.2', 8765), 0.2)" 2>/dev/null && break
  sleep 0.1
done
ip netns exec $C tcpdump -i eth0 -n -s 0 -B 65536 -U --immediate-mode -w "$OUT/websocket.pcap" 'port 8765' \
  2>"$OUT/logs/websocket-tcpdump.err" &
DUMP=$!
for _ in $(seq 100); do grep -q "listening on" "$OUT/logs/websocket-tcpdump.err" 2>/dev/null && break; sleep 0.1; done
ip netns exec $C /usr/bin/python3 "$LAB/apps/ws_peer.py" client 10.251.3.2 8765 2>"$OUT/logs/websocket-client.err" \
  || { echo "websocket: the client failed" >&2; cat "$OUT/logs/websocket-client.err" >&2; exit 1; }
lab_quiet $C
for _ in $(seq 100); do grep -q close_code "$OUT/logs/websocket-server.log" && break; sleep 0.1; done
kill -INT $DUMP
wait $DUMP || true
grep -q "0 packets dropped by kernel" "$OUT/logs/websocket-tcpdump.err" || { echo "websocket: tcpdump dropped packets" >&2; exit 75; }
echo "websocket: $(grep -c received "$OUT/logs/websocket-server.log") messages received by the server"
