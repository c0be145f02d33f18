#!/usr/bin/env bash
# Two nodes joined by VXLAN, as Flannel and Calico VXLAN join them: an HTTP client on node A calls
# a server on node B over the overlay (10.250.0.0/24, VNI 42, UDP 4789) across the underlay link
# (192.168.60.0/24). The underlay is captured on node A, so every request is seen encapsulated;
# the server's own log is the ground truth. Writes vxlan.pcap, logs/vxlan-*.log and
# vxlan-truth.json to OUTDIR.
#
# usage: sudo end2end/lab/vxlan.sh OUTDIR
# Creates only namespaces ptl-vx-a and ptl-vx-b; the root namespace gets no address or link.
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: vxlan.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
[[ $EUID -eq 0 ]] || { echo "vxlan: needs root (network namespaces)" >&2; exit 1; }
for tool in ip tcpdump python3; do command -v "$tool" >/dev/null || { echo "vxlan: missing $tool" >&2; exit 1; }; done
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
A=ptl-vx-a B=ptl-vx-b
down() {
  local ns
  for ns in $A $B; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap down EXIT
trap 'exit 130' INT TERM
down
rm -f "$OUT/vxlan.pcap" "$OUT"/logs/vxlan-*.log "$OUT/vxlan-truth.json"

ip netns add $A
ip netns add $B
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link add under type veth peer name under netns $B
ip -n $A addr add 192.168.60.1/24 dev under
ip -n $B addr add 192.168.60.2/24 dev under
ip -n $A link set under up
ip -n $B link set under up
ip -n $A link add vx42 type vxlan id 42 dstport 4789 local 192.168.60.1 remote 192.168.60.2 dev under
ip -n $B link add vx42 type vxlan id 42 dstport 4789 local 192.168.60.2 remote 192.168.60.1 dev under
ip -n $A addr add 10.250.0.1/24 dev vx42
ip -n $B addr add 10.250.0.2/24 dev vx42
ip -n $A link set vx42 up
ip -n $B link set vx42 up

ip netns exec $B python3 "$LAB/apps/web.py" server-b 8080 "$OUT/logs/vxlan-server.log" &
for _ in $(seq 100); do
  ip netns exec $A python3 -c "import socket; socket.create_connection(('10.250.0.2', 8080), 0.2)" 2>/dev/null && break
  sleep 0.1
done
truncate -s 0 "$OUT/logs/vxlan-server.log"

ip netns exec $A tcpdump -i under -n -s 0 -U --immediate-mode -w "$OUT/vxlan.pcap" 2>"$OUT/logs/vxlan-tcpdump.err" &
DUMP=$!
for _ in $(seq 100); do grep -q "listening on" "$OUT/logs/vxlan-tcpdump.err" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
ip netns exec $A python3 "$LAB/apps/client.py" "$OUT/logs/vxlan-client.log" 10.250.0.2 8080 keepalive 20 0.02 node-a
ip netns exec $A python3 "$LAB/apps/client.py" "$OUT/logs/vxlan-client.log" 10.250.0.2 8080 per-request 10 0.02 node-a
lab_quiet $A
sleep 0.5  # tcpdump writes what the kernel queued for it
kill -INT $DUMP
wait $DUMP || true
grep -q "^0 packets dropped by kernel" "$OUT/logs/vxlan-tcpdump.err" || { cat "$OUT/logs/vxlan-tcpdump.err" >&2; exit 1; }

python3 - "$OUT" <<'PY'
import collections, json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/logs/vxlan-server.log") if l.strip()]
truth = {"requests": len(rows), "connections": len({r["conn"] for r in rows}),
         "by_status": dict(collections.Counter(str(r["status"]) for r in rows)),
         "vni": 42, "outer": ["192.168.60.1", "192.168.60.2"], "server": "10.250.0.2:8080"}
json.dump(truth, open(f"{out}/vxlan-truth.json", "w"), indent=1)
print(f"vxlan: {truth['requests']} requests on {truth['connections']} connections, captured encapsulated")
PY
