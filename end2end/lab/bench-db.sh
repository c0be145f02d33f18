#!/usr/bin/env bash
# Captures for the per-protocol benchmark: each database's own load generator against a real
# server, the client and server in two network namespaces joined by a veth (pair.sh), tcpdump on
# the client's end — pgbench (PostgreSQL 15, TPC-B-like, prepared statements), redis-benchmark
# (Redis 7: SET, GET, INCR, LPUSH, HSET, each command its own request, then pipelined by 16) and
# mariadb-slap (MariaDB 10.11: point reads, updates and inserts) and Kafka's own
# ProducerPerformance and ConsumerPerformance (Apache Kafka from Maven Central, KRaft, small
# batches). Writes postgres.pcap, redis.pcap, mysql.pcap, kafka.pcap and counts.json (each
# generator's count as it reports it) to OUTDIR.
#
# usage: sudo end2end/lab/bench-db.sh OUTDIR
# Creates only namespaces ptl-bd-c and ptl-bd-s and a directory under /tmp; the root namespace
# gets no address or link. Everything is torn down on exit, success or failure.
set -euo pipefail

OUT=${1:?usage: bench-db.sh OUTDIR}
LAB=$(cd "$(dirname "$0")" && pwd)
source "$LAB/quiet.sh"
source "$LAB/pair.sh"
source "$LAB/kafka-broker.sh"
[[ $EUID -eq 0 ]] || { echo "bench-db: needs root (network namespaces)" >&2; exit 1; }
PG=/usr/lib/postgresql/15/bin
for tool in ip tcpdump redis-server redis-benchmark mariadbd mariadb-slap "$PG/postgres" "$PG/pgbench" java mvn; do
  command -v "$tool" >/dev/null || { echo "bench-db: missing $tool" >&2; exit 1; }
done
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
C=ptl-bd-c S=ptl-bd-s
DIR=$(mktemp -d /tmp/podtap-bench-db.XXXXXX)
chmod 755 "$DIR"  # the servers run as postgres and mysql
down() {
  pair_down $C $S
  rm -rf "$DIR"
}
trap down EXIT
trap 'exit 130' INT TERM
pair_down $C $S
rm -f "$OUT"/{postgres,redis,mysql,kafka}.pcap "$OUT/counts.json"
pair_up $C $S 10.251.9
HOST=10.251.9.2

# Redis: 100,000 commands of each kind one at a time, then 200,000 pipelined by 16.
ip netns exec $S redis-server --bind $HOST --port 6379 --protected-mode no --save '' --appendonly no --dir "$DIR" \
  >"$OUT/logs/bench-redis-server.log" 2>&1 &
for _ in $(seq 100); do ip netns exec $C redis-cli -h $HOST ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
capture_start $C "$OUT/redis.pcap" "$OUT/logs/bench-redis-tcpdump.err"
ip netns exec $C redis-benchmark -h $HOST -c 8 -n 100000 -t set,get,incr,lpush,hset -q >"$OUT/logs/bench-redis.log"
ip netns exec $C redis-benchmark -h $HOST -c 8 -n 200000 -P 16 -t set,get -q >>"$OUT/logs/bench-redis.log"
capture_stop $C "$OUT/logs/bench-redis-tcpdump.err" redis
REDIS=$((5 * 100000 + 2 * 200000))
pair_down $C $S  # ends the server too
pair_up $C $S 10.251.9

# PostgreSQL: pgbench's TPC-B-like transactions (7 statements each) on 4 connections, prepared.
mkdir "$DIR/pg" && chown postgres: "$DIR/pg"
runuser -u postgres -- "$PG/initdb" -D "$DIR/pg/db" -A trust -U app --no-sync >"$OUT/logs/bench-pg-initdb.log" 2>&1
echo "host all all 10.251.9.0/24 trust" >>"$DIR/pg/db/pg_hba.conf"
ip netns exec $S runuser -u postgres -- "$PG/postgres" -D "$DIR/pg/db" -c listen_addresses=$HOST \
  -c unix_socket_directories="$DIR/pg" -c fsync=off -c synchronous_commit=off >"$OUT/logs/bench-pg.log" 2>&1 &
for _ in $(seq 100); do ip netns exec $C "$PG/pg_isready" -q -h $HOST -U app && break; sleep 0.1; done
ip netns exec $C "$PG/pgbench" -h $HOST -U app -i -s 2 postgres >>"$OUT/logs/bench-pg.log" 2>&1
capture_start $C "$OUT/postgres.pcap" "$OUT/logs/bench-pg-tcpdump.err"
ip netns exec $C "$PG/pgbench" -h $HOST -U app -c 4 -j 2 -t 5000 -M prepared postgres >"$OUT/logs/bench-pgbench.log" 2>&1
capture_stop $C "$OUT/logs/bench-pg-tcpdump.err" postgres
PGTX=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$OUT/logs/bench-pgbench.log")
pair_down $C $S
pair_up $C $S 10.251.9

# MariaDB: mariadb-slap running point reads, updates and inserts on a small table, 8 connections.
# (Its --auto-generate-sql selects whole tables: 12 GB of capture in two minutes.)
mkdir "$DIR/my" && chown mysql: "$DIR/my"
mariadb-install-db --user=mysql --datadir="$DIR/my/db" --skip-test-db --auth-root-authentication-method=normal \
  >"$OUT/logs/bench-my-install.log" 2>&1
ip netns exec $S mariadbd --no-defaults --user=mysql --datadir="$DIR/my/db" --socket="$DIR/my/mysqld.sock" \
  --pid-file="$DIR/my/mysqld.pid" --bind-address=$HOST --port=3306 --skip-grant-tables --skip-name-resolve \
  --innodb-flush-log-at-trx-commit=0 >"$OUT/logs/bench-my.log" 2>&1 &
for _ in $(seq 200); do ip netns exec $S mariadb-admin --socket="$DIR/my/mysqld.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
capture_start $C "$OUT/mysql.pcap" "$OUT/logs/bench-my-tcpdump.err"
ip netns exec $C mariadb-slap -h $HOST -P 3306 -u app --protocol=tcp --concurrency=8 --iterations=1 \
  --number-of-queries=80000 --delimiter=";" --create-schema=bench \
  --create="CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, k INT, v VARCHAR(64)); INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')" \
  --query="SELECT v FROM t WHERE id = 2; UPDATE t SET k = k + 1 WHERE id = 3; INSERT INTO t (k, v) VALUES (5, 'e'); SELECT count(*) FROM t WHERE k > 2" \
  >"$OUT/logs/bench-slap.log" 2>&1
capture_stop $C "$OUT/logs/bench-my-tcpdump.err" mysql

pair_down $C $S
pair_up $C $S 10.251.9

# Kafka: 200,000 records of 100 bytes produced (acks=1, 1 KiB batches: about ten records a
# request, over four partitions), then consumed by one consumer group. No request log (it would
# cost the broker more than the load).
kafka_jars "$LAB"
mkdir -p "$DIR/kafka" "$OUT/logs/kafka"
KAFKA_REQUESTS=off kafka_broker $S $HOST:9092 "$DIR/kafka" "$OUT/logs/kafka"
KAFKA_REQUESTS=off kafka_java $C "$OUT/logs/kafka" org.apache.kafka.tools.TopicCommand --bootstrap-server $HOST:9092 \
  --create --topic bench --partitions 4 --replication-factor 1 >"$OUT/logs/bench-kafka-topic.log" 2>&1
capture_start $C "$OUT/kafka.pcap" "$OUT/logs/bench-kafka-tcpdump.err"
KAFKA_REQUESTS=off kafka_java $C "$OUT/logs/kafka" org.apache.kafka.tools.ProducerPerformance --topic bench \
  --num-records 200000 --record-size 100 --throughput -1 \
  --producer-props bootstrap.servers=$HOST:9092 acks=1 linger.ms=0 batch.size=1024 >"$OUT/logs/bench-kafka-produce.log" 2>&1
KAFKA_REQUESTS=off kafka_java $C "$OUT/logs/kafka" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server $HOST:9092 \
  --topic bench --messages 200000 --group bench >"$OUT/logs/bench-kafka-consume.log" 2>&1
capture_stop $C "$OUT/logs/bench-kafka-tcpdump.err" kafka

printf '{"redis_commands": %d, "pgbench_transactions": %d, "kafka_records_produced": %d}\n' "$REDIS" "${PGTX:-0}" 200000 \
  >"$OUT/counts.json"
for p in redis postgres mysql kafka; do echo "bench-db: $p.pcap $(stat -c %s "$OUT/$p.pcap") bytes"; done
