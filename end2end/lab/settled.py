#!/usr/bin/env python3
"""Waits until a podtap serve or hub holds every request the lab's servers logged, instead of a
fixed sleep: its HTTP records number at least the lines of OUTDIR/logs/web-*.log and api-*.log
(only those within the named phases of OUTDIR/phases.json, when given, as truth_nodes.py counts
them), and its total of records has stopped changing (connection records follow their requests).
Gives up after 30 s with a line saying how far it got: the tests then say exactly what is missing.

usage: settled.py URL OUTDIR [TOKEN] [PHASE,PHASE…]
"""
import glob
import json
import os
import sys
import time
import urllib.request

url, out = sys.argv[1], sys.argv[2]
token = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
names = sys.argv[4].split(",") if len(sys.argv) > 4 else None

rows = []
for pattern in ("web-*.log", "api-*.log"):
    for path in glob.glob(os.path.join(out, "logs", pattern)):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
windows = None
if names:
    with open(os.path.join(out, "phases.json")) as f:
        windows = [(p["from"], p["to"] + 1.0) for p in json.load(f) if p["name"] in names]
    rows = [r for r in rows if any(a <= r["ts"] <= b for a, b in windows)]
logged = len(rows)


def held():
    req = urllib.request.Request(url + "/api/v1/records?limit=10000&kind=all")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    page = json.load(urllib.request.urlopen(req, timeout=5))
    http = [r for r in page["records"] if r["kind"] == "http"]
    if windows:
        http = [r for r in http if any(a <= r["ts"] / 1e6 <= b for a, b in windows)]
    return len(http), page["total"]


deadline = time.monotonic() + 30
last = None
while True:
    try:
        http, total = held()
    except OSError as e:
        http, total = 0, f"unreachable ({e})"
    if http >= logged and total == last:
        sys.exit(0)
    if time.monotonic() > deadline:
        print(f"settled.py: {http} HTTP records of {logged} logged requests after 30 s (total {total})",
              file=sys.stderr)
        sys.exit(0)
    last = total if http >= logged else None
    time.sleep(0.3)
