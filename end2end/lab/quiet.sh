# Sourced by the lab scripts: waiting for the scenario's connections to finish, a condition
# rather than a fixed sleep.

# Until no TCP connection in the given namespaces is still opening or closing (TIME-WAIT means both
# FINs went by; loopback is not the scenario), at most 10 s: the scenario's last packets have been
# sent, whatever the machine's load, rather than after a fixed sleep.
lab_quiet() {  # ns...
  local ns busy
  for _ in $(seq 100); do
    busy=0
    for ns in "$@"; do
      [[ -n "$(ip netns exec "$ns" ss -tnH state established state syn-sent state syn-recv state fin-wait-1 \
        state fin-wait-2 state close-wait state last-ack state closing '( ! dst 127.0.0.0/8 )' 2>/dev/null)" ]] && busy=1
    done
    [[ $busy == 0 ]] && return 0
    sleep 0.1
  done
  echo "lab: connections still open in $*" >&2
}
