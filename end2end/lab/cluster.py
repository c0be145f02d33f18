#!/usr/bin/env python3
"""The multi-node lab's cluster in one place (nodes.sh reads it through `cluster.py env`): two
nodes, each with its own cni0 bridge and pod CIDR, routed to each other as a host-gw CNI does
over one L2 segment; Services with replicas on both nodes; the kube-proxy rules of each node
(`cluster.py rules N1`); and the `kubectl get … -o json`-style List (`cluster.py list`).

    ptm-net (bridge br0: the nodes' network, 192.168.50.0/24)
      ├── ptm-n1 eth0 192.168.50.11  cni0 10.244.1.1/24: web-a, api-a, client-a
      ├── ptm-n2 eth0 192.168.50.12  cni0 10.244.2.1/24: web-b, api-b, coredns, client-b
      ├── ptm-ext eth0 192.168.50.100 (outside: calls n1's NodePort)
      └── ptm-hub eth0 192.168.50.200 (podtap hub: agents connect here)

All addresses live only in the namespaces nodes.sh creates (ptm-*).
"""
import json
import sys

import topology

NODES = [
    {"key": "N1", "name": "lab-node-1", "ns": "ptm-n1", "ip": "192.168.50.11", "pod_cidr": "10.244.1.0/24",
     "bridge_ip": "10.244.1.1"},
    {"key": "N2", "name": "lab-node-2", "ns": "ptm-n2", "ip": "192.168.50.12", "pod_cidr": "10.244.2.0/24",
     "bridge_ip": "10.244.2.1"},
]
NET_NS = "ptm-net"
EXTERNAL = {"ns": "ptm-ext", "ip": "192.168.50.100"}
HUB = {"ns": "ptm-hub", "ip": "192.168.50.200", "ingest": 9091, "listen": 18090}
CLUSTER_CIDR = "10.244.0.0/16"
WEB_RS, API_RS, DNS_RS = "web-7d4b9c8f6", "api-6b7c9d5f4", "coredns-5d78c9869d"

PODS = [
    {"key": "WEBA", "name": f"{WEB_RS}-a1b2c", "namespace": "default", "node": "N1", "ip": "10.244.1.11",
     "netns": "ptm-weba", "veth": "veth1a0b0c01", "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
     "owner": ("ReplicaSet", WEB_RS), "port": 3000, "probe": "/health"},
    {"key": "WEBB", "name": f"{WEB_RS}-d3e4f", "namespace": "default", "node": "N2", "ip": "10.244.2.11",
     "netns": "ptm-webb", "veth": "veth2a0b0c01", "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
     "owner": ("ReplicaSet", WEB_RS), "port": 3000, "probe": "/health"},
    {"key": "APIA", "name": f"{API_RS}-g5h6i", "namespace": "shop", "node": "N1", "ip": "10.244.1.14",
     "netns": "ptm-apia", "veth": "veth1a0b0c02", "labels": {"app": "api", "pod-template-hash": "6b7c9d5f4"},
     "owner": ("ReplicaSet", API_RS), "port": 8080, "probe": "/health"},
    {"key": "APIB", "name": f"{API_RS}-j7k8l", "namespace": "shop", "node": "N2", "ip": "10.244.2.14",
     "netns": "ptm-apib", "veth": "veth2a0b0c02", "labels": {"app": "api", "pod-template-hash": "6b7c9d5f4"},
     "owner": ("ReplicaSet", API_RS), "port": 8080, "probe": "/health"},
    {"key": "DNS", "name": f"{DNS_RS}-m9n0p", "namespace": "kube-system", "node": "N2", "ip": "10.244.2.10",
     "netns": "ptm-dns", "veth": "veth2a0b0c03", "labels": {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"},
     "owner": ("ReplicaSet", DNS_RS), "port": 53, "probe": None},
    {"key": "CLIA", "name": "client-a", "namespace": "default", "node": "N1", "ip": "10.244.1.20",
     "netns": "ptm-clia", "veth": "veth1a0b0c09", "labels": {"run": "client-a"}, "owner": None, "port": None,
     "probe": None},
    {"key": "CLIB", "name": "client-b", "namespace": "default", "node": "N2", "ip": "10.244.2.20",
     "netns": "ptm-clib", "veth": "veth2a0b0c09", "labels": {"run": "client-b"}, "owner": None, "port": None,
     "probe": None},
]
SERVICES = [
    {"key": "WEB_SVC", "name": "web", "namespace": "default", "type": "NodePort", "cluster_ip": "10.96.12.34",
     "port": 80, "target_port": 3000, "node_port": 30007, "protocol": "TCP", "selector": {"app": "web"}},
    {"key": "API_SVC", "name": "api", "namespace": "shop", "type": "ClusterIP", "cluster_ip": "10.96.30.30",
     "port": 8080, "target_port": 8080, "node_port": None, "protocol": "TCP", "selector": {"app": "api"}},
    {"key": "DNS_SVC", "name": "kube-dns", "namespace": "kube-system", "type": "ClusterIP",
     "cluster_ip": "10.96.0.10", "port": 53, "target_port": 53, "node_port": None, "protocol": "UDP",
     "selector": {"k8s-app": "kube-dns"}},
]


def node_of(key):
    return next(n for n in NODES if n["key"] == key)


def backends(s):
    return [p for p in PODS if all(p["labels"].get(k) == v for k, v in s["selector"].items())]


def pod(p):
    return topology.pod(p, node_of(p["node"]))


def endpoint_slice(s):
    return topology.endpoint_slice(s, backends(s), lambda p: node_of(p["node"])["name"])


def node(n):
    return {"apiVersion": "v1", "kind": "Node", "metadata": topology.meta(n["name"]),
            "spec": {"podCIDR": n["pod_cidr"], "podCIDRs": [n["pod_cidr"]]},
            "status": {"addresses": [{"type": "InternalIP", "address": n["ip"]},
                                     {"type": "Hostname", "address": n["name"]}]}}


def cluster_list():
    items = [pod(p) for p in PODS] + [topology.service(s) for s in SERVICES]
    owners = sorted({(p["owner"][1], p["namespace"]) for p in PODS if p["owner"]})
    items += [topology.replica_set(name, ns) for name, ns in owners]
    items += [{"apiVersion": "v1", "kind": "Namespace", "metadata": topology.meta(ns)}
              for ns in sorted({p["namespace"] for p in PODS} | {s["namespace"] for s in SERVICES})]
    items += [endpoint_slice(s) for s in SERVICES] + [node(n) for n in NODES]
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def rules():
    """kube-proxy's iptables rules (iptables mode), the same on every node as kube-proxy writes
    them: every Service's backends on every node, picked at random per connection."""
    return iptables_rules(SERVICES, backends, CLUSTER_CIDR)


def iptables_rules(services, backends_of, cluster_cidr):
    """kube-proxy's nat table in iptables mode for `services` (their backends from `backends_of`):
    KUBE-SERVICES to a KUBE-SVC chain per Service and protocol, a random pick among its KUBE-SEP
    chains (one DNAT each), clients from outside `cluster_cidr` masqueraded; a Service with
    `affinity` (sessionAffinity: ClientIP) first sends a client address back to the backend it
    had (the `recent` match, as kube-proxy does, 10800 s)."""
    out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]"]
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    body = [
        "-A PREROUTING -j KUBE-SERVICES", "-A OUTPUT -j KUBE-SERVICES", "-A POSTROUTING -j KUBE-POSTROUTING",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A KUBE-POSTROUTING -j MASQUERADE",
    ]
    for s in services:
        protocols = ["udp", "tcp"] if s["port"] == 53 else ["tcp"]
        for proto in protocols:
            svc = f"KUBE-SVC-{s['name'].upper()}-{proto.upper()}"
            chains.append(svc)
            body.append(f"-A KUBE-SERVICES -d {s['cluster_ip']}/32 -p {proto} -m {proto} --dport {s['port']} -j {svc}")
            body.append(f"-A {svc} ! -s {cluster_cidr} -d {s['cluster_ip']}/32 -p {proto} -m {proto} "
                        f"--dport {s['port']} -j KUBE-MARK-MASQ")
            ends = backends_of(s)
            seps = [f"KUBE-SEP-{p['key']}-{proto.upper()}" for p in ends]
            recent = "-m recent --mask 255.255.255.255 --rsource"
            if s.get("affinity"):
                body += [f"-A {svc} {recent} --name {sep} --rcheck --seconds 10800 --reap -j {sep}" for sep in seps]
            for i, (p, sep) in enumerate(zip(ends, seps)):
                chains.append(sep)
                left = len(ends) - i
                pick = "" if left == 1 else f"-m statistic --mode random --probability {1 / left:.11f} "
                remember = f"{recent} --name {sep} --set " if s.get("affinity") else ""
                body.append(f"-A {svc} {pick}-j {sep}")
                body.append(f"-A {sep} -s {p['ip']}/32 -j KUBE-MARK-MASQ")
                body.append(f"-A {sep} -p {proto} {remember}-m {proto} -j DNAT --to-destination {p['ip']}:{s['target_port']}")
            if s.get("node_port"):
                ext = f"KUBE-EXT-{s['name'].upper()}"
                chains.append(ext)
                body.append(f"-A KUBE-NODEPORTS -p tcp -m tcp --dport {s['node_port']} -j {ext}")
                body.append(f"-A {ext} -j KUBE-MARK-MASQ")
                body.append(f"-A {ext} -j {svc}")
    body.append("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    return "\n".join(out + [f":{c} - [0:0]" for c in chains] + body + ["COMMIT", ""])


def shell_env():
    lines = [f"NET_NS={NET_NS}", f"EXT_NS={EXTERNAL['ns']}", f"EXT_IP={EXTERNAL['ip']}",
             f"HUB_NS={HUB['ns']}", f"HUB_IP={HUB['ip']}", f"HUB_INGEST={HUB['ingest']}",
             f"HUB_LISTEN={HUB['listen']}", f"NODE_KEYS='{' '.join(n['key'] for n in NODES)}'"]
    for n in NODES:
        k = n["key"]
        lines += [f"{k}_NAME={n['name']}", f"{k}_NS={n['ns']}", f"{k}_IP={n['ip']}", f"{k}_CIDR={n['pod_cidr']}",
                  f"{k}_BRIDGE={n['bridge_ip']}"]
        lines.append(f"{k}_PODS='" + " ".join(p["key"] for p in PODS if p["node"] == k) + "'")
    for p in PODS:
        k = p["key"]
        lines += [f"{k}_NAME={p['name']}", f"{k}_NS={p['netns']}", f"{k}_IP={p['ip']}", f"{k}_VETH={p['veth']}",
                  f"{k}_NODE={p['node']}"]
    for s in SERVICES:
        k = s["key"]
        lines += [f"{k}_IP={s['cluster_ip']}", f"{k}_PORT={s['port']}", f"{k}_TARGET={s['target_port']}",
                  f"{k}_NODEPORT={s['node_port'] or ''}"]
    lines.append("ALL_NETNS='" + " ".join([p["netns"] for p in PODS] + [n["ns"] for n in NODES]
                                        + [EXTERNAL["ns"], HUB["ns"], NET_NS]) + "'")
    return "\n".join(lines)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["env"]:
            print(shell_env())
        case ["list"]:
            print(json.dumps(cluster_list(), indent=1))
        case ["rules"]:
            print(rules())
        case _:
            sys.exit("usage: cluster.py env|list|rules")
