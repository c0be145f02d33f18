"""A Redis client as services are: redis-py's connection pool shared by worker threads. The pool's
four connections are opened (and used) first; the capture starts only then, so podtap joins every
one of them mid-stream. After GO_FILE appears, each connection first GETs `mark:N` (the server's
MONITOR feed shows from where on the capture has it), then four threads share the pool: SET, GET,
INCR, a pipeline of HSETs, a MULTI/EXEC transaction now and then, and a command on the wrong
type now and then (a WRONGTYPE error). The summary (commands sent from the marks on, errors got) goes to LOG as JSON.

usage: redis_pool.py HOST LOG READY_FILE GO_FILE
"""

import json
import os
import sys
import threading
import time

import redis

CONNECTIONS = 4
ROUNDS = 15


def main():
    host, log, ready, go = sys.argv[1:5]
    pool = redis.ConnectionPool(host=host, port=6379, max_connections=CONNECTIONS)
    conns = [pool.get_connection("PING") for _ in range(CONNECTIONS)]
    for conn in conns:
        conn.send_command("PING")
        conn.read_response()
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)

    for i, conn in enumerate(conns):
        conn.send_command("GET", f"mark:{i}")
        conn.read_response()
    for conn in conns:
        pool.release(conn)

    errors = [0] * CONNECTIONS
    sent = [0] * CONNECTIONS  # commands, as the server runs them (MULTI and EXEC too)
    failures = []

    def work(n):
        r = redis.Redis(connection_pool=pool)
        try:
            for i in range(ROUNDS):
                r.set(f"user:{n}:{i}", f"secret-value-{n}-{i}")
                r.get(f"user:{n}:{i}")
                r.incr(f"hits:{n}")
                pipe = r.pipeline(transaction=False)
                for k in range(3):
                    pipe.hset(f"cart:{n}:{i}", f"item{k}", f"secret-item-{k}")
                pipe.execute()
                sent[n] += 6
                if i % 5 == 0:
                    tx = r.pipeline(transaction=True)
                    tx.incr(f"orders:{n}")
                    tx.expire(f"orders:{n}", 60)
                    tx.execute()
                    sent[n] += 4
                if i % 7 == 3:
                    sent[n] += 1
                    try:
                        r.lpush(f"user:{n}:{i}", "x")  # a string: WRONGTYPE
                    except redis.ResponseError:
                        errors[n] += 1
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            failures.append(repr(e))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"the workers failed: {failures}")
    with open(log, "w") as f:
        json.dump({"commands": CONNECTIONS + sum(sent), "errors": sum(errors), "connections": CONNECTIONS}, f)
    pool.disconnect()


if __name__ == "__main__":
    main()
