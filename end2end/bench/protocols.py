#!/usr/bin/env python3
"""podtap's per-protocol benchmark: on each capture bench-db.sh made with a database's own load
generator (and on HTTP's, when given), times `podtap analyze --format summary` against
`tcpdump -r FILE -w /dev/null` (a plain read) and, once, `tshark` dissecting the same protocol,
with interleaved runs and medians; reports MB/s, the ratio to tcpdump and podtap's records per
kind (counted apart, from `--format jsonl`).

usage: protocols.py CAPTURE_DIR PODTAP_BINARY [--runs N] [--http CAPTURE] [--tshark-runs N]
Prints a Markdown report to stdout.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess

from bench import run  # (wall seconds, CPU seconds, peak RSS in MiB, stdout): the file benchmark's timer

# The capture, the kind podtap gives its requests, and tshark's display filter for them.
CAPTURES = [
    ("redis.pcap", "redis", "resp"),
    ("postgres.pcap", "postgres", "pgsql"),
    ("mysql.pcap", "mysql", "mysql.command"),
    ("kafka.pcap", "kafka", "kafka"),
]


def kinds(podtap, cap):
    """podtap's records of the capture, per kind."""
    proc = subprocess.Popen([podtap, "analyze", cap, "--format", "jsonl"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    counts = collections.Counter(json.loads(line)["kind"] for line in proc.stdout)
    proc.wait()
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("podtap")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tshark-runs", type=int, default=1)
    ap.add_argument("--http", help="HTTP's capture (the file benchmark's), measured the same way")
    a = ap.parse_args()
    captures = [(f"{a.dir}/{name}", kind, shark) for name, kind, shark in CAPTURES]
    if a.http:
        captures.append((a.http, "http", "http.request"))
    counts = json.load(open(f"{a.dir}/counts.json"))
    print(f"podtap per protocol, {a.runs} interleaved runs (median); load generators' counts: {counts}\n")
    print("| protocol | capture | tcpdump -r | podtap analyze | podtap MB/s | × tcpdump | podtap peak RSS | "
          "tshark (1 run) | podtap's records |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cap, kind, shark in captures:
        size = os.path.getsize(cap) / 1e6
        tools = {
            "tcpdump": ["tcpdump", "-r", cap, "-w", "/dev/null"],
            "podtap": [a.podtap, "analyze", cap, "--format", "summary"],
        }
        run(tools["tcpdump"])  # the page cache warm for both
        times = {name: [] for name in tools}
        rss = 0.0
        for _ in range(a.runs):
            for name, cmd in tools.items():
                wall, _, peak, _ = run(cmd)
                times[name].append(wall)
                if name == "podtap":
                    rss = max(rss, peak)
        tshark = "—"
        if a.tshark_runs > 0:
            walls = [run(["tshark", "-r", cap, "-Y", shark])[0] for _ in range(a.tshark_runs)]
            tshark = f"{statistics.median(walls):.2f} s"
        t, p = statistics.median(times["tcpdump"]), statistics.median(times["podtap"])
        records = kinds(a.podtap, cap)
        shown = ", ".join(f"{k} {n:,}" for k, n in records.most_common())
        print(f"| {kind} | {size:.1f} MB | {t:.3f} s | {p:.3f} s | {size / p:.0f} | {p / t:.1f}× | {rss:.0f} MiB | "
              f"{tshark} | {shown} |")


if __name__ == "__main__":
    main()
