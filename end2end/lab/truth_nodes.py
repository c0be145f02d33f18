#!/usr/bin/env python3
"""Ground truth of a multi-node lab run (nodes.sh) from the servers' and clients' own logs, phase
by phase: what each pod served, to whom, on how many connections, and the DNS queries. Nothing
here looks at packets.

usage: truth_nodes.py OUTDIR   (reads OUTDIR/logs/*.log and phases.json, writes ground-truth.json)
"""
import collections
import glob
import json
import os
import sys

import cluster

out = sys.argv[1]


def read(pattern):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "logs", pattern))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


with open(os.path.join(out, "phases.json")) as f:
    phases = json.load(f)
# Addresses a request arrives from after kube-proxy's SNAT: the nodes and their bridges.
node_addresses = {n["ip"] for n in cluster.NODES} | {n["bridge_ip"] for n in cluster.NODES}
served = read("web-*.log") + read("api-*.log")
dns = read("dns.log")


def within(rows, p):
    return [r for r in rows if p["from"] <= r["ts"] <= p["to"] + 1.0]


truth = {"phases": []}
for p in phases:
    rows = within(served, p)
    pods = {}
    for pod in cluster.PODS:
        if pod["port"] not in (3000, 8080):
            continue
        mine = [r for r in rows if r["pod"] == pod["name"]]
        probes = [r for r in mine if r["user_agent"].startswith("kube-probe/")]
        # The real client: a probe comes from its node; any other request from a node address
        # came from outside through the NodePort.
        clients = collections.Counter(
            r["peer_ip"] if r in probes or r["peer_ip"] not in node_addresses else cluster.EXTERNAL["ip"]
            for r in mine)
        pods[f"{pod['namespace']}/{pod['name']}"] = {
            "node": cluster.node_of(pod["node"])["name"], "requests": len(mine), "probe_requests": len(probes),
            "connections": len({r["conn"] for r in mine if r not in probes}),
            "by_client": dict(clients),
        }
    clients = {}
    for name in ("ext", "client-a-direct", "client-a-keepalive", "client-a-orders", "client-b"):
        clients[name] = len(read(f"{name}-{p['name']}.log"))
    queries = within(dns, p)
    truth["phases"].append({
        "name": p["name"], "from": p["from"], "to": p["to"], "pods": pods, "clients": clients,
        "dns": {"queries": len(queries), "by_client": dict(collections.Counter(q["client"] for q in queries))},
    })
with open(os.path.join(out, "ground-truth.json"), "w") as f:
    json.dump(truth, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps({p["name"]: sum(v["requests"] for v in p["pods"].values()) for p in truth["phases"]}))
