#!/usr/bin/env bash
# A real MariaDB 10.11 (Debian's) in one network namespace and a DBD::MariaDB client in another,
# joined by a veth as a pod and its database are. The client connects and prepares a statement
# first; only then does tcpdump start on the client's interface (podtap joins its sessions
# mid-stream). The server's own general log (every command, with its connection's id) is the
# ground truth. Writes mysql.pcap and logs/mysql-general.log (and the client's and tcpdump's
# stderr) to OUTDIR.
#
# usage: sudo end2end/lab/mysql.sh OUTDIR
# Creates only namespaces ptl-my-c and ptl-my-s and a data directory under /tmp; the root
# namespace gets no address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: mysql.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
[[ $EUID -eq 0 ]] || { echo "mysql: needs root (network namespaces)" >&2; exit 1; }
for tool in ip tcpdump runuser mariadbd mariadb-install-db mariadb-admin; do
  command -v "$tool" >/dev/null || { echo "mysql: missing $tool (Debian's mariadb-server)" >&2; exit 1; }
done
perl -MDBD::MariaDB -e1 || { echo "mysql: missing DBD::MariaDB (Debian's libdbd-mariadb-perl)" >&2; exit 1; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-my-c S=ptl-my-s
DATA=$(mktemp -d /tmp/podtap-mysql.XXXXXX)
down() {
  local ns
  for ns in $C $S; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$DATA"
}
trap down EXIT
trap 'exit 130' INT TERM
for ns in $C $S; do ip netns del "$ns" 2>/dev/null || true; done
rm -f "$OUT/mysql.pcap" "$OUT"/logs/mysql-*

ip netns add $C
ip netns add $S
for ns in $C $S; do ip -n $ns link set lo up; done
ip -n $C link add eth0 type veth peer name eth0 netns $S
ip -n $C addr add 10.251.2.1/24 dev eth0
ip -n $S addr add 10.251.2.2/24 dev eth0
ip -n $C link set eth0 up
ip -n $S link set eth0 up

# The server runs as Debian's mysql user, on the namespace's address only, with no grant tables
# (any user may connect: the lab's, not a secret) and every command in its general log.
chown mysql: "$DATA"
mariadb-install-db --user=mysql --datadir="$DATA/db" --skip-test-db --auth-root-authentication-method=normal \
  >"$OUT/logs/mysql-install.err" 2>&1
: >"$OUT/logs/mysql-general.log"
chown mysql: "$OUT/logs/mysql-general.log"
ip netns exec $S mariadbd --no-defaults --user=mysql --datadir="$DATA/db" --socket="$DATA/mysqld.sock" \
  --pid-file="$DATA/mysqld.pid" --bind-address=10.251.2.2 --port=3306 --skip-grant-tables --skip-name-resolve \
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
ip netns exec $C perl "$LAB/apps/mysql_client.pl" 10.251.2.2 "$READY" "$GO" 2>"$OUT/logs/mysql-client.err" &
CLIENT=$!
for _ in $(seq 300); do [[ -e $READY ]] && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
[[ -e $READY ]] || { echo "mysql: the client did not get ready" >&2; cat "$OUT/logs/mysql-client.err" >&2; exit 1; }
ip netns exec $C tcpdump -i eth0 -n -s 0 -B 65536 -U --immediate-mode -w "$OUT/mysql.pcap" 2>"$OUT/logs/mysql-tcpdump.err" &
DUMP=$!
for _ in $(seq 100); do grep -q "listening on" "$OUT/logs/mysql-tcpdump.err" 2>/dev/null && break; sleep 0.1; done
touch "$GO"
wait $CLIENT || { echo "mysql: the client failed" >&2; cat "$OUT/logs/mysql-client.err" >&2; exit 1; }
# Until the sessions' last packets went by (tcpdump writes each at once: -U), then stop it.
lab_quiet $C
kill -INT $DUMP
wait $DUMP || true
grep -q "0 packets dropped by kernel" "$OUT/logs/mysql-tcpdump.err" || { echo "mysql: tcpdump dropped packets" >&2; exit 75; }
echo "mysql: $(grep -cE '^\s*(\S+\s+\S+\s+)?[0-9]+ (Query|Prepare|Execute|Close stmt)' "$OUT/logs/mysql-general.log") commands logged"
