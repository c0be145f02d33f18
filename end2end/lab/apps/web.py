#!/usr/bin/env python3
"""The lab's HTTP/1.1 app (one replica of `web`): keep-alive, JSON bodies, /health for probes.

Every request is logged as one JSON line (the ground truth podtap is checked against): which pod,
which server-side connection, the peer address as the pod saw it, method, path, status, user agent.
"""
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

    def _reply(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        LOG.write(json.dumps({
            "ts": time.time(), "pod": POD, "conn": self.conn_id,
            "peer_ip": self.client_address[0], "peer_port": self.client_address[1],
            "method": self.command, "path": self.path, "status": status,
            "user_agent": self.headers.get("User-Agent", ""),
        }) + "\n")

    def _chunked(self, parts):
        """A 200 with Transfer-Encoding: chunked (RFC 9112 section 7.1), one chunk per part."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in parts:
            data = part.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()  # one write per chunk: chunks cross segment boundaries
        self.wfile.write(b"0\r\n\r\n")
        LOG.write(json.dumps({
            "ts": time.time(), "pod": POD, "conn": self.conn_id,
            "peer_ip": self.client_address[0], "peer_port": self.client_address[1],
            "method": self.command, "path": self.path, "status": 200,
            "user_agent": self.headers.get("User-Agent", ""),
        }) + "\n")

    def do_GET(self):
        if self.path == "/chunked":
            self._chunked([f"user-{i} " * 40 for i in range(1, 4)])
        elif self.path == "/health":
            self._reply(200, "ok", "text/plain")
        elif self.path == "/users":
            self._reply(200, json.dumps(USERS))
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
