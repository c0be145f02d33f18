#!/usr/bin/env python3
"""The lab's cluster DNS (the CoreDNS pod behind kube-dns), over UDP and TCP (RFC 7766: several
length-prefixed queries per connection): A records for the lab's Services from a fixed table,
NOERROR with no answer for other types of known names, NXDOMAIN for the rest — except names under
big., which get a TXT answer of about 3 KB: over UDP the kernel must fragment it (MTU 1500).

One JSON line per query is logged (ground truth): client, id, name, type, rcode, transport and the
size of the answer.
"""
import json
import socket
import struct
import sys
import threading
import time

LISTEN = sys.argv[1]
LOG = open(sys.argv[2], "a", buffering=1)
LOCK = threading.Lock()
RECORDS = dict(arg.split("=", 1) for arg in sys.argv[3:])  # name=ipv4
QTYPES = {1: "A", 16: "TXT", 28: "AAAA", 33: "SRV", 12: "PTR"}
BIG_TXT = b"".join(bytes([250]) + bytes([97 + i % 26]) * 250 for i in range(12))


def parse_question(msg):
    """Returns (name, qtype, end offset) of the first question (RFC 1035 section 4.1.2)."""
    labels, i = [], 12
    while msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, _qclass = struct.unpack("!HH", msg[i + 1:i + 5])
    return ".".join(labels).lower(), qtype, i + 5


def answer(query):
    qid, _flags = struct.unpack("!HH", query[:4])
    name, qtype, end = parse_question(query)
    big = name.startswith("big.")
    known = name in RECORDS or big
    rcode = 0 if known else 3
    answers = b""
    if name in RECORDS and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(RECORDS[name])
    elif big and qtype == 16:
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 5, len(BIG_TXT)) + BIG_TXT
    flags = 0x8400 | 0x0100 | 0x0080 | rcode  # QR AA, RD copied, RA
    header = struct.pack("!HHHHHH", qid, flags, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers, name, qtype, rcode


def log(peer, query, name, qtype, rcode, transport, size):
    with LOCK:
        LOG.write(json.dumps({
            "ts": time.time(), "client": peer[0], "id": struct.unpack("!H", query[:2])[0],
            "query": name, "qtype": QTYPES.get(qtype, str(qtype)),
            "rcode": "NOERROR" if rcode == 0 else "NXDOMAIN", "transport": transport, "response_bytes": size,
        }) + "\n")


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_tcp_conn(conn, peer):
    with conn:
        while (head := read_exactly(conn, 2)) is not None:
            query = read_exactly(conn, struct.unpack("!H", head)[0])
            if query is None:
                return
            reply, name, qtype, rcode = answer(query)
            conn.sendall(struct.pack("!H", len(reply)) + reply)
            log(peer, query, name, qtype, rcode, "tcp", len(reply))


def serve_tcp():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((LISTEN, 53))
    srv.listen(16)
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=serve_tcp_conn, args=(conn, peer), daemon=True).start()


def main():
    threading.Thread(target=serve_tcp, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LISTEN, 53))
    while True:
        query, peer = sock.recvfrom(512)
        try:
            reply, name, qtype, rcode = answer(query)
        except (IndexError, struct.error):
            continue
        sock.sendto(reply, peer)
        log(peer, query, name, qtype, rcode, "udp", len(reply))


if __name__ == "__main__":
    main()
