"""A Redis client as applications are: redis-py, connections opened and used before the capture
starts (joined mid-stream), then on each a mix: `a` GETs and SETs and two errors (WRONGTYPE,
ERR); `b` a pipeline and a MULTI/EXEC transaction; a subscriber (`pubsub`, its own connection,
opened after the capture began) gets the messages `a` publishes. Each connection first GETs
`mark:<name>`: the server's MONITOR feed and the capture both show which connection is which.

usage: redis_client.py HOST READY_FILE GO_FILE
"""

import os
import sys
import time

import redis


def main():
    host, ready, go = sys.argv[1:4]
    conns = {name: redis.Redis(host=host, port=6379, single_connection_client=True) for name in "ab"}
    a, b = conns["a"], conns["b"]
    for conn in conns.values():
        conn.ping()
    a.set("warm", "up")
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)

    for name, conn in conns.items():
        conn.get(f"mark:{name}")
    sub = redis.Redis(host=host, port=6379).pubsub()
    sub.subscribe("news")
    sub.get_message(timeout=5)  # the confirmation

    for i in range(20):
        a.set(f"user:{i}", f"secret-value-{i}")
        a.get(f"user:{i}")
    for statement in (lambda: a.lpush("user:1", "x"), lambda: a.incr("user:2")):
        try:
            statement()
        except redis.ResponseError:
            pass
    for i in range(3):
        a.publish("news", f"secret-message-{i}")

    pipe = b.pipeline(transaction=False)
    for i in range(10):
        pipe.hset(f"cart:{i}", "item", f"secret-item-{i}")
    pipe.execute()
    tx = b.pipeline(transaction=True)
    tx.incr("orders")
    tx.expire("orders", 60)
    tx.get("orders")
    tx.execute()

    got = 0
    deadline = time.time() + 10
    while got < 3 and time.time() < deadline:
        if sub.get_message(timeout=1):
            got += 1
    if got != 3:
        sys.exit(f"the subscriber got {got} of 3 messages")
    sub.unsubscribe("news")
    sub.get_message(timeout=5)
    sub.close()
    for conn in conns.values():
        conn.close()


if __name__ == "__main__":
    main()
