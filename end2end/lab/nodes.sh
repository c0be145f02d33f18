#!/usr/bin/env bash
# podtap's multi-node lab (cluster.py draws it): two nodes with their own cni0, pod CIDR and
# kube-proxy rules, routed host-gw style; Services with replicas on both; clients on both; a
# NodePort on node 1 that lands on either node; kubelet probes from each node to its own pods;
# cluster DNS on node 2. One `podtap agent` per node (pod veths and eth0, nothing else) and one
# `podtap hub`; dumpcap on each node beside them, for `analyze FILE@NODE`.
#
# The traffic comes in phases with quiet gaps, and the faults between them:
#   healthy → (agent 1 killed) agent-down → (agent 1 restarted) agent-back → the first hub's
#   answers saved → (hub killed) hub-down → (hub restarted) hub-back → the second hub's answers.
# Node 2's agent runs with its clock 50 ms ahead.
#
# Writes to OUTDIR: cluster.json, n1.pcapng, n2.pcapng, logs/ (the servers' and clients' own
# logs), phases.json, hub1-*.json and hub2-*.json (records, healthz), agent-*.err, ground-truth.json.
#
# usage: sudo PODTAP=target/debug/podtap end2end/lab/nodes.sh OUTDIR
# Creates only namespaces named ptm-* and /etc/netns/ptm-*; everything is torn down on exit.
set -euo pipefail

OUT=${1:?usage: nodes.sh OUTDIR}
PODTAP=${PODTAP:?set PODTAP to the podtap binary}
LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APPS="$LAB/apps"
source "$LAB/cni.sh"
eval "$(python3 "$LAB/cluster.py" env)"
TOKEN=lab-token
[[ $EUID -eq 0 ]] || { echo "nodes: needs root (network namespaces, iptables)" >&2; exit 1; }
for tool in ip iptables-restore dumpcap python3 curl; do
  command -v "$tool" >/dev/null || { echo "nodes: missing $tool (cargo xtask setup installs it)" >&2; exit 1; }
done
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
  local ns
  for ns in $ALL_NETNS; do
    if ip netns list | grep -qw "$ns"; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf /etc/netns/ptm-clia /etc/netns/ptm-clib
}

exec 9>/run/podtap-lab.lock
flock -n 9 || { echo "nodes: another lab run is active" >&2; exit 1; }
trap down EXIT
trap 'exit 130' INT TERM
down
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/logs/* "$OUT"/*.pcapng "$OUT"/*.json "$OUT"/*.err

# --- the network ----------------------------------------------------------------------------------
ip netns add "$NET_NS"
ip -n "$NET_NS" link set lo up
ip -n "$NET_NS" link add br0 type bridge
ip -n "$NET_NS" link set br0 up

on_net() {  # ns ip: the namespace's eth0 on the nodes' segment
  local ns=$1 addr=$2
  ip -n "$NET_NS" link add "p-$ns" type veth peer name eth0 netns "$ns"
  ip -n "$NET_NS" link set "p-$ns" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

for k in $NODE_KEYS; do
  ns=${k}_NS ip=${k}_IP bridge=${k}_BRIDGE pods=${k}_PODS
  ip netns add "${!ns}"
  on_net "${!ns}" "${!ip}"
  ip -n "${!ns}" link add cni0 type bridge
  ip -n "${!ns}" addr add "${!bridge}/24" dev cni0
  ip -n "${!ns}" link set cni0 up
  nsx "${!ns}" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  for p in ${!pods}; do
    pns=${p}_NS pip=${p}_IP veth=${p}_VETH
    cni_pod "${!ns}" "${!bridge}" "${!pns}" "${!pip}" "${!veth}"
  done
  nsx "${!ns}" iptables-restore < <(python3 "$LAB/cluster.py" rules)
done
# host-gw: each node routes the other's pod CIDR to it.
ip -n "$N1_NS" route add "$N2_CIDR" via "$N2_IP"
ip -n "$N2_NS" route add "$N1_CIDR" via "$N1_IP"
ip netns add "$EXT_NS"
on_net "$EXT_NS" "$EXT_IP"
ip netns add "$HUB_NS"
on_net "$HUB_NS" "$HUB_IP"
for c in clia clib; do
  mkdir -p "/etc/netns/ptm-$c"
  printf 'search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\noptions ndots:5\n' \
    "$DNS_SVC_IP" > "/etc/netns/ptm-$c/resolv.conf"
done
python3 "$LAB/cluster.py" list > "$OUT/cluster.json"

# --- workloads ------------------------------------------------------------------------------------
UPSTREAM="$API_SVC_IP:$API_SVC_PORT"
nsx "$WEBA_NS" python3 "$APPS/web.py" "$WEBA_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-a.log" "$UPSTREAM" &
nsx "$WEBB_NS" python3 "$APPS/web.py" "$WEBB_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-b.log" "$UPSTREAM" &
nsx "$APIA_NS" python3 "$APPS/web.py" "$APIA_NAME" "$API_SVC_PORT" "$OUT/logs/api-a.log" &
nsx "$APIB_NS" python3 "$APPS/web.py" "$APIB_NAME" "$API_SVC_PORT" "$OUT/logs/api-b.log" &
nsx "$DNS_NS" python3 "$APPS/dns.py" "$DNS_IP" "$OUT/logs/dns.log" "web.default.svc.cluster.local=$WEB_SVC_IP" &
wait_port() {  # ns ip port
  for _ in $(seq 100); do
    nsx "$1" python3 -c "import socket; socket.create_connection(('$2', $3), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nodes: nothing listens on $2:$3" >&2
  return 1
}
wait_port "$N1_NS" "$WEBA_IP" 3000; wait_port "$N2_NS" "$WEBB_IP" 3000
wait_port "$N1_NS" "$APIA_IP" 8080; wait_port "$N2_NS" "$APIB_IP" 8080
truncate -s 0 "$OUT"/logs/web-*.log "$OUT"/logs/api-*.log

# --- capture: dumpcap on each node, the hub, one agent per node ------------------------------------
DUMPCAPS=""
for k in $NODE_KEYS; do
  # The agents' stream to the hub crosses eth0: not part of the scenario (a filter per interface).
  ns=${k}_NS pods=${k}_PODS args=(-i eth0 -f "not host $HUB_IP")
  for p in ${!pods}; do veth=${p}_VETH; args+=(-i "${!veth}"); done
  lower=${k,,}
  ip netns exec "${!ns}" dumpcap -q "${args[@]}" -w "$OUT/$lower.pcapng" 2>"$OUT/logs/dumpcap-$lower.err" &
  DUMPCAPS+=" $!"
done
for k in $NODE_KEYS; do
  lower=${k,,}
  for _ in $(seq 100); do grep -q "Capturing on" "$OUT/logs/dumpcap-$lower.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "Capturing on" "$OUT/logs/dumpcap-$lower.err" || { cat "$OUT/logs/dumpcap-$lower.err" >&2; exit 1; }
done

HUB_PID=""
start_hub() {  # n
  ip netns exec "$HUB_NS" "$PODTAP" hub --cluster "$OUT/cluster.json" --listen "127.0.0.1:$HUB_LISTEN" \
    --ingest "$HUB_IP:$HUB_INGEST" --token "$TOKEN" 2>"$OUT/hub-$1.err" &
  HUB_PID=$!
  for _ in $(seq 100); do grep -q "agents connect to" "$OUT/hub-$1.err" 2>/dev/null && break; sleep 0.1; done
  grep -q "agents connect to" "$OUT/hub-$1.err" || { cat "$OUT/hub-$1.err" >&2; exit 1; }
}
api() {  # path
  nsx "$HUB_NS" curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HUB_LISTEN$1"
}
wait_agents() {  # how many connected
  for _ in $(seq 200); do
    n=$(api /healthz 2>/dev/null | python3 -c "import json,sys; print(sum(a['connected'] for a in json.load(sys.stdin).get('agents', [])))" 2>/dev/null || echo 0)
    [[ "$n" == "$1" ]] && return 0
    sleep 0.1
  done
  echo "nodes: $1 agents did not connect" >&2; api /healthz >&2 || true; exit 1
}
declare -A AGENT_PID
start_agent() {  # key run [extra args]
  local k=$1 run=$2 ns name
  shift 2
  ns=${k}_NS name=${k}_NAME
  ip netns exec "${!ns}" "$PODTAP" agent --hub "http://$HUB_IP:$HUB_INGEST" --token "$TOKEN" --node "${!name}" \
    --pod-interfaces -i eth0 "$@" 2>"$OUT/agent-${k,,}-$run.err" &
  AGENT_PID[$k]=$!
  for _ in $(seq 100); do grep -q "capturing on eth0 " "$OUT/agent-${k,,}-$run.err" 2>/dev/null && break; sleep 0.1; done
}

start_hub 1
start_agent N1 1
start_agent N2 1 --clock-offset-ms 50
wait_agents 2

# --- the scenario ---------------------------------------------------------------------------------
PHASES=()
phase() {  # name: one round of every kind of traffic, then a quiet gap
  local name=$1 start end
  start=$(date +%s.%N)
  nsx "$N1_NS" python3 "$APPS/probe.py" 1 3 /health "$WEBA_IP:3000" "$APIA_IP:8080" &
  local p1=$!
  nsx "$N2_NS" python3 "$APPS/probe.py" 1 3 /health "$WEBB_IP:3000" "$APIB_IP:8080" &
  local p2=$!
  nsx "$EXT_NS" python3 "$APPS/client.py" "$OUT/logs/ext-$name.log" "$N1_IP" "$WEB_SVC_NODEPORT" per-request 8 0.2 external &
  local e=$!
  nsx "$CLIA_NS" python3 "$APPS/client.py" "$OUT/logs/client-a-direct-$name.log" "$WEBB_IP" 3000 per-request 5 0.1 direct &
  local d=$!
  nsx "$CLIB_NS" python3 "$APPS/client.py" "$OUT/logs/client-b-$name.log" web "$WEB_SVC_PORT" per-request 10 0.1 client-b &
  local b=$!
  nsx "$CLIA_NS" python3 "$APPS/client.py" "$OUT/logs/client-a-keepalive-$name.log" web "$WEB_SVC_PORT" keepalive 10 0.1 client-a
  nsx "$CLIA_NS" python3 "$APPS/client.py" "$OUT/logs/client-a-orders-$name.log" web "$WEB_SVC_PORT" orders 12 0.1 client-a
  wait "$p1" "$p2" "$e" "$d" "$b"
  end=$(date +%s.%N)
  PHASES+=("{\"name\": \"$name\", \"from\": $start, \"to\": $end}")
  sleep 2.5
}

# Until the hub holds every request the servers logged in these phases (not a fixed sleep).
settled() {  # phase,phase…
  printf '[%s]\n' "$(IFS=,; echo "${PHASES[*]}")" > "$OUT/phases.json"
  nsx "$HUB_NS" python3 "$LAB/settled.py" "http://127.0.0.1:$HUB_LISTEN" "$OUT" "$TOKEN" "$1"
}

phase healthy
kill -9 "${AGENT_PID[N1]}"; wait "${AGENT_PID[N1]}" 2>/dev/null || true
phase agent-down
start_agent N1 2
wait_agents 2
sleep 1
phase agent-back
settled healthy,agent-back
api "/api/v1/records?limit=10000&kind=all" > "$OUT/hub1-records.json"
api /healthz > "$OUT/hub1-health.json"
kill -9 "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true
phase hub-down
start_hub 2
wait_agents 2
phase hub-back
settled hub-down,hub-back
api "/api/v1/records?limit=10000&kind=all" > "$OUT/hub2-records.json"
api /healthz > "$OUT/hub2-health.json"

# The agents' cost under the lab's load: resident memory (KiB), CPU seconds, seconds running.
for k in $NODE_KEYS; do
  read -r rss up < <(ps -o rss=,etimes= -p "${AGENT_PID[$k]}")
  cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/${AGENT_PID[$k]}/stat")
  echo "{\"node\": \"$k\", \"rss_kib\": $rss, \"cpu_s\": $cpu, \"up_s\": $up}"
done | python3 -c "import json,sys; json.dump([json.loads(l) for l in sys.stdin], open(sys.argv[1], 'w'))" "$OUT/agent-usage.json"
for k in $NODE_KEYS; do kill -TERM "${AGENT_PID[$k]}"; done
for k in $NODE_KEYS; do wait "${AGENT_PID[$k]}" || { echo "nodes: agent $k failed" >&2; cat "$OUT"/agent-*.err >&2; exit 1; }; done
kill -TERM "$HUB_PID"; wait "$HUB_PID" || true
sleep 0.5
kill -INT $DUMPCAPS; wait $DUMPCAPS || true
python3 "$LAB/truth_nodes.py" "$OUT"
echo "nodes: $(du -sh "$OUT" | cut -f1) in $OUT"
