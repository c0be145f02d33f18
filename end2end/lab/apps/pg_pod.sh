#!/bin/sh
# A PostgreSQL 15 server (Debian's) as the lab's pods run it: a fresh cluster beside LOG, run as
# the postgres user (it refuses root), every statement logged (`log_statement=all`, the ground
# truth) to LOG; a database `shop` for the lab's client, made before the server listens; trust
# authentication for the pods' network. The pod's SIGTERM reaches the server (the lab's node
# signals the pod's process group); `cluster down` removes its files with the lab's directory.
#
# usage: pg_pod.sh LOG
set -eu
LOG=$1
PG=/usr/lib/postgresql/15/bin
# Beside the log, in the lab's directory, which `cluster down` removes whatever happened.
DATA=${LOG%.log}-data
rm -rf "$DATA"
mkdir -p "$DATA"
chown postgres: "$DATA"
runuser -u postgres -- "$PG/initdb" -D "$DATA/db" -A trust -U app --no-sync >"$DATA/initdb.log" 2>&1
echo "host all all 0.0.0.0/0 trust" >>"$DATA/db/pg_hba.conf"
# The database before the server listens: ready (its port open) means ready for the client.
echo 'CREATE DATABASE shop' | runuser -u postgres -- "$PG/postgres" --single -D "$DATA/db" postgres >>"$DATA/initdb.log" 2>&1
: >"$LOG"
chown postgres: "$LOG"
exec runuser -u postgres -- "$PG/postgres" -D "$DATA/db" -c listen_addresses='*' -c unix_socket_directories="$DATA" \
  -c fsync=off -c log_statement=all -c log_destination=stderr -c "log_line_prefix=%m [%p] %e " 2>>"$LOG"
