#!/usr/bin/env python3
"""kubelet-style HTTP probes: GET PATH on each pod IP directly, a new connection every time,
User-Agent kube-probe/1.31, every PERIOD seconds, ROUNDS times.

usage: probe.py PERIOD ROUNDS PATH IP:PORT...
"""
import http.client
import sys
import time

PERIOD, ROUNDS, PATH = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
TARGETS = [t.rsplit(":", 1) for t in sys.argv[4:]]

for _ in range(ROUNDS):
    for ip, port in TARGETS:
        conn = http.client.HTTPConnection(ip, int(port), timeout=2)
        conn.request("GET", PATH, headers={"User-Agent": "kube-probe/1.31", "Accept": "*/*",
                                           "Connection": "close"})
        conn.getresponse().read()
        conn.close()
    time.sleep(PERIOD)
