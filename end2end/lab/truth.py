#!/usr/bin/env python3
"""Turns the servers' and clients' own logs from one lab run into ground-truth.json: what podtap's
counts must equal. Nothing here looks at packets.

usage: truth.py OUTDIR   (reads OUTDIR/logs/*.log, writes OUTDIR/ground-truth.json)
"""
import collections
import glob
import json
import os
import sys

import topology

out = sys.argv[1]


def read(pattern):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "logs", pattern))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def count(rows, key):
    return dict(collections.Counter(str(r[key]) for r in rows))


served = read("web-*.log") + read("api-*.log")
pods = {}
for p in topology.PODS:
    mine = [r for r in served if r["pod"] == p["name"]]
    if p["port"] not in (3000, 8080):
        continue
    pods[f"{p['namespace']}/{p['name']}"] = {
        "ip": p["ip"], "interface": p["veth"], "requests": len(mine),
        "connections": len({r["conn"] for r in mine}),
        "probe_requests": sum(r["user_agent"].startswith("kube-probe/") for r in mine),
        "by_path": count(mine, "path"), "by_status": count(mine, "status"),
        "by_peer": count(mine, "peer_ip"),
    }

clients = {}
for name in ("client", "ext"):
    rows = read(f"{name}-*.log")
    clients[name] = {"requests": len(rows), "by_mode": count(rows, "mode"),
                     "by_status": count(rows, "status"), "by_path": count(rows, "path"),
                     "connections": len({(r["mode"], r["local_port"]) for r in rows})}

dns = read("dns.log")
grpc_calls = read("grpc.log")
grpc_pod = next(p for p in topology.PODS if p["key"] == "GRPC")
truth = {
    "pods": pods,
    "clients": clients,
    # Calls web's pods made to the api Service (each answered by one api pod).
    "upstream": {"service": "shop/api", "calls": sum(1 for r in served if r["pod"].startswith("api-")
                                                      and not r["user_agent"].startswith("kube-probe/")),
                 "interfaces": [p["veth"] for p in topology.PODS if p["key"] in ("WEB1", "WEB2")]},
    "client_interface": next(p["veth"] for p in topology.PODS if p["key"] == "CLIENT"),
    "node_interface": "eth0",
    "dns_interface": next(p["veth"] for p in topology.PODS if p["key"] == "DNS"),
    "grpc": {"pod": f"{grpc_pod['namespace']}/{grpc_pod['name']}", "interface": grpc_pod["veth"],
             "calls": len(grpc_calls), "by_method": count(grpc_calls, "method"),
             "by_code": count(grpc_calls, "code"),
             "connections": len({(r["peer_ip"], r["peer_port"]) for r in grpc_calls})},
    "dns": {"queries": len(dns), "by_rcode": count(dns, "rcode"), "by_qtype": count(dns, "qtype"),
            "by_transport": count(dns, "transport"),
            # UDP answers bigger than one 1500-byte MTU packet: each crosses two veths as fragments.
            "fragmented_responses": sum(r["transport"] == "udp" and r["response_bytes"] > 1472 for r in dns)},
}
with open(os.path.join(out, "ground-truth.json"), "w") as f:
    json.dump(truth, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps({k: v["requests"] for k, v in pods.items()}))
