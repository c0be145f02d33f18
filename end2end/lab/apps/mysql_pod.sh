#!/bin/sh
# A MariaDB 10.11 server (Debian's) as the lab's pods run it: a fresh data directory beside LOG,
# run as the mysql user, with no grant tables (any user may connect: the lab's, not a secret),
# every command in its general log (LOG, the ground truth), and a database `shop` for the lab's
# client, made before the server listens (a database is a directory). The pod's SIGTERM reaches
# the server (the lab's node signals the pod's process group); `cluster down` removes its files
# with the lab's directory.
#
# usage: mysql_pod.sh LOG
set -eu
LOG=$1
DATA=${LOG%.log}-data
rm -rf "$DATA"
mkdir -p "$DATA"
chown mysql: "$DATA"
mariadb-install-db --user=mysql --datadir="$DATA/db" --skip-test-db --auth-root-authentication-method=normal \
  >"$DATA/install.log" 2>&1
mkdir "$DATA/db/shop"
chown mysql: "$DATA/db/shop"
: >"$LOG"
chown mysql: "$LOG"
exec mariadbd --no-defaults --user=mysql --datadir="$DATA/db" --socket="$DATA/mysqld.sock" \
  --pid-file="$DATA/mysqld.pid" --bind-address=0.0.0.0 --port=3306 --skip-grant-tables --skip-name-resolve \
  --innodb-flush-log-at-trx-commit=0 --general-log=1 --general-log-file="$LOG"
