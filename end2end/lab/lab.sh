#!/usr/bin/env bash
# podtap's ground-truth lab: the scenario of DESIGN.md on one namespace-built node (see node.sh) —
# a keep-alive burst, a new-connection-per-request burst and pipelined batches (with chunked
# responses) through the ClusterIP, NodePort calls
# from outside, orders that web passes on to the 3-replica `api` Service of namespace shop through
# its ClusterIP (some 404, some 500), kubelet probes, cluster DNS (UDP, TCP, and a fragmented UDP
# answer), gRPC over h2c through a ClusterIP — captured on every pod veth and the node's eth0 with
# dumpcap into one pcapng, and with `tcpdump -i any` (cooked v1 and v2) beside it. Writes
# capture.pcapng, capture-classic.pcap (mergecap -F pcap), any-linux_sll{,2}.pcap, logs/ (the servers' own logs), ground-truth.json
# and cluster.json to OUTDIR.
#
# With PODTAP=path/to/podtap, podtap captures live as well, started before the client pod exists
# so it must follow a new pod interface (and the pod's removal at the end): `podtap capture`
# writes live.pcapng, and `podtap serve --pod-interfaces` keeps records whose API answers are
# saved as serve-records.json, serve-health.json and serve-balance.json; a second `serve` names from
# an API server that answers only 5 s after it started (serve-late-*.json).
#
# usage: sudo [PODTAP=target/release/podtap] end2end/lab/lab.sh OUTDIR [--scale N]
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: lab.sh OUTDIR [--scale N]}
SCALE=1
[[ "${2:-}" == "--scale" ]] && SCALE=${3:?--scale needs a number}
source "$(dirname "$0")/node.sh"
lab_require tcpdump mergecap
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/logs/*.log "$OUT"/*.pcapng "$OUT"/*.pcap "$OUT"/serve-*.json
lab_claim
trap 'lab_podtap_kill; lab_down' EXIT
lab_podtap_kill() { local p; for p in ${LAB_PODTAP:-} ${LAB_API:-}; do kill -9 "$p" 2>/dev/null || true; done; }
lab_up --later-client
python3 "$LAB/topology.py" list > "$OUT/cluster.json"

# --- workloads ------------------------------------------------------------------------------------
APPS="$LAB/apps"
UPSTREAM="$API_SVC_IP:$API_SVC_PORT"
nsx "$WEB1_NS" python3 "$APPS/web.py" "$WEB1_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-1.log" "$UPSTREAM" &
nsx "$WEB2_NS" python3 "$APPS/web.py" "$WEB2_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-2.log" "$UPSTREAM" &
for n in 1 2 3; do
  ns=API${n}_NS name=API${n}_NAME
  nsx "${!ns}" python3 "$APPS/web.py" "${!name}" "$API_SVC_PORT" "$OUT/logs/api-$n.log" &
done
nsx "$DNS_NS" python3 "$APPS/dns.py" "$DNS_IP" "$OUT/logs/dns.log" \
  "web.default.svc.cluster.local=$WEB_SVC_IP" "kube-dns.kube-system.svc.cluster.local=$DNS_SVC_IP" &
nsx "$GRPC_NS" "$SYS_PY" "$APPS/grpc_server.py" "$GRPC_IP" "$GRPC_SVC_PORT" "$OUT/logs/grpc.log" &
lab_wait_port "$NODE_NS" "$WEB1_IP" "$WEB_SVC_TARGET"
lab_wait_port "$NODE_NS" "$WEB2_IP" "$WEB_SVC_TARGET"
lab_wait_port "$NODE_NS" "$GRPC_IP" "$GRPC_SVC_PORT"
for ip in "$API1_IP" "$API2_IP" "$API3_IP"; do lab_wait_port "$NODE_NS" "$ip" "$API_SVC_PORT"; done
truncate -s 0 "$OUT"/logs/web-*.log "$OUT"/logs/api-*.log  # the readiness checks above are not part of the scenario (servers append)

LIVE_ERRS=()
if [[ -n "${PODTAP:-}" ]]; then
  SERVE_PORT=18080
  lab_podtap_start "$OUT/logs/podtap-capture.err" capture --pod-interfaces -i eth0 -w "$OUT/live.pcapng"
  lab_podtap_start "$OUT/logs/podtap-serve.err" serve --pod-interfaces -i eth0 --cluster "$OUT/cluster.json" \
    --listen "127.0.0.1:$SERVE_PORT" --retention 100000
  # A third: names from an API server (the lab's objects, end2end/tests/fake-api.mjs) that comes up
  # only after the keep-alive burst (start_late_api): records from before are held, then named.
  LATE_PORT=18081 API_PORT=16443
  printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: http://127.0.0.1:%s\nusers:\n- name: lab\n  user: {}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\ncurrent-context: lab\n' \
    "$API_PORT" > "$OUT/kubeconfig"
  export KUBECONFIG="$OUT/kubeconfig"
  lab_podtap_start "$OUT/logs/podtap-serve-late.err" serve --pod-interfaces -i eth0 \
    --listen "127.0.0.1:$LATE_PORT" --retention 100000
  unset KUBECONFIG
  LIVE_ERRS=("$OUT/logs/podtap-capture.err" "$OUT/logs/podtap-serve.err" "$OUT/logs/podtap-serve-late.err")
  lab_podtap_following eth0 "${LIVE_ERRS[@]}"
fi
# The client pod appears now: live capture must pick up its interface before it says anything.
lab_add_pod "$CLIENT_NS" "$CLIENT_IP" "$CLIENT_VETH"
[[ -n "${PODTAP:-}" ]] && lab_podtap_following "$CLIENT_VETH" "${LIVE_ERRS[@]}"

lab_any_start "$OUT"
lab_capture_start "$OUT/capture.pcapng" "$OUT/logs/dumpcap.err" "$CLIENT_VETH" "$WEB1_VETH" "$WEB2_VETH" "$DNS_VETH" \
  "$GRPC_VETH" "$API1_VETH" "$API2_VETH" "$API3_VETH" eth0

# --- the scenario ---------------------------------------------------------------------------------
N=$((40 * SCALE))
PAUSE=$(python3 -c "print(0.2 / $SCALE)")
nsx "$NODE_NS" python3 "$APPS/probe.py" 2 10 /health "$WEB1_IP:$WEB_SVC_TARGET" "$WEB2_IP:$WEB_SVC_TARGET" \
  "$API1_IP:$API_SVC_PORT" "$API2_IP:$API_SVC_PORT" "$API3_IP:$API_SVC_PORT" &
PROBES=$!
nsx "$EXT_NS" python3 "$APPS/client.py" "$OUT/logs/ext-nodeport.log" "$NODE_IP" "$WEB_SVC_NODEPORT" \
  per-request $((20 * SCALE)) "$(python3 -c "print(0.5 / $SCALE)")" external &
EXT=$!
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-keepalive.log" web "$WEB_SVC_PORT" keepalive "$N" "$PAUSE"
if [[ -n "${PODTAP:-}" ]]; then
  ip netns exec "$NODE_NS" node --input-type=module -e "import { startFakeApi } from '$LAB/../tests/fake-api.mjs';
    await startFakeApi('$OUT/cluster.json', [], '$OUT/kubeconfig.api', $API_PORT);" 2>"$OUT/logs/fake-api.err" &
  LAB_API=$!
fi
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-per-request.log" web.default "$WEB_SVC_PORT" per-request "$N" "$PAUSE"
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-pipeline.log" web "$WEB_SVC_PORT" pipeline $((12 * SCALE)) 0.3
nsx "$CLIENT_NS" python3 "$APPS/client.py" "$OUT/logs/client-orders.log" web "$WEB_SVC_PORT" orders $((36 * SCALE)) "$PAUSE"
nsx "$CLIENT_NS" python3 "$APPS/dnsq.py" "$DNS_SVC_IP"
nsx "$CLIENT_NS" "$SYS_PY" "$APPS/grpc_client.py" "$GRPC_SVC_IP:$GRPC_SVC_PORT" $((15 * SCALE)) $((4 * SCALE))
wait "$EXT" "$PROBES"
lab_capture_stop "$CLIENT_NS" "$EXT_NS" "$NODE_NS"

if [[ -n "${PODTAP:-}" ]]; then
  # The client pod goes away: its interface must be let go.
  ip netns pids "$CLIENT_NS" | xargs -r kill -9
  ip netns del "$CLIENT_NS"
  for err in "${LIVE_ERRS[@]}"; do
    for _ in $(seq 30); do grep -q "stopped capturing on $CLIENT_VETH" "$err" && break; sleep 0.1; done
    grep -q "stopped capturing on $CLIENT_VETH" "$err" || { echo "lab: podtap kept $CLIENT_VETH" >&2; exit 1; }
  done
  api() { nsx "$NODE_NS" python3 -c "import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())" "http://127.0.0.1:$SERVE_PORT$1"; }
  # Not a sleep: until serve holds every request the servers logged (settled.py).
  for serve in serve:$SERVE_PORT serve-late:$LATE_PORT; do
    name=${serve%%:*} SERVE_PORT=${serve##*:}
    nsx "$NODE_NS" python3 "$LAB/settled.py" "http://127.0.0.1:$SERVE_PORT" "$OUT"
    api "/api/v1/records?limit=10000&kind=all" > "$OUT/$name-records.json"
    # The capture's counters reach /healthz on their own beat after the log line: until they say
    # the client's interface is closed (at most 10 s; the test says what they showed).
    for _ in $(seq 100); do
      api "/healthz" > "$OUT/$name-health.json"
      python3 -c 'import json, sys; h = json.load(open(sys.argv[1]))
sys.exit(0 if any(i["name"] == sys.argv[2] and not i["open"] for i in h["capture"]["interfaces"]) else 1)' \
        "$OUT/$name-health.json" "$CLIENT_VETH" && break
      sleep 0.1
    done
    api "/api/v1/services/default/web/balance" > "$OUT/$name-balance.json"
  done
  lab_podtap_stop
  kill "$LAB_API"; wait "$LAB_API" 2>/dev/null || true
  tail -n 1 "$OUT/logs/podtap-capture.err"
fi

# The same run as one classic pcap: per-interface captures merged the way people merge them.
mergecap -F pcap -w "$OUT/capture-classic.pcap" "$OUT/capture.pcapng"
# tcpdump (not podtap) losing packets on a loaded machine leaves the `any` captures short of the
# truth: exit 75 (EX_TEMPFAIL) so the caller can run the lab again, rather than a false failure.
grep -h "packets dropped by kernel" "$OUT"/logs/tcpdump-*.err | grep -v "^0 " && { echo "lab: tcpdump dropped packets" >&2; exit 75; }
(cd "$LAB" && python3 truth.py "$OUT")
echo "lab: capture $(du -h "$OUT/capture.pcapng" | cut -f1) in $OUT"
