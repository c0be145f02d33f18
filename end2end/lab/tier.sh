# Sourced by the real-server lab scripts (postgres.sh, redis.sh, mysql.sh, websocket.sh, kafka.sh):
# one node with the lab's client pod and its server pods behind a Service, as db_tier.py
# describes them. The client reaches the server through the Service's ClusterIP: the node's
# kube-proxy-style iptables rules pick the pod (DNAT in PREROUTING) and the replies are un-DNATed
# across the bridge (br_netfilter), as on a Kubernetes node. dumpcap in the node captures every
# pod's veth into one pcapng: the client's side (to the ClusterIP) and the server's (to the pod).
# Needs quiet.sh sourced first.

TIER_LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$TIER_LAB_DIR/cni.sh"

# The lab's names and addresses (C, CLIENT_IP, SVC_IP, SERVERS, SERVER_IPS, TIER_NODE…).
tier_env() {  # LAB
  eval "$(python3 "$TIER_LAB_DIR/db_tier.py" env "$1")"
  TIER_LAB=$1
}

# Ends everything in the lab's namespaces and deletes them (safe when they do not exist).
tier_down() {
  local ns
  for ns in $TIER_NETNS; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

# The node (cni0 bridge, forwarding, the Service's rules) and its pods: the client, then the servers.
tier_up() {
  local veths=($TIER_VETHS) pods=("$C" $SERVERS) ips=("$CLIENT_IP" $SERVER_IPS) i
  cni_node "$TIER_NODE" "$TIER_BRIDGE"
  for i in "${!pods[@]}"; do
    cni_pod "$TIER_NODE" "$TIER_BRIDGE" "${pods[$i]}" "${ips[$i]}" "${veths[$i]}"
  done
  ip netns exec "$TIER_NODE" iptables-restore < <(python3 "$TIER_LAB_DIR/db_tier.py" rules "$TIER_LAB")
}

# dumpcap in the node on every pod's veth into FILE (stderr in ERR), once it captures; its pid in DUMP.
tier_capture_start() {  # FILE ERR [FILTER]
  local file=$1 err=$2 args=() v
  [[ -n ${3:-} ]] && args+=(-f "$3")  # before the first -i: every interface's
  for v in $TIER_VETHS; do args+=(-i "$v"); done
  ip netns exec "$TIER_NODE" dumpcap "${args[@]}" -w "$file" 2>"$err" &
  DUMP=$!
  for _ in $(seq 100); do grep -q "Capturing on" "$err" 2>/dev/null && break; sleep 0.1; done
  grep -q "Capturing on" "$err" || { cat "$err" >&2; exit 1; }
  sleep 0.5  # dumpcap says so before its last interface is open
}

# Until the client's connections' last packets went by, then stops the capture; exit 75 when
# dumpcap (the lab's, not podtap) dropped packets, for a run once more.
tier_capture_stop() {  # ERR NAME
  lab_quiet "$C" $SERVERS
  sleep 0.5  # what the kernel queued for dumpcap, written
  kill -INT "$DUMP"
  wait "$DUMP" || true
  grep -q "^Packets received/dropped" "$1" || { cat "$1" >&2; echo "$2: dumpcap said no counts" >&2; exit 1; }
  if grep "^Packets received/dropped" "$1" | grep -qv "/0 (pcap:0/dumpcap:0/flushed:0"; then
    echo "$2: dumpcap dropped packets" >&2
    exit 75
  fi
}
