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
source "$LAB/pair.sh"
[[ $EUID -eq 0 ]] || { echo "websocket: needs root (network namespaces)" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "websocket: missing tcpdump" >&2; exit 1; }
/usr/bin/python3 -c 'import websockets' || { echo "websocket: missing websockets (Debian's python3-websockets)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-ws-c S=ptl-ws-s
down() {
  pair_down $C $S
}
trap down EXIT
trap 'exit 130' INT TERM
down
rm -f "$OUT/websocket.pcap" "$OUT"/logs/websocket-*

pair_up $C $S 10.251.3

: >"$OUT/logs/websocket-server.log"
ip netns exec $S /usr/bin/python3 "$LAB/apps/ws_peer.py" server 10.251.3.2 8765 "$OUT/logs/websocket-server.log" \
  2>"$OUT/logs/websocket-server.err" &
disown $!  # ended by `down`
for _ in $(seq 100); do
  ip netns exec $C /usr/bin/python3 -c "import socket; socket.create_connection(('10.251.3.2', 8765), 0.2)" 2>/dev/null && break
  sleep 0.1
done
capture_start $C "$OUT/websocket.pcap" "$OUT/logs/websocket-tcpdump.err" 'port 8765'
ip netns exec $C /usr/bin/python3 "$LAB/apps/ws_peer.py" client 10.251.3.2 8765 2>"$OUT/logs/websocket-client.err" \
  || { echo "websocket: the client failed" >&2; cat "$OUT/logs/websocket-client.err" >&2; exit 1; }
for _ in $(seq 100); do grep -q close_code "$OUT/logs/websocket-server.log" && break; sleep 0.1; done
capture_stop $C "$OUT/logs/websocket-tcpdump.err" websocket
echo "websocket: $(grep -c received "$OUT/logs/websocket-server.log") messages received by the server"
