"""A PostgreSQL client as applications are: psycopg 3 (libpq's protocol, written in Python), three
connections opened and warmed up before the capture starts (a pool joined mid-stream), then a mix
on each: `a` re-executes a statement prepared before the capture (its Parse is never seen); `b`
runs parameterised statements (psycopg prepares one after its fifth run), a transaction and two
errors (a missing table, a division by zero); `c` runs a pipeline, a pipeline that fails half-way
(the server skips the rest), a query with its literals inlined (the simple protocol) and a COPY.
Each connection first runs `SELECT 1 AS mark_<name>`: the server's log and the capture both show
which connection is which.

usage: pg_client.py HOST READY_FILE GO_FILE
"""

import os
import sys
import time

import psycopg


def main():
    host, ready, go = sys.argv[1:4]
    conns = {
        name: psycopg.connect(host=host, dbname="shop", user="app", application_name=f"lab-{name}", autocommit=True)
        for name in "abc"
    }
    a, b, c = conns["a"], conns["b"], conns["c"]
    b.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)")
    b.execute("TRUNCATE items")
    for i in range(3):
        a.execute("SELECT name FROM items WHERE id = %s", (i,), prepare=True)
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)

    for name, conn in conns.items():
        conn.execute(f"SELECT 1 AS mark_{name}", prepare=False)

    for i in range(20):
        a.execute("SELECT name FROM items WHERE id = %s", (i,), prepare=True)

    for i in range(10):
        b.execute("INSERT INTO items (id, name) VALUES (%s, %s)", (i, f"secret-name-{i}"))
    with b.transaction():
        b.execute("UPDATE items SET name = %s WHERE id = %s", ("renamed", 1))
        b.execute("DELETE FROM items WHERE id = %s", (9,))
    for statement, params in [("SELECT * FROM no_such_table WHERE id = %s", (1,)), ("SELECT 1 / %s", (0,))]:
        try:
            b.execute(statement, params)
        except psycopg.Error:
            pass

    with c.pipeline():
        for i in range(5):
            c.execute("SELECT name FROM items WHERE id = %s", (i,))
    try:
        with c.pipeline():
            c.execute("SELECT count(*) FROM items")
            c.execute("SELECT * FROM missing_in_pipeline")
            c.execute("SELECT name FROM items WHERE id = %s", (2,))
            c.execute("SELECT name FROM items WHERE id = %s", (3,))
    except psycopg.Error:
        pass
    psycopg.ClientCursor(c).execute("SELECT %s::text || %s AS answer", ("inline-secret", 42))
    with c.cursor().copy("COPY items (id, name) FROM STDIN") as copy:
        for i in range(100, 105):
            copy.write_row((i, f"copied-secret-{i}"))
    for conn in conns.values():
        conn.close()


if __name__ == "__main__":
    main()
