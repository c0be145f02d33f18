#!/usr/bin/env bash
# A real PostgreSQL 15 (Debian's) as a pod behind a Service and a psycopg client in a client pod,
# on one node (tier.sh, db_tier.py): the client's pool connects to the Service's ClusterIP. The
# pool opens and warms up first; only then does the capture start on the pods' veths (podtap
# joins its sessions mid-stream). The server's own log (log_statement=all, SQLSTATE and pid in
# each line) is the ground truth. Writes postgres.pcapng, db-cluster.json and logs/postgres.log
# (and the client's and dumpcap's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/postgres.sh OUTDIR
# Creates only namespaces ptl-pg-* and a data directory under /tmp; the root namespace gets no
# address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: postgres.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/tier.sh"
[[ $EUID -eq 0 ]] || { echo "postgres: needs root (network namespaces)" >&2; exit 1; }
PG=/usr/lib/postgresql/15/bin
for tool in ip dumpcap iptables-restore runuser "$PG/postgres" "$PG/initdb" "$PG/pg_isready"; do
  command -v "$tool" >/dev/null || { echo "postgres: missing $tool (Debian's postgresql-15)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import psycopg' || { echo "postgres: missing psycopg (Debian's python3-psycopg)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tier_env postgres
S=$SERVERS
DATA=$(mktemp -d /tmp/podtap-pg.XXXXXX)
down() {
  tier_down
  rm -rf "$DATA"
}
trap down EXIT
trap 'exit 130' INT TERM
tier_down
rm -f "$OUT/postgres.pcapng" "$OUT"/logs/postgres*.log "$OUT"/logs/pg-*.err

python3 "$LAB/db_tier.py" list >"$OUT/db-cluster.json"
tier_up

# The server runs as Debian's postgres user (it refuses root), on the namespace's address only.
chown postgres: "$DATA"
runuser -u postgres -- "$PG/initdb" -D "$DATA/db" -A trust -U app --no-sync >"$OUT/logs/pg-initdb.err" 2>&1
echo "host all all $TIER_NET.0/24 trust" >>"$DATA/db/pg_hba.conf"
: >"$OUT/logs/postgres.log"
chown postgres: "$OUT/logs/postgres.log"
ip netns exec $S runuser -u postgres -- "$PG/postgres" -D "$DATA/db" -c listen_addresses=$SERVER_IPS \
  -c unix_socket_directories="$DATA" -c fsync=off -c log_statement=all -c log_destination=stderr \
  -c "log_line_prefix=%m [%p] %e " >>"$OUT/logs/postgres.log" 2>&1 &
disown $!  # ended by `down`, without bash's word on it
for _ in $(seq 100); do
  ip netns exec $C "$PG/pg_isready" -q -h $SVC_IP -U app && break
  sleep 0.1
done
ip netns exec $C "$PG/pg_isready" -h $SVC_IP -U app >/dev/null
ip netns exec $C /usr/bin/python3 -c "import psycopg; psycopg.connect(host='$SVC_IP', dbname='postgres', \
  user='app', autocommit=True).execute('CREATE DATABASE shop')"

# The pool opens and warms up; the capture starts only then.
READY=$DATA/ready GO=$DATA/go
ip netns exec $C /usr/bin/python3 "$LAB/apps/pg_client.py" "$SVC_IP" "$READY" "$GO" 2>"$OUT/logs/pg-client.err" &
CLIENT=$!
for _ in $(seq 300); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "postgres: the client did not get ready" >&2; cat "$OUT/logs/pg-client.err" >&2; exit 1; }
tier_capture_start "$OUT/postgres.pcapng" "$OUT/logs/pg-dumpcap.err"
touch "$GO"
wait $CLIENT || { echo "postgres: the client failed" >&2; cat "$OUT/logs/pg-client.err" >&2; exit 1; }
tier_capture_stop "$OUT/logs/pg-dumpcap.err" postgres
echo "postgres: $(grep -c 'LOG:  \(statement\|execute\)' "$OUT/logs/postgres.log") statements logged"
