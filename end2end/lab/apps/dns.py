#!/usr/bin/env python3
"""The lab's cluster DNS (the CoreDNS pod behind kube-dns): answers A records for the lab's Services
from a fixed table, NOERROR with no answer for other types of known names, NXDOMAIN for the rest.

One JSON line per query is logged (ground truth): client, id, name, type, rcode.
"""
import json
import socket
import struct
import sys
import time

LISTEN = sys.argv[1]
LOG = open(sys.argv[2], "a", buffering=1)
RECORDS = dict(arg.split("=", 1) for arg in sys.argv[3:])  # name=ipv4
QTYPES = {1: "A", 28: "AAAA", 33: "SRV", 12: "PTR"}


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
    known = name in RECORDS
    rcode = 0 if known else 3
    answers = b""
    if known and qtype == 1:
        answers = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4)
                   + socket.inet_aton(RECORDS[name]))
    flags = 0x8400 | 0x0100 | 0x0080 | rcode  # QR AA, RD copied, RA
    header = struct.pack("!HHHHHH", qid, flags, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers, name, qtype, rcode


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LISTEN, 53))
    while True:
        query, peer = sock.recvfrom(512)
        try:
            reply, name, qtype, rcode = answer(query)
        except (IndexError, struct.error):
            continue
        sock.sendto(reply, peer)
        LOG.write(json.dumps({
            "ts": time.time(), "client": peer[0], "id": struct.unpack("!H", query[:2])[0],
            "query": name, "qtype": QTYPES.get(qtype, str(qtype)),
            "rcode": "NOERROR" if rcode == 0 else "NXDOMAIN",
        }) + "\n")


if __name__ == "__main__":
    main()
