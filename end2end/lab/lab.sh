#!/usr/bin/env bash
# podtap's network lab: one Kubernetes-like node built from network namespaces on the real kernel.
#
#   ptl-ext (external client 192.168.49.100) ──eth0── ptl-node (the node: cni0 bridge 10.244.0.1/24,
#   eth0 192.168.49.2, kube-proxy-style iptables) ──veth── ptl-web1, ptl-web2, ptl-dns, ptl-client
#
# It runs the scenario of DESIGN.md (keep-alive burst, new connection per request, NodePort from
# outside, kubelet probes, cluster DNS), captures every pod veth and the node's eth0 with dumpcap into
# one pcapng, and writes the servers' own logs, ground-truth.json and cluster.json to OUTDIR.
#
# usage: sudo end2end/lab/lab.sh OUTDIR [--scale N]
# Root only. Creates only namespaces named ptl-* and /etc/netns/ptl-*; the root namespace gets no
# address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

LAB=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: lab.sh OUTDIR [--scale N]}
SCALE=1
[[ "${2:-}" == "--scale" ]] && SCALE=${3:?--scale needs a number}
[[ $EUID -eq 0 ]] || { echo "lab.sh: needs root (network namespaces, iptables)" >&2; exit 1; }
for tool in ip iptables-restore dumpcap python3; do
  command -v "$tool" >/dev/null || { echo "lab.sh: missing $tool (cargo xtask test installs it)" >&2; exit 1; }
done

eval "$(python3 "$LAB/topology.py" env)"
ALL_NS="$POD_NETNS $EXT_NS $NODE_NS"
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/logs/*.log "$OUT/capture.pcapng"

teardown() {
  local ns
  for ns in $ALL_NS; do
    if ip netns list | grep -qw "$ns"; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf /etc/netns/ptl-client
}
exec 9>/run/podtap-lab.lock
flock -n 9 || { echo "lab.sh: another lab run is active" >&2; exit 1; }
trap teardown EXIT
trap 'exit 130' INT TERM
teardown  # leftovers of a run that was killed hard

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# --- the node ------------------------------------------------------------------------------------
ip netns add "$NODE_NS"
ip -n "$NODE_NS" link set lo up
ip -n "$NODE_NS" link add cni0 type bridge
ip -n "$NODE_NS" addr add "$BRIDGE_IP/24" dev cni0
ip -n "$NODE_NS" link set cni0 up
nsx "$NODE_NS" sysctl -qw net.ipv4.ip_forward=1
# Pod-to-pod replies cross the bridge without routing; kube-proxy needs them to pass conntrack so the
# ClusterIP reply is un-DNATed (the br_netfilter setting every kubeadm node has).
nsx "$NODE_NS" sysctl -qw net.bridge.bridge-nf-call-iptables=1

# --- pods: one namespace each, eth0 inside, vethXXXX on cni0 in the node ---------------------------
add_pod() {
  local ns=$1 ip=$2 veth=$3
  ip netns add "$ns"
  ip -n "$NODE_NS" link add "$veth" type veth peer name eth0 netns "$ns"
  ip -n "$NODE_NS" link set "$veth" master cni0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$BRIDGE_IP"
}
add_pod "$WEB1_NS" "$WEB1_IP" "$WEB1_VETH"
add_pod "$WEB2_NS" "$WEB2_IP" "$WEB2_VETH"
add_pod "$DNS_NS" "$DNS_IP" "$DNS_VETH"
add_pod "$CLIENT_NS" "$CLIENT_IP" "$CLIENT_VETH"

# --- the outside world: one external host on the node's eth0 --------------------------------------
ip netns add "$EXT_NS"
ip -n "$NODE_NS" link add eth0 type veth peer name eth0 netns "$EXT_NS"
ip -n "$NODE_NS" addr add "$NODE_IP/24" dev eth0
ip -n "$NODE_NS" link set eth0 up
ip -n "$EXT_NS" link set lo up
ip -n "$EXT_NS" addr add "$EXT_IP/24" dev eth0
ip -n "$EXT_NS" link set eth0 up

# --- kube-proxy (iptables mode) -------------------------------------------------------------------
nsx "$NODE_NS" iptables-restore < <(sed \
  -e "s/@WEB_SVC_IP@/$WEB_SVC_IP/g; s/@WEB_SVC_PORT@/$WEB_SVC_PORT/g; s/@WEB_NODEPORT@/$WEB_SVC_NODEPORT/g" \
  -e "s/@WEB1_IP@/$WEB1_IP/g; s/@WEB2_IP@/$WEB2_IP/g; s/@WEB_TARGET@/$WEB_SVC_TARGET/g" \
  -e "s/@DNS_SVC_IP@/$DNS_SVC_IP/g; s/@DNS_IP@/$DNS_IP/g" "$LAB/kube-proxy.rules")

# Kubernetes-style resolv.conf for the client pod (ip netns exec bind-mounts it over /etc/resolv.conf).
mkdir -p /etc/netns/ptl-client
printf 'search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\noptions ndots:5\n' \
  "$DNS_SVC_IP" > /etc/netns/ptl-client/resolv.conf

# --- workloads ------------------------------------------------------------------------------------
APPS="$LAB/apps"
nsx "$WEB1_NS" python3 "$APPS/web.py" "$WEB1_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-1.log" &
nsx "$WEB2_NS" python3 "$APPS/web.py" "$WEB2_NAME" "$WEB_SVC_TARGET" "$OUT/logs/web-2.log" &
nsx "$DNS_NS" python3 "$APPS/dns.py" "$DNS_IP" "$OUT/logs/dns.log" \
  "web.default.svc.cluster.local=$WEB_SVC_IP" "kube-dns.kube-system.svc.cluster.local=$DNS_SVC_IP" &
wait_port() {  # ns ip port: until something listens, at most 10 s
  local i
  for i in $(seq 100); do
    nsx "$1" python3 -c "import socket,sys; socket.create_connection(('$2', $3), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "lab.sh: nothing listens on $2:$3" >&2; return 1
}
wait_port "$NODE_NS" "$WEB1_IP" "$WEB_SVC_TARGET"
wait_port "$NODE_NS" "$WEB2_IP" "$WEB_SVC_TARGET"
truncate -s 0 "$OUT"/logs/web-*.log  # the readiness checks above are not part of the scenario (servers append)

# --- capture: every pod veth and the node's external interface, one pcapng with interface names ----
ip netns exec "$NODE_NS" dumpcap -q -i "$CLIENT_VETH" -i "$WEB1_VETH" -i "$WEB2_VETH" -i "$DNS_VETH" -i eth0 \
  -w "$OUT/capture.pcapng" 2>"$OUT/logs/dumpcap.err" &
DUMPCAP=$!
for _ in $(seq 100); do
  grep -q "Capturing on" "$OUT/logs/dumpcap.err" 2>/dev/null && break
  sleep 0.1
done
grep -q "Capturing on" "$OUT/logs/dumpcap.err" || { cat "$OUT/logs/dumpcap.err" >&2; exit 1; }
sleep 0.5

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
wait "$EXT" "$PROBES"
sleep 1
kill -INT "$DUMPCAP"
wait "$DUMPCAP" || true

python3 "$LAB/topology.py" list > "$OUT/cluster.json"
(cd "$LAB" && python3 truth.py "$OUT")
echo "lab: capture $(du -h "$OUT/capture.pcapng" | cut -f1) in $OUT"
