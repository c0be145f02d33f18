#!/usr/bin/env bash
# podtap's ground-truth lab: the scenario of DESIGN.md on one namespace-built node (see node.sh) —
# a keep-alive burst, a new-connection-per-request burst and pipelined batches (with chunked
# responses) through the ClusterIP, NodePort calls
# from outside, kubelet probes, cluster DNS — captured on every pod veth and the node's eth0 with
# dumpcap into one pcapng. Writes capture.pcapng, logs/ (the servers' own logs), ground-truth.json
# and cluster.json to OUTDIR.
#
# usage: sudo end2end/lab/lab.sh OUTDIR [--scale N]
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: lab.sh OUTDIR [--scale N]}
SCALE=1
[[ "${2:-}" == "--scale" ]] && SCALE=${3:?--scale needs a number}
source "$(dirname "$0")/node.sh"
lab_require
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/logs/*.log "$OUT/capture.pcapng"
lab_claim
lab_up

# --- workloads ------------------------------------------------------------------------------------
APPS="$LAB/apps"
nsx "$WEB1_NS" python3 "$APPS/web.py" "$WEB1_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-1.log" &
nsx "$WEB2_NS" python3 "$APPS/web.py" "$WEB2_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-2.log" &
nsx "$DNS_NS" python3 "$APPS/dns.py" "$DNS_IP" "$OUT/logs/dns.log" \
  "web.default.svc.cluster.local=$WEB_SVC_IP" "kube-dns.kube-system.svc.cluster.local=$DNS_SVC_IP" &
lab_wait_port "$NODE_NS" "$WEB1_IP" "$WEB_SVC_TARGET"
lab_wait_port "$NODE_NS" "$WEB2_IP" "$WEB_SVC_TARGET"
truncate -s 0 "$OUT"/logs/web-*.log  # the readiness checks above are not part of the scenario (servers append)

lab_capture_start "$OUT/capture.pcapng" "$OUT/logs/dumpcap.err" "$CLIENT_VETH" "$WEB1_VETH" "$WEB2_VETH" "$DNS_VETH" eth0

# --- the scenario ---------------------------------------------------------------------------------
N=$((40 * SCALE))
PAUSE=$(python3 -c "print(0.2 / $SCALE)")
nsx "$NODE_NS" python3 "$APPS/probe.py" 2 10 /health "$WEB1_IP:$WEB_SVC_TARGET" "$WEB2_IP:$WEB_SVC_TARGET" &
PROBES=$!
nsx "$EXT_NS" python3 "$APPS/client.py" "$OUT/logs/ext-nodeport.log" "$NODE_IP" "$WEB_SVC_NODEPORT" \
  per-request $((20 * SCALE)) "$(python3 -c "print(0.5 / $SCALE)")" external &
EXT=$!
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-keepalive.log" web "$WEB_SVC_PORT" keepalive "$N" "$PAUSE"
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-per-request.log" web.default "$WEB_SVC_PORT" per-request "$N" "$PAUSE"
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-pipeline.log" web "$WEB_SVC_PORT" pipeline $((12 * SCALE)) 0.3
wait "$EXT" "$PROBES"
lab_capture_stop

python3 "$LAB/topology.py" list > "$OUT/cluster.json"
(cd "$LAB" && python3 truth.py "$OUT")
echo "lab: capture $(du -h "$OUT/capture.pcapng" | cut -f1) in $OUT"
