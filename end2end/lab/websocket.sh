#!/usr/bin/env bash
# A WebSocket server and client (Python's `websockets`, from Debian) as pods, the server behind a
# Service, on one node (tier.sh, db_tier.py); captured on the pods' veths from before the
# connection opens (podtap needs the HTTP upgrade to know it is WebSocket). The server's own log
# (every message received and sent, its kind and size, and the close it got) is the ground truth.
# Writes websocket.pcapng, db-cluster.json and logs/websocket-server.log (and the peers' and
# dumpcap's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/websocket.sh OUTDIR
# Creates only namespaces ptl-ws-*; the root namespace gets no address or link.
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: websocket.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/tier.sh"
[[ $EUID -eq 0 ]] || { echo "websocket: needs root (network namespaces)" >&2; exit 1; }
for tool in ip dumpcap iptables-restore; do
  command -v "$tool" >/dev/null || { echo "websocket: missing $tool" >&2; exit 1; }
done
/usr/bin/python3 -c 'import websockets' || { echo "websocket: missing websockets (Debian's python3-websockets)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tier_env websocket
S=$SERVERS
down() {
  tier_down
}
trap down EXIT
trap 'exit 130' INT TERM
down
rm -f "$OUT/websocket.pcapng" "$OUT"/logs/websocket-*

python3 "$LAB/db_tier.py" list >"$OUT/db-cluster.json"
tier_up

: >"$OUT/logs/websocket-server.log"
ip netns exec $S /usr/bin/python3 "$LAB/apps/ws_peer.py" server $SERVER_IPS $SVC_PORT "$OUT/logs/websocket-server.log" \
  2>"$OUT/logs/websocket-server.err" &
disown $!  # ended by `down`
for _ in $(seq 100); do
  ip netns exec $C /usr/bin/python3 -c "import socket; socket.create_connection(('$SVC_IP', $SVC_PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
tier_capture_start "$OUT/websocket.pcapng" "$OUT/logs/websocket-dumpcap.err" "port $SVC_PORT"
ip netns exec $C /usr/bin/python3 "$LAB/apps/ws_peer.py" client $SVC_IP $SVC_PORT 2>"$OUT/logs/websocket-client.err" \
  || { echo "websocket: the client failed" >&2; cat "$OUT/logs/websocket-client.err" >&2; exit 1; }
for _ in $(seq 100); do grep -q close_code "$OUT/logs/websocket-server.log" && break; sleep 0.1; done
tier_capture_stop "$OUT/logs/websocket-dumpcap.err" websocket
echo "websocket: $(grep -c received "$OUT/logs/websocket-server.log") messages received by the server"
