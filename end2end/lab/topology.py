#!/usr/bin/env python3
"""The lab cluster in one place: lab.sh reads its addresses and names from `topology.py env`, and
`topology.py list` writes the `kubectl get pods,services,endpointslices,nodes,replicasets -A -o json`-style List
that describes it, so the two can never disagree.

All addresses live only inside the network namespaces lab.sh creates (ptl-*).
"""
import hashlib
import json
import sys

NODE = {"name": "lab-node", "ns": "ptl-node", "ip": "192.168.49.2", "pod_cidr": "10.244.0.0/24",
        "bridge_ip": "10.244.0.1"}
EXTERNAL = {"ns": "ptl-ext", "ip": "192.168.49.100"}
WEB_RS = "web-7d4b9c8f6"
DNS_RS = "coredns-5d78c9869d"
GRPC_RS = "greeter-6c8f9d7b5"
API_RS = "api-6b7c9d5f4"
PODS = [
    {"key": "WEB1", "name": f"{WEB_RS}-x2k9p", "namespace": "default", "ip": "10.244.0.11",
     "netns": "ptl-web1", "veth": "veth5f3a91c2", "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
     "owner": ("ReplicaSet", WEB_RS), "port": 3000, "probe": "/health"},
    {"key": "WEB2", "name": f"{WEB_RS}-q8m3z", "namespace": "default", "ip": "10.244.0.12",
     "netns": "ptl-web2", "veth": "veth8b2e47d0", "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
     "owner": ("ReplicaSet", WEB_RS), "port": 3000, "probe": "/health"},
    {"key": "DNS", "name": f"{DNS_RS}-7xkpl", "namespace": "kube-system", "ip": "10.244.0.10",
     "netns": "ptl-dns", "veth": "vethc41d9e07", "labels": {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d"},
     "owner": ("ReplicaSet", DNS_RS), "port": 53, "probe": None},
    {"key": "GRPC", "name": f"{GRPC_RS}-m4t2w", "namespace": "default", "ip": "10.244.0.13",
     "netns": "ptl-grpc", "veth": "veth9d04e1a7", "labels": {"app": "greeter", "pod-template-hash": "6c8f9d7b5"},
     "owner": ("ReplicaSet", GRPC_RS), "port": 50051, "probe": None},
    {"key": "API1", "name": f"{API_RS}-k7m2p", "namespace": "shop", "ip": "10.244.0.14",
     "netns": "ptl-api1", "veth": "vethd1e2f3a4", "labels": {"app": "api", "pod-template-hash": "6b7c9d5f4"},
     "owner": ("ReplicaSet", API_RS), "port": 8080, "probe": "/health"},
    {"key": "API2", "name": f"{API_RS}-r4t8w", "namespace": "shop", "ip": "10.244.0.15",
     "netns": "ptl-api2", "veth": "veth6c7d8e9f", "labels": {"app": "api", "pod-template-hash": "6b7c9d5f4"},
     "owner": ("ReplicaSet", API_RS), "port": 8080, "probe": "/health"},
    {"key": "API3", "name": f"{API_RS}-z9x3q", "namespace": "shop", "ip": "10.244.0.16",
     "netns": "ptl-api3", "veth": "veth0a1b2c3d", "labels": {"app": "api", "pod-template-hash": "6b7c9d5f4"},
     "owner": ("ReplicaSet", API_RS), "port": 8080, "probe": "/health"},
    {"key": "CLIENT", "name": "curl-client", "namespace": "default", "ip": "10.244.0.20",
     "netns": "ptl-client", "veth": "veth2a7f6b13", "labels": {"run": "curl-client"},
     "owner": None, "port": None, "probe": None},
]
SERVICES = [
    {"key": "WEB_SVC", "name": "web", "namespace": "default", "type": "NodePort",
     "cluster_ip": "10.96.12.34", "port": 80, "target_port": 3000, "node_port": 30007,
     "protocol": "TCP", "selector": {"app": "web"}},
    {"key": "DNS_SVC", "name": "kube-dns", "namespace": "kube-system", "type": "ClusterIP",
     "cluster_ip": "10.96.0.10", "port": 53, "target_port": 53, "node_port": None,
     "protocol": "UDP", "selector": {"k8s-app": "kube-dns"}},
    {"key": "API_SVC", "name": "api", "namespace": "shop", "type": "ClusterIP",
     "cluster_ip": "10.96.30.30", "port": 8080, "target_port": 8080, "node_port": None,
     "protocol": "TCP", "selector": {"app": "api"}},
    {"key": "GRPC_SVC", "name": "greeter", "namespace": "default", "type": "ClusterIP",
     "cluster_ip": "10.96.20.20", "port": 50051, "target_port": 50051, "node_port": None,
     "protocol": "TCP", "selector": {"app": "greeter"}},
]
# Long before any lab run: records are named as of their time, and these pods must exist then.
CREATED = "2025-01-01T00:00:00Z"


def uid_of(name):
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def meta(name, namespace=None, labels=None, owner=None, uid=None):
    m = {"name": name, "uid": uid or uid_of(name),
         "resourceVersion": "1000", "creationTimestamp": CREATED}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    if owner:
        m["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                 "uid": uid_of(owner[1]),
                                 "controller": True, "blockOwnerDeletion": True}]
    return m


def pod(p, node=None):
    """A pod on `node` (the single-node lab's NODE unless given: a dict with name and ip)."""
    node = node or NODE
    container = {"name": p["name"].split("-")[0], "image": "lab/app:1"}
    if p["port"] == 53:
        container["ports"] = [{"containerPort": 53, "protocol": "UDP", "name": "dns"},
                              {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}]
    elif p["port"]:
        container["ports"] = [{"containerPort": p["port"], "protocol": "TCP"}]
    if p["probe"]:
        http_get = {"path": p["probe"], "port": p["port"], "scheme": "HTTP"}
        container["livenessProbe"] = {"httpGet": http_get, "periodSeconds": 2}
        container["readinessProbe"] = {"httpGet": http_get, "periodSeconds": 2}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(p["name"], p["namespace"], p["labels"], p["owner"]),
            "spec": {"nodeName": node["name"], "containers": [container]},
            "status": {"phase": "Running", "hostIP": node["ip"], "podIP": p["ip"],
                       "podIPs": [{"ip": p["ip"]}], "startTime": CREATED}}


def port_names(s):
    """(name, protocol) of a Service's ports: kube-dns serves DNS over UDP and TCP, like CoreDNS."""
    if s["port"] == 53:
        return [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [("grpc" if s["port"] == 50051 else "http", s["protocol"])]


def service(s):
    ports = []
    for name, protocol in port_names(s):
        port = {"name": name, "port": s["port"], "targetPort": s["target_port"], "protocol": protocol}
        if s["node_port"]:
            port["nodePort"] = s["node_port"]
        ports.append(port)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(s["name"], s["namespace"]),
            "spec": {"type": s["type"], "clusterIP": s["cluster_ip"], "clusterIPs": [s["cluster_ip"]],
                     "ports": ports, "selector": s["selector"]}}


def endpoint_slice(s, backends=None, node_name=lambda p: NODE["name"]):
    """A Service's EndpointSlice: its `backends` (by its selector among PODS unless given), each
    on the node `node_name(pod)` names."""
    if backends is None:
        backends = [p for p in PODS if all(p["labels"].get(k) == v for k, v in s["selector"].items())]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(f"{s['name']}-abcde", s["namespace"],
                             {"kubernetes.io/service-name": s["name"]}),
            "addressType": "IPv4",
            "endpoints": [{"addresses": [p["ip"]], "conditions": {"ready": True},
                           "nodeName": node_name(p),
                           "targetRef": {"kind": "Pod", "name": p["name"], "namespace": p["namespace"]}}
                          for p in backends],
            "ports": [{"name": name, "port": s["target_port"], "protocol": protocol}
                      for name, protocol in port_names(s)]}


def node():
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta(NODE["name"]),
            "spec": {"podCIDR": NODE["pod_cidr"], "podCIDRs": [NODE["pod_cidr"]]},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE["ip"]},
                                     {"type": "Hostname", "address": NODE["name"]}]}}


def replica_set(name, namespace):
    """The ReplicaSet of a Deployment: its owner names the pods' workload."""
    deployment = name.rsplit("-", 1)[0]
    m = meta(name, namespace, owner=("Deployment", deployment))
    m["ownerReferences"][0]["apiVersion"] = "apps/v1"
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": m,
            "spec": {"selector": {"matchLabels": {}}}}


def cluster_list():
    items = [pod(p) for p in PODS] + [service(s) for s in SERVICES]
    owners = sorted({(p["owner"][1], p["namespace"]) for p in PODS if p["owner"] and p["owner"][0] == "ReplicaSet"})
    items += [replica_set(name, ns) for name, ns in owners]
    items += [{"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns)}
              for ns in sorted({p["namespace"] for p in PODS} | {s["namespace"] for s in SERVICES})]
    items += [endpoint_slice(s) for s in SERVICES] + [node()]
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def shell_env():
    lines = [f"NODE_NS={NODE['ns']}", f"NODE_IP={NODE['ip']}", f"BRIDGE_IP={NODE['bridge_ip']}",
             f"EXT_NS={EXTERNAL['ns']}", f"EXT_IP={EXTERNAL['ip']}"]
    for p in PODS:
        k = p["key"]
        lines += [f"{k}_NAME={p['name']}", f"{k}_NS={p['netns']}", f"{k}_IP={p['ip']}",
                  f"{k}_VETH={p['veth']}"]
    for s in SERVICES:
        k = s["key"]
        lines += [f"{k}_IP={s['cluster_ip']}", f"{k}_PORT={s['port']}",
                  f"{k}_TARGET={s['target_port']}", f"{k}_NODEPORT={s['node_port'] or ''}"]
    lines.append("POD_NETNS='" + " ".join(p["netns"] for p in PODS) + "'")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["env"]:
        print(shell_env())
    elif sys.argv[1:] == ["list"]:
        print(json.dumps(cluster_list(), indent=1))
    else:
        sys.exit("usage: topology.py env|list")
