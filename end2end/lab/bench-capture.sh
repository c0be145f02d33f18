#!/usr/bin/env bash
# A large capture for podtap's benchmark: nginx as the two `web` replicas, wrk in the client pod
# through the ClusterIP — first keep-alive connections, then a new connection per request
# (`Connection: close`) — captured on the client's and both servers' veths. nginx's access logs are
# the ground truth (requests per pod).
#
# With PODTAP=path/to/podtap, `podtap serve --pod-interfaces` dissects the same load live beside
# tcpdump (PODTAP_ARGS adds flags, e.g. "--ring-mb 32"); its /healthz (kernel packets and drops,
# records) is saved as live-health.json.
#
# usage: sudo [PODTAP=…] end2end/lab/bench-capture.sh OUTDIR [SECONDS_PER_PHASE [CONNECTIONS]]   (default 20, 4)
# Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: bench-capture.sh OUTDIR [SECONDS_PER_PHASE]}
SECS=${2:-20}
CONNS=${3:-4}
source "$(dirname "$0")/node.sh"
lab_require nginx wrk tcpdump mergecap
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/logs/* "$OUT/capture.pcapng" "$OUT/capture.pcap" "$OUT/live-health.json"
lab_claim
lab_up
python3 "$LAB/topology.py" list > "$OUT/cluster.json"

nginx_conf() {  # pod name, log file
  cat <<CONF
daemon off;
worker_processes 1;
pid /dev/null;
error_log stderr;
events { worker_connections 4096; }
http {
  access_log $2;
  keepalive_requests 100000000;
  server {
    listen $WEB_SVC_TARGET;
    location / { default_type text/plain; return 200 "hello from $1\n"; }
  }
}
CONF
}
nginx_conf "$WEB1_NAME" "$OUT/logs/nginx-1.log" > "$OUT/logs/nginx-1.conf"
nginx_conf "$WEB2_NAME" "$OUT/logs/nginx-2.log" > "$OUT/logs/nginx-2.conf"
nsx "$WEB1_NS" nginx -e stderr -c "$OUT/logs/nginx-1.conf" 2>"$OUT/logs/nginx-1.err" &
nsx "$WEB2_NS" nginx -e stderr -c "$OUT/logs/nginx-2.conf" 2>"$OUT/logs/nginx-2.err" &
lab_wait_port "$NODE_NS" "$WEB1_IP" "$WEB_SVC_TARGET"
lab_wait_port "$NODE_NS" "$WEB2_IP" "$WEB_SVC_TARGET"
truncate -s 0 "$OUT"/logs/nginx-*.log

# One tcpdump per interface (leaner than one multi-interface dumpcap at this rate on 2 cores),
# merged into one pcapng afterwards.
PIDS=()
for i in "$CLIENT_VETH" "$WEB1_VETH" "$WEB2_VETH"; do
  ip netns exec "$NODE_NS" tcpdump -i "$i" -B 131072 -s 0 -w "$OUT/logs/$i.pcap" 2>"$OUT/logs/$i.tcpdump.err" &
  PIDS+=($!)
done
if [[ -n "${PODTAP:-}" ]]; then
  lab_podtap_start "$OUT/logs/podtap-serve.err" serve --pod-interfaces --cluster "$OUT/cluster.json" ${PODTAP_ARGS:-} \
    --listen 127.0.0.1:18081 --retention 10000
  lab_podtap_following "$CLIENT_VETH" "$OUT/logs/podtap-serve.err"
fi
sleep 2
URL="http://$WEB_SVC_IP:$WEB_SVC_PORT/"
nsx "$CLIENT_NS" wrk -t 1 -c "$CONNS" -d "${SECS}s" "$URL" > "$OUT/logs/wrk-keepalive.txt"
nsx "$CLIENT_NS" wrk -t 1 -c "$CONNS" -d "${SECS}s" -H "Connection: close" "$URL" > "$OUT/logs/wrk-per-request.txt"
sleep 1
kill -INT "${PIDS[@]}"
wait "${PIDS[@]}" || true
cat "$OUT"/logs/*.tcpdump.err | grep -E "dropped by kernel" || true
if [[ -n "${PODTAP:-}" ]]; then
  nsx "$NODE_NS" python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:18081/healthz').read().decode())" \
    > "$OUT/live-health.json"
  lab_podtap_stop
  echo "bench-capture: podtap live: $(cat "$OUT/live-health.json")"
fi
# -I none: one interface per input file (identical unnamed pcap interfaces would be merged into one,
# and the same request seen on two veths would look like two requests on one).
mergecap -I none -w "$OUT/capture.pcapng" "$OUT"/logs/veth*.pcap
# The same as one classic pcap (no interfaces: copies of a request on two veths are told apart by
# their addresses alone), the other format the benchmark times.
mergecap -F pcap -w "$OUT/capture.pcap" "$OUT"/logs/veth*.pcap
rm -f "$OUT"/logs/veth*.pcap

python3 - "$OUT" "$WEB1_NAME" "$WEB2_NAME" <<'PY'
import json, sys
out, pods = sys.argv[1], sys.argv[2:]
truth = {f"default/{p}": sum(1 for _ in open(f"{out}/logs/nginx-{i}.log")) for i, p in enumerate(pods, 1)}
json.dump({"requests_per_pod": truth}, open(f"{out}/ground-truth.json", "w"), indent=1)
print("bench-capture:", truth)
PY
echo "bench-capture: $(du -h "$OUT/capture.pcapng" | cut -f1) in $OUT"
