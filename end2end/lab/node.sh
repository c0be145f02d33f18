# podtap lab library (sourced, not run): builds one Kubernetes-like node from network namespaces on
# the real kernel and tears it down again. Used by lab.sh (the ground-truth scenario) and
# bench-capture.sh (nginx + wrk load for the benchmark).
#
#   ptl-ext (external client 192.168.49.100) ──eth0── ptl-node (the node: cni0 bridge 10.244.0.1/24,
#   eth0 192.168.49.2, kube-proxy-style iptables) ──veth── ptl-web1, ptl-web2, ptl-dns, ptl-grpc,
#   ptl-api1..3 (namespace shop), ptl-client
#
# Creates only namespaces named ptl-* and /etc/netns/ptl-*; the root namespace gets no address or
# link. The caller's EXIT trap runs lab_down, success or failure.

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/cni.sh"
eval "$(python3 "$LAB/topology.py" env)"
ALL_NS="$POD_NETNS $EXT_NS $NODE_NS"

# Debian's Python, which has python3-grpcio (a pyenv or venv python3 on PATH may not).
SYS_PY=/usr/bin/python3

lab_require() {  # tools...
  [[ $EUID -eq 0 ]] || { echo "lab: needs root (network namespaces, iptables)" >&2; exit 1; }
  local tool
  for tool in ip iptables-restore dumpcap python3 "$@"; do
    command -v "$tool" >/dev/null || { echo "lab: missing $tool (cargo xtask setup installs it)" >&2; exit 1; }
  done
  "$SYS_PY" -c "import grpc" 2>/dev/null || { echo "lab: missing python3-grpcio (cargo xtask setup installs it)" >&2; exit 1; }
}

lab_down() {
  local ns
  for ns in $ALL_NS; do
    if ip netns list | grep -qw "$ns"; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf /etc/netns/ptl-client
}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Takes the lab lock, arranges teardown on exit, removes leftovers of a run killed hard.
lab_claim() {
  exec 9>/run/podtap-lab.lock
  flock -n 9 || { echo "lab: another lab run is active" >&2; exit 1; }
  trap lab_down EXIT
  trap 'exit 130' INT TERM
  lab_down
}

lab_add_pod() {  # netns ip veth
  cni_pod "$NODE_NS" "$BRIDGE_IP" "$@"
}

lab_up() {  # [--later-client]: leave the client pod for the caller to add (lab_add_pod) later
  # The node.
  cni_node "$NODE_NS" "$BRIDGE_IP"

  # Pods: one namespace each, eth0 inside, vethXXXX on cni0 in the node.
  lab_add_pod "$WEB1_NS" "$WEB1_IP" "$WEB1_VETH"
  lab_add_pod "$WEB2_NS" "$WEB2_IP" "$WEB2_VETH"
  lab_add_pod "$DNS_NS" "$DNS_IP" "$DNS_VETH"
  lab_add_pod "$GRPC_NS" "$GRPC_IP" "$GRPC_VETH"
  lab_add_pod "$API1_NS" "$API1_IP" "$API1_VETH"
  lab_add_pod "$API2_NS" "$API2_IP" "$API2_VETH"
  lab_add_pod "$API3_NS" "$API3_IP" "$API3_VETH"
  [[ "${1:-}" == "--later-client" ]] || lab_add_pod "$CLIENT_NS" "$CLIENT_IP" "$CLIENT_VETH"

  # The outside world: one external host on the node's eth0.
  ip netns add "$EXT_NS"
  ip -n "$NODE_NS" link add eth0 type veth peer name eth0 netns "$EXT_NS"
  ip -n "$NODE_NS" addr add "$NODE_IP/24" dev eth0
  ip -n "$NODE_NS" link set eth0 up
  ip -n "$EXT_NS" link set lo up
  ip -n "$EXT_NS" addr add "$EXT_IP/24" dev eth0
  ip -n "$EXT_NS" link set eth0 up

  # kube-proxy (iptables mode).
  nsx "$NODE_NS" iptables-restore < <(sed \
    -e "s/@WEB_SVC_IP@/$WEB_SVC_IP/g; s/@WEB_SVC_PORT@/$WEB_SVC_PORT/g; s/@WEB_NODEPORT@/$WEB_SVC_NODEPORT/g" \
    -e "s/@WEB1_IP@/$WEB1_IP/g; s/@WEB2_IP@/$WEB2_IP/g; s/@WEB_TARGET@/$WEB_SVC_TARGET/g" \
    -e "s/@DNS_SVC_IP@/$DNS_SVC_IP/g; s/@DNS_IP@/$DNS_IP/g" \
    -e "s/@GRPC_SVC_IP@/$GRPC_SVC_IP/g; s/@GRPC_SVC_PORT@/$GRPC_SVC_PORT/g; s/@GRPC_IP@/$GRPC_IP/g" \
    -e "s/@API_SVC_IP@/$API_SVC_IP/g; s/@API_SVC_PORT@/$API_SVC_PORT/g" \
    -e "s/@API1_IP@/$API1_IP/g; s/@API2_IP@/$API2_IP/g; s/@API3_IP@/$API3_IP/g" \
    "$LAB/kube-proxy.rules")

  # Kubernetes-style resolv.conf for the client pod (ip netns exec bind-mounts it over /etc/resolv.conf).
  mkdir -p /etc/netns/ptl-client
  printf 'search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\noptions ndots:5\n' \
    "$DNS_SVC_IP" > /etc/netns/ptl-client/resolv.conf
}

lab_wait_port() {  # ns ip port: until something listens, at most 10 s
  local i
  for i in $(seq 100); do
    nsx "$1" python3 -c "import socket; socket.create_connection(('$2', $3), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "lab: nothing listens on $2:$3" >&2
  return 1
}

# Starts dumpcap in the node on the given interfaces into FILE (one pcapng, interface names kept);
# returns once it captures. Sets LAB_DUMPCAP to its pid.
lab_capture_start() {  # file errfile iface...
  local file=$1 err=$2 args=() i
  shift 2
  for i in "$@"; do args+=(-i "$i"); done
  # Called directly (not through nsx) so $! is dumpcap itself and SIGINT reaches it.
  ip netns exec "$NODE_NS" dumpcap -q "${args[@]}" -w "$file" 2>"$err" &
  LAB_DUMPCAP=$!
  for _ in $(seq 100); do
    grep -q "Capturing on" "$err" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "Capturing on" "$err" || { cat "$err" >&2; exit 1; }
  sleep 0.5
}

# Starts a podtap command in the node, stderr to ERRFILE; sets LAB_PODTAP to its pid.
lab_podtap_start() {  # errfile podtap-args...
  local err=$1
  shift
  ip netns exec "$NODE_NS" "$PODTAP" "$@" 2>"$err" &
  LAB_PODTAP+=" $!"
}

# Waits until every podtap started reports (in ERRFILE) capturing on IFACE.
lab_podtap_following() {  # iface errfile...
  local iface=$1 err
  shift
  for err in "$@"; do
    for _ in $(seq 50); do
      grep -q "capturing on $iface " "$err" 2>/dev/null && break
      sleep 0.1
    done
    grep -q "capturing on $iface " "$err" || { echo "lab: podtap did not follow $iface" >&2; cat "$err" >&2; exit 1; }
  done
}

lab_podtap_stop() {
  local pid
  for pid in $LAB_PODTAP; do
    kill -TERM "$pid"
    wait "$pid" || { echo "lab: podtap (pid $pid) failed" >&2; exit 1; }
  done
  LAB_PODTAP=""
}

# `tcpdump -i any` in the node, as users run it: Linux cooked v1 and v2 (no interface names; v1
# not even an index). Every routed packet is seen twice there (the veth and cni0). The node's own
# loopback (podtap asking the lab's API server, lab.sh) is not part of the scenario.
lab_any_start() {  # outdir
  local out=$1 link
  LAB_TCPDUMP=""
  for link in LINUX_SLL LINUX_SLL2; do
    ip netns exec "$NODE_NS" tcpdump -i any -y "$link" -n -s 0 -B 65536 -U --immediate-mode \
      -w "$out/any-${link,,}.pcap" 'not net 127.0.0.0/8' 2>"$out/logs/tcpdump-${link,,}.err" &
    LAB_TCPDUMP+=" $!"
  done
  for link in linux_sll linux_sll2; do
    for _ in $(seq 100); do grep -q "listening on" "$out/logs/tcpdump-$link.err" 2>/dev/null && break; sleep 0.1; done
    grep -q "listening on" "$out/logs/tcpdump-$link.err" || { cat "$out/logs/tcpdump-$link.err" >&2; exit 1; }
  done
}

lab_capture_stop() {  # [ns... whose connections must have closed first]
  (($#)) && lab_quiet "$@"
  # The capture processes read what the kernel queued for them: a moment to write it.
  sleep 0.5
  kill -INT "$LAB_DUMPCAP" ${LAB_TCPDUMP:-}
  wait "$LAB_DUMPCAP" ${LAB_TCPDUMP:-} || true
}
