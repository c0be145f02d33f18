#!/usr/bin/env python3
"""The lab's traffic: an HTTP client that resolves names through the pod's resolv.conf and either
reuses one keep-alive connection for a burst or opens a new connection per request (as curl in a
loop does). Each request is logged as one JSON line on the client side.

usage: client.py LOG HOST PORT MODE COUNT PAUSE_S [NAME [POD_ADDRESS…]]
  (MODE: keepalive | per-request | pipeline | orders | moved)

orders: one keep-alive connection asking GET /orders/ID, which web passes on to the api Service
(every 6th order is missing: 404; every 9th fails: 500; every 4th asks for a new upstream
connection).

moved: a connection per request, each from a source port of its own, opened (and closed, empty)
first straight to port 3000 of every POD_ADDRESS, then to HOST:PORT (a ClusterIP): whichever pod
kube-proxy's DNAT picks, the connection's reply would clash with an empty one conntrack still
holds (TIME_WAIT, two minutes), so conntrack gives it another source port on the way.

pipeline: batches of 4 requests written at once on a new connection before any response is read
(HTTP/1.1 pipelining, RFC 9112 section 9.3.2), the responses then read in order.
"""
import http.client
import json
import os
import socket
import sys
import time

LOG = open(sys.argv[1], "a", buffering=1)
HOST, PORT, MODE, COUNT, PAUSE = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
NAME = sys.argv[7] if len(sys.argv) > 7 else "client"
MOVED_AGENT = "podtap-lab-moved/1"
HEADERS = {"User-Agent": "curl/8.5.0", "Accept": "*/*", "Authorization": "Bearer lab-secret-token"}


def order_path(i):
    order = "missing" if i % 6 == 5 else "boom" if i % 9 == 8 else str(i)
    return f"/orders/{order}" + ("-fresh" if i % 4 == 3 else "")


def request(conn, i):
    """Mostly GET /users, every 5th a user by id (every 10th a missing one), every 7th a POST;
    in orders mode, GET /orders/…."""
    if MODE == "orders":
        path, method = order_path(i), "GET"
        conn.request("GET", path, headers=HEADERS)
    elif i % 7 == 6:
        body = json.dumps({"name": f"new-{i}"})
        conn.request("POST", "/users", body=body,
                     headers={**HEADERS, "Content-Type": "application/json"})
        path, method = "/users", "POST"
    else:
        path = f"/users/{i % 10}" if i % 5 == 4 else "/users"
        conn.request("GET", path, headers=HEADERS)
        method = "GET"
    resp = conn.getresponse()
    resp.read()
    LOG.write(json.dumps({"ts": time.time(), "client": NAME, "mode": MODE, "method": method,
                          "path": path, "status": resp.status,
                          "local_port": conn.sock.getsockname()[1]}) + "\n")


class SharedReader:
    """One buffered reader for several responses on a socket; HTTPResponse must not close it."""

    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile("rb")

    def makefile(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return getattr(self.file, name)

    def close(self):
        pass


def pipeline():
    paths = ["/users", "/chunked", "/users/2", "/chunked"]
    for start in range(0, COUNT, len(paths)):
        batch = paths[: min(len(paths), COUNT - start)]
        sock = socket.create_connection((HOST, PORT), timeout=5)
        wire = b"".join(f"GET {p} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: curl/8.5.0\r\n\r\n".encode() for p in batch)
        sock.sendall(wire)
        reader = SharedReader(sock)
        for path in batch:
            resp = http.client.HTTPResponse(reader, method="GET")
            resp.begin()
            resp.read()
            LOG.write(json.dumps({"ts": time.time(), "client": NAME, "mode": MODE, "method": "GET", "path": path,
                                  "status": resp.status, "local_port": sock.getsockname()[1]}) + "\n")
        sock.close()
        time.sleep(PAUSE)


def bound(port):
    """A socket bound to `port`, which a closed connection of this client may still hold."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    sock.settimeout(5)
    return sock


class FromPort(http.client.HTTPConnection):
    """An HTTP connection from a chosen source port."""

    def __init__(self, host, port, local):
        super().__init__(host, port, timeout=5)
        self.local = local

    def connect(self):
        self.sock = bound(self.local)
        self.sock.connect((self.host, self.port))


def moved():
    # Its own user agent: what tells its calls apart in the web pods' logs (its address was
    # another pod's a moment ago).
    HEADERS["User-Agent"] = MOVED_AGENT
    pods = sys.argv[8:]
    base = 20000 + (os.getpid() % 400) * 20
    for i in range(COUNT):
        port = base + i
        for pod in pods:
            sock = bound(port)
            sock.connect((pod, 3000))
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # the server's close: both FINs, so conntrack keeps it in TIME_WAIT
            sock.close()
        conn = FromPort(HOST, PORT, port)
        request(conn, i)
        conn.close()
        time.sleep(PAUSE)


def main():
    if MODE == "moved":
        moved()
        return
    if MODE == "pipeline":
        pipeline()
        return
    if MODE in ("keepalive", "orders"):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
        for i in range(COUNT):
            request(conn, i)
            time.sleep(PAUSE)
        conn.close()
    else:
        for i in range(COUNT):
            conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
            request(conn, i)
            conn.close()
            time.sleep(PAUSE)


if __name__ == "__main__":
    main()
