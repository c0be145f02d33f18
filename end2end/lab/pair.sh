# Sourced by the per-protocol benchmark (bench-db.sh): two network namespaces joined by a veth, a
# client and its server, and tcpdump on the client's end: one interface, so a bench's capture has
# each packet once. (The real-server labs put the server behind a Service instead: tier.sh.)
# Needs quiet.sh sourced first (`capture_stop` waits with `lab_quiet`).

# Ends everything in namespaces C and S and deletes them (safe when they do not exist).
pair_down() {  # C S
  local ns
  for ns in "$@"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

# Namespaces C (NET.1) and S (NET.2), each `eth0` on one veth, loopback up.
pair_up() {  # C S NET (e.g. 10.251.0)
  local c=$1 s=$2 net=$3 ns
  ip netns add "$c"
  ip netns add "$s"
  for ns in "$c" "$s"; do ip -n "$ns" link set lo up; done
  ip -n "$c" link add eth0 type veth peer name eth0 netns "$s"
  ip -n "$c" addr add "$net.1/24" dev eth0
  ip -n "$s" addr add "$net.2/24" dev eth0
  ip -n "$c" link set eth0 up
  ip -n "$s" link set eth0 up
}

# tcpdump on C's eth0 into FILE (its stderr in ERR), once it listens; its pid in DUMP.
capture_start() {  # C FILE ERR [FILTER…]
  local c=$1 file=$2 err=$3
  shift 3
  ip netns exec "$c" tcpdump -i eth0 -n -s 0 -B 65536 -U --immediate-mode -w "$file" "$@" 2>"$err" &
  DUMP=$!
  for _ in $(seq 100); do grep -q "listening on" "$err" 2>/dev/null && break; sleep 0.1; done
}

# Until C's connections' last packets went by (tcpdump writes each at once: -U), then stops the
# capture; exit 75 when tcpdump (the lab's, not podtap) dropped packets, for a run once more.
capture_stop() {  # C ERR NAME
  lab_quiet "$1"
  kill -INT "$DUMP"
  wait "$DUMP" || true
  grep -q "0 packets dropped by kernel" "$2" || { echo "$3: tcpdump dropped packets" >&2; exit 75; }
}
