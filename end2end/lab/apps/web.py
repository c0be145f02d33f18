#!/usr/bin/env python3
"""The lab's HTTP/1.1 app (a replica of `web`, or of `api` in namespace shop): keep-alive, JSON
bodies, /health for probes. /orders/ID is answered by `api` (404 for `missing`, 500 for `boom`);
`web`, given an UPSTREAM (api's ClusterIP:port), passes it on there: over one keep-alive connection
per web pod, or a new connection when the ID ends in `-fresh` — so kube-proxy, which picks a
backend per connection, spreads the calls unevenly, as it does in real clusters.

Every request is logged as one JSON line (the ground truth podtap is checked against): which pod,
which server-side connection, the peer address as the pod saw it, method, path, status, user agent.

usage: web.py POD PORT LOG [UPSTREAM]
"""
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POD = sys.argv[1]
PORT = int(sys.argv[2])
LOG = open(sys.argv[3], "a", buffering=1)
_conn_lock = threading.Lock()
_conn_seq = 0
USERS = [{"id": i, "name": f"user-{i}"} for i in range(1, 6)]
UPSTREAM = sys.argv[4] if len(sys.argv) > 4 else None
_upstream_lock = threading.Lock()
_upstream = None


def call_upstream(path):
    """GET path on UPSTREAM: (status, body). One shared keep-alive connection unless `-fresh`."""
    global _upstream
    host, port = UPSTREAM.rsplit(":", 1)
    headers = {"User-Agent": "web/1.0", "Accept": "application/json"}
    if path.endswith("-fresh"):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", path, headers={**headers, "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body
    with _upstream_lock:
        if _upstream is None:
            _upstream = http.client.HTTPConnection(host, int(port), timeout=5)
        _upstream.request("GET", path, headers=headers)
        resp = _upstream.getresponse()
        return resp.status, resp.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says otherwise

    def setup(self):
        global _conn_seq
        super().setup()
        with _conn_lock:
            _conn_seq += 1
            self.conn_id = _conn_seq

    def log_message(self, *args):  # the JSON log below replaces the default stderr line
        pass

    def _log(self, status):
        # Logged before the answer goes out: a pod stopped (SIGTERM ends this process at once)
        # between its answer and its log line would have served a request its log never shows.
        LOG.write(json.dumps({
            "ts": time.time(), "pod": POD, "conn": self.conn_id,
            "peer_ip": self.client_address[0], "peer_port": self.client_address[1],
            "method": self.command, "path": self.path, "status": status,
            "user_agent": self.headers.get("User-Agent", ""),
        }) + "\n")

    def _reply(self, status, body, ctype="application/json"):
        data = body.encode()
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _chunked(self, parts):
        """A 200 with Transfer-Encoding: chunked (RFC 9112 section 7.1), one chunk per part."""
        self._log(200)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            data = part.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()  # one write per chunk: chunks cross segment boundaries
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        if self.path == "/chunked":
            self._chunked([f"user-{i} " * 40 for i in range(1, 4)])
        elif self.path == "/health":
            self._reply(200, "ok", "text/plain")
        elif self.path == "/users":
            self._reply(200, json.dumps(USERS))
        elif self.path.startswith("/orders/") and UPSTREAM:
            status, body = call_upstream(self.path)
            self._reply(status, body.decode())
        elif self.path.startswith("/orders/"):
            order = self.path[len("/orders/"):].removesuffix("-fresh")
            if order == "missing":
                self._reply(404, json.dumps({"error": "no such order"}))
            elif order == "boom":
                self._reply(500, json.dumps({"error": "database unavailable"}))
            else:
                self._reply(200, json.dumps({"id": order, "pod": POD}))
        elif self.path.startswith("/users/"):
            tail = self.path[len("/users/"):]
            user = next((u for u in USERS if str(u["id"]) == tail), None)
            if user:
                self._reply(200, json.dumps(user))
            else:
                self._reply(404, json.dumps({"error": "no such user"}))
        else:
            self._reply(404, json.dumps({"error": "not found"}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            user = json.loads(body)
            self._reply(201, json.dumps({"id": 99, "name": user.get("name", "")}))
        except ValueError:
            self._reply(400, json.dumps({"error": "bad json"}))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server(("0.0.0.0", PORT), Handler).serve_forever()
