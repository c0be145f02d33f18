#!/usr/bin/env bash
# A real MariaDB 10.11 (Debian's) as a pod behind a Service and a DBD::MariaDB client in a client
# pod, on one node (tier.sh, db_tier.py): the client connects to the Service's ClusterIP and
# prepares a statement first; only then does the capture start on the pods' veths (podtap joins
# its sessions mid-stream). The server's own general log (every command, with its connection's
# id) is the ground truth. Writes mysql.pcapng, db-cluster.json and logs/mysql-general.log (and
# the client's and dumpcap's stderr) to OUTDIR.
#
# usage: sudo end2end/lab/mysql.sh OUTDIR
# Creates only namespaces ptl-my-* and a data directory under /tmp; the root namespace gets no
# address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: mysql.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/tier.sh"
[[ $EUID -eq 0 ]] || { echo "mysql: needs root (network namespaces)" >&2; exit 1; }
for tool in ip dumpcap iptables-restore runuser mariadbd mariadb-install-db mariadb-admin; do
  command -v "$tool" >/dev/null || { echo "mysql: missing $tool (Debian's mariadb-server)" >&2; exit 1; }
done
perl -MDBD::MariaDB -e1 || { echo "mysql: missing DBD::MariaDB (Debian's libdbd-mariadb-perl)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
tier_env mysql
S=$SERVERS
DATA=$(mktemp -d /tmp/podtap-mysql.XXXXXX)
down() {
  tier_down
  rm -rf "$DATA"
}
trap down EXIT
trap 'exit 130' INT TERM
tier_down
rm -f "$OUT/mysql.pcapng" "$OUT"/logs/mysql-*

python3 "$LAB/db_tier.py" list >"$OUT/db-cluster.json"
tier_up

# The server runs as Debian's mysql user, on the namespace's address only, with no grant tables
# (any user may connect: the lab's, not a secret) and every command in its general log.
chown mysql: "$DATA"
mariadb-install-db --user=mysql --datadir="$DATA/db" --skip-test-db --auth-root-authentication-method=normal \
  >"$OUT/logs/mysql-install.err" 2>&1
: >"$OUT/logs/mysql-general.log"
chown mysql: "$OUT/logs/mysql-general.log"
ip netns exec $S mariadbd --no-defaults --user=mysql --datadir="$DATA/db" --socket="$DATA/mysqld.sock" \
  --pid-file="$DATA/mysqld.pid" --bind-address=$SERVER_IPS --port=3306 --skip-grant-tables --skip-name-resolve \
  --innodb-flush-log-at-trx-commit=0 --general-log=1 --general-log-file="$OUT/logs/mysql-general.log" \
  >"$OUT/logs/mysql-server.err" 2>&1 &
disown $!  # ended by `down`
for _ in $(seq 200); do
  ip netns exec $S mariadb-admin --socket="$DATA/mysqld.sock" ping >/dev/null 2>&1 && break
  sleep 0.1
done
ip netns exec $S mariadb-admin --socket="$DATA/mysqld.sock" create shop

# The client connects and prepares; the capture starts only then.
READY=$DATA/ready GO=$DATA/go
ip netns exec $C perl "$LAB/apps/mysql_client.pl" "$SVC_IP" "$READY" "$GO" 2>"$OUT/logs/mysql-client.err" &
CLIENT=$!
for _ in $(seq 300); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "mysql: the client did not get ready" >&2; cat "$OUT/logs/mysql-client.err" >&2; exit 1; }
tier_capture_start "$OUT/mysql.pcapng" "$OUT/logs/mysql-dumpcap.err"
touch "$GO"
wait $CLIENT || { echo "mysql: the client failed" >&2; cat "$OUT/logs/mysql-client.err" >&2; exit 1; }
tier_capture_stop "$OUT/logs/mysql-dumpcap.err" mysql
echo "mysql: $(grep -cE '^\s*(\S+\s+\S+\s+)?[0-9]+ (Query|Prepare|Execute|Close stmt)' "$OUT/logs/mysql-general.log") commands logged"
