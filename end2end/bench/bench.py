#!/usr/bin/env python3
"""podtap's file benchmark: times `podtap analyze` against `tcpdump -r FILE -w /dev/null` (a plain
read) and `tshark -Y http.request` (full dissection) on the same capture, with interleaved runs,
medians, ratios and peak RSS, and checks podtap's and tshark's request counts against the servers'
logs (ground-truth.json from bench-capture.sh). Each format the capture directory holds is timed:
the pcapng of every interface and, when there, its classic-pcap merge (capture.pcap). podtap runs
on the threads it chooses, and on one (`--threads 1`) beside it.

usage: bench.py CAPTURE_DIR PODTAP_BINARY [--runs N] [--tshark-runs N]   (--tshark-runs 0: no tshark)
Prints a Markdown report to stdout.
"""
import argparse
import json
import os
import statistics
import subprocess
import time


def run(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (wall seconds, CPU seconds, peak RSS in MiB, stdout text or None)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if stdout == subprocess.PIPE else None
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out.decode() if out is not None else None


def count_lines(cmd, keep=lambda line: True):
    """Counts the output lines of cmd that pass keep, reading as a stream."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    n = sum(1 for line in proc.stdout if keep(line))
    proc.wait()
    return n


def count_answered_http(cmd):
    return count_lines(cmd, lambda line: b'"kind":"http"' in line and b'"status":null' not in line)


def time_format(a, cap, cluster):
    """Interleaved runs of every tool on one capture: (wall times, CPU times, peak RSS, the summary
    podtap printed)."""
    podtap = [a.podtap, "analyze", cap, "--cluster", cluster, "--format", "summary"]
    tools = {
        "tcpdump -r FILE -w /dev/null": ["tcpdump", "-r", cap, "-w", "/dev/null"],
        "podtap analyze --format summary": podtap,
        "podtap analyze --format summary --threads 1": podtap + ["--threads", "1"],
        "podtap analyze --format summary --per-interface": podtap + ["--per-interface"],
    }
    times = {name: [] for name in tools}
    cpus = {name: [] for name in tools}
    rss = {name: 0.0 for name in tools}
    summaries = []
    run(tools["tcpdump -r FILE -w /dev/null"])  # warm the page cache for everyone
    for _ in range(a.runs):  # interleaved, so drift in the machine hits every tool alike
        for name, cmd in tools.items():
            wall, cpu, peak, out = run(cmd, subprocess.PIPE if "podtap" in name else subprocess.DEVNULL)
            times[name].append(wall)
            cpus[name].append(cpu)
            rss[name] = max(rss[name], peak)
            if out and "--per-interface" not in name:
                summaries.append(out)
    if len(set(summaries)) != 1:
        raise SystemExit(f"{cap}: podtap's summaries differ between its runs (threads or not)")
    return times, cpus, rss, json.loads(summaries[0])


def report(a, cap, times, cpus, rss):
    size_mb = os.path.getsize(cap) / 1e6
    base = statistics.median(times["tcpdump -r FILE -w /dev/null"])
    print(f"Capture: {size_mb:.0f} MB, {cap}\n")
    print("| tool | median wall time | vs tcpdump | MB/s | median CPU time | peak RSS |")
    print("|---|---|---|---|---|---|")
    for name in times:
        m = statistics.median(times[name])
        cpu = statistics.median(cpus[name])
        print(f"| `{name}` | {m:.2f} s | {m / base:.2f}× | {size_mb / m:.0f} | {cpu:.2f} s | {rss[name]:.0f} MiB |")
    print(f"\nRuns: {a.runs} interleaved. podtap's peak RSS includes the capture's mapped pages "
          "(file-backed, reclaimable).\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("podtap")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tshark-runs", type=int, default=1)
    a = ap.parse_args()
    cap, cluster = f"{a.dir}/capture.pcapng", f"{a.dir}/cluster.json"
    truth = json.load(open(f"{a.dir}/ground-truth.json"))["requests_per_pod"]
    summary = None
    for path in [cap, f"{a.dir}/capture.pcap"]:
        if not os.path.exists(path):
            continue
        times, cpus, rss, s = time_format(a, path, cluster)
        if summary is not None and s != summary:
            raise SystemExit(f"{path}: podtap's summary differs from the pcapng's")
        summary = s
        report(a, path, times, cpus, rss)
    # Counted after the timed runs and streamed: a parent holding gigabytes would inflate every
    # later child's peak RSS (a forked child starts with the parent's pages).
    # One record per observation here: each request counts once per veth it crossed, as tshark sees it.
    podtap_count = count_answered_http([a.podtap, "analyze", cap, "--per-interface", "--format", "jsonl"])
    tshark = ["tshark", "-r", cap, "-Y", "http.request", "-T", "fields", "-e", "frame.number"]
    tshark_times, tshark_rss = [], 0.0
    for _ in range(a.tshark_runs):
        wall, _, peak, _ = run(tshark)
        tshark_times.append(wall)
        tshark_rss = max(tshark_rss, peak)
    tshark_count = count_lines(tshark) if a.tshark_runs else None  # --tshark-runs 0: not run
    if tshark_times:
        m = statistics.median(tshark_times)
        print(f"`tshark -Y http.request` on the pcapng: {m:.1f} s, {os.path.getsize(cap) / 1e6 / m:.1f} MB/s, "
              f"{tshark_rss:.0f} MiB ({a.tshark_runs} runs).\n")
    web = next(s for s in summary["services"] if s["service"] == "default/web")
    print("| pod | nginx access log | podtap requests | podtap connections |")
    print("|---|---|---|---|")
    exact = True
    for e in web["endpoints"]:
        logged = truth.get(e["pod"], 0)
        exact &= logged == e["requests"]
        print(f"| {e['pod']} | {logged} | {e['requests']} | {e['connections']} |")
    observations = 2 * sum(truth.values())  # each request crosses the client's and a server's veth
    print(f"\nThe servers logged {sum(truth.values())} requests; each crosses the client's and a server's veth: "
          f"{observations} observations.")
    print(f"podtap: {podtap_count} answered HTTP exchanges; tshark: {tshark_count if tshark_count is not None else 'not run'}.")
    tshark_exact = ("not run" if tshark_count is None else "yes" if tshark_count == observations
                    else f"no, {observations - tshark_count} short")
    print(f"podtap exact: {'yes' if exact and podtap_count == observations else 'NO'}; tshark exact: {tshark_exact}")
    live = f"{a.dir}/live-health.json"
    if os.path.exists(live):
        h = json.load(open(live))
        c = h["capture"]
        print(f"\nLive, during the same load: `podtap serve --pod-interfaces` (beside the three tcpdumps) took "
              f"{c['packets']} packets from the kernel, {c['drops']} dropped "
              f"({100 * c['drops'] / max(c['packets'], 1):.3f}%), and made {h['records']} records "
              f"(one per request: {sum(truth.values())} requests logged).")


if __name__ == "__main__":
    main()
