#!/usr/bin/env python3
"""DNS the resolver library never sends on its own: two queries pipelined on one TCP connection
(RFC 7766), one more TCP connection with a single query, and a TXT query over UDP whose ~3 KB
answer arrives in IP fragments. Sent to the kube-dns ClusterIP; the server logs the truth.

usage: dnsq.py SERVER_IP
"""
import random
import socket
import struct
import sys

SERVER = sys.argv[1]


def query(name, qtype):
    qid = random.randrange(65536)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise SystemExit("dnsq: the server closed early")
        data += chunk
    return data


def over_tcp(*questions):
    with socket.create_connection((SERVER, 53), timeout=5) as conn:
        conn.sendall(b"".join(struct.pack("!H", len(q)) + q for q in (query(*x) for x in questions)))
        for _ in questions:
            read_exactly(conn, struct.unpack("!H", read_exactly(conn, 2))[0])


def main():
    over_tcp(("web.default.svc.cluster.local", 1), ("web.default.svc.cluster.local", 28))
    over_tcp(("nope.default.svc.cluster.local", 1))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(5)
    udp.sendto(query("big.kube-system.svc.cluster.local", 16), (SERVER, 53))
    reply, _ = udp.recvfrom(65535)
    assert len(reply) > 1500, len(reply)


if __name__ == "__main__":
    main()
