#!/usr/bin/env python3
"""The fast tier's database tier in one place: each real-server lab (postgres.sh, redis.sh,
mysql.sh, websocket.sh, kafka.sh) is one node with its client pod and its server pods behind a
Service, as a pod reaches its database in a cluster. tier.sh builds a lab's node from
`db_tier.py env LAB` and loads its kube-proxy rules from `db_tier.py rules LAB`; the tests name
what the captures show with `db_tier.py list` (a `kubectl get … -o json`-style List of every lab's
pods, Services and EndpointSlices).

    ptl-XX-n (the node: cni0 bridge NET.254/24, kube-proxy-style iptables)
      ├── vethc ── ptl-XX-c  eth0 NET.1  the client pod (its pools connect to the ClusterIP)
      ├── veths0 ── ptl-XX-s0 eth0 NET.2  the server pod
      └── veths1 ── ptl-XX-s1 eth0 NET.3  (Redis: a second replica; the Service has
                                          sessionAffinity: ClientIP, so the pool goes to one)

All addresses live only in the namespaces tier.sh creates (ptl-*).
"""
import json
import sys

import cluster
import topology

NODE = {"name": "lab-db-node", "ip": "192.168.51.2", "pod_cidr": "10.251.0.0/16"}
CLUSTER_CIDR = "10.251.0.0/16"

# One entry per lab: its two-letter namespace tag, its /24, its client pod, its Service (and the
# workload its server pods belong to: (kind, name) as their controller).
LABS = {
    "postgres": {"tag": "pg", "net": "10.251.0", "port": 5432, "port_name": "postgres", "cluster_ip": "10.96.251.10",
                 "client": ("shop", "orders-6c9f7d8b5-q7w2x", ("ReplicaSet", "orders-6c9f7d8b5")),
                 "service": ("data", "postgres"), "servers": [("postgres-0", ("StatefulSet", "postgres"))]},
    "redis": {"tag": "rd", "net": "10.251.1", "port": 6379, "port_name": "redis", "cluster_ip": "10.96.251.11",
              "client": ("shop", "cart-7b8c9d6f5-k3m9p", ("ReplicaSet", "cart-7b8c9d6f5")),
              "service": ("data", "redis"), "affinity": True,
              "servers": [("redis-5f6d7c8b9-h2j4k", ("ReplicaSet", "redis-5f6d7c8b9")),
                          ("redis-5f6d7c8b9-t6v8w", ("ReplicaSet", "redis-5f6d7c8b9"))]},
    "mysql": {"tag": "my", "net": "10.251.2", "port": 3306, "port_name": "mysql", "cluster_ip": "10.96.251.12",
              "client": ("shop", "billing-5d7e8f9a6-r4s5t", ("ReplicaSet", "billing-5d7e8f9a6")),
              "service": ("data", "mariadb"), "servers": [("mariadb-0", ("StatefulSet", "mariadb"))]},
    "websocket": {"tag": "ws", "net": "10.251.3", "port": 8765, "port_name": "ws", "cluster_ip": "10.96.251.13",
                  "client": ("shop", "chat-client-8f9a6b7c5-x5y6z", ("ReplicaSet", "chat-client-8f9a6b7c5")),
                  "service": ("shop", "chat"), "servers": [("chat-6a7b8c9d4-m1n2p", ("ReplicaSet", "chat-6a7b8c9d4"))]},
    "kafka": {"tag": "kf", "net": "10.251.5", "port": 9092, "port_name": "kafka", "cluster_ip": "10.96.251.15",
              "client": ("shop", "events-9b8a7c6d5-w3e4r", ("ReplicaSet", "events-9b8a7c6d5")),
              "service": ("data", "kafka"), "servers": [("kafka-0", ("StatefulSet", "kafka"))]},
}


def pods(lab):
    """The lab's client pod (key C) and server pods (S0, S1…), in topology.py's shape."""
    t = LABS[lab]
    namespace, name, owner = t["client"]
    out = [{"key": "C", "name": name, "namespace": namespace, "ip": f"{t['net']}.1", "netns": f"ptl-{t['tag']}-c",
            "veth": "vethc", "labels": {"app": owner[1].rsplit("-", 1)[0]}, "owner": owner, "port": None,
            "probe": None}]
    svc_namespace, svc = t["service"]
    for i, (server, owner) in enumerate(t["servers"]):
        out.append({"key": f"S{i}", "name": server, "namespace": svc_namespace, "ip": f"{t['net']}.{i + 2}",
                    "netns": f"ptl-{t['tag']}-s{i}", "veth": f"veths{i}", "labels": {"app": svc},
                    "owner": owner, "port": t["port"], "probe": None})
    return out


def service(lab):
    t = LABS[lab]
    namespace, name = t["service"]
    return {"key": "SVC", "name": name, "namespace": namespace, "type": "ClusterIP", "cluster_ip": t["cluster_ip"],
            "port": t["port"], "target_port": t["port"], "node_port": None, "protocol": "TCP",
            "selector": {"app": name}, "affinity": t.get("affinity", False), "lab": lab}


def backends(s):
    return [p for p in pods(s["lab"]) if p["key"] != "C"]


def pod_object(p):
    return topology.pod(p, NODE)


def service_object(s):
    obj = topology.service(s)
    obj["spec"]["ports"][0]["name"] = LABS[s["lab"]]["port_name"]
    if s["affinity"]:
        obj["spec"]["sessionAffinity"] = "ClientIP"
        obj["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    return obj


def endpoint_slice(s):
    obj = topology.endpoint_slice(s, backends(s), lambda p: NODE["name"])
    obj["ports"][0]["name"] = LABS[s["lab"]]["port_name"]
    return obj


def owner_object(kind, name, namespace):
    if kind == "ReplicaSet":
        return topology.replica_set(name, namespace)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": topology.meta(name, namespace),
            "spec": {"selector": {"matchLabels": {"app": name}}}}


def cluster_list():
    all_pods = [p for lab in LABS for p in pods(lab)]
    services = [service(lab) for lab in LABS]
    items = [pod_object(p) for p in all_pods] + [service_object(s) for s in services]
    owners = sorted({(p["owner"][0], p["owner"][1], p["namespace"]) for p in all_pods})
    items += [owner_object(*o) for o in owners]
    items += [{"apiVersion": "v1", "kind": "Namespace", "metadata": topology.meta(ns)}
              for ns in sorted({p["namespace"] for p in all_pods})]
    items += [endpoint_slice(s) for s in services]
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": topology.meta(NODE["name"]),
                  "spec": {"podCIDR": NODE["pod_cidr"], "podCIDRs": [NODE["pod_cidr"]]},
                  "status": {"addresses": [{"type": "InternalIP", "address": NODE["ip"]},
                                           {"type": "Hostname", "address": NODE["name"]}]}})
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def shell_env(lab):
    t = LABS[lab]
    ps = pods(lab)
    servers = [p for p in ps if p["key"] != "C"]
    lines = [f"TIER_NODE=ptl-{t['tag']}-n", f"TIER_BRIDGE={t['net']}.254", f"TIER_NET={t['net']}",
             f"C={ps[0]['netns']}", f"CLIENT_IP={ps[0]['ip']}", f"CLIENT_POD={ps[0]['name']}",
             f"SVC_IP={t['cluster_ip']}", f"SVC_PORT={t['port']}",
             "SERVERS='" + " ".join(p["netns"] for p in servers) + "'",
             "SERVER_IPS='" + " ".join(p["ip"] for p in servers) + "'",
             "SERVER_PODS='" + " ".join(p["name"] for p in servers) + "'",
             "TIER_NETNS='" + " ".join([p["netns"] for p in ps] + [f"ptl-{t['tag']}-n"]) + "'",
             "TIER_VETHS='" + " ".join(p["veth"] for p in ps) + "'"]
    return "\n".join(lines)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["env", lab] if lab in LABS:
            print(shell_env(lab))
        case ["rules", lab] if lab in LABS:
            print(cluster.iptables_rules([service(lab)], backends, CLUSTER_CIDR))
        case ["list"]:
            print(json.dumps(cluster_list(), indent=1))
        case _:
            sys.exit(f"usage: db_tier.py env|rules LAB ({'|'.join(LABS)}) | list")
