# Sourced by the lab scripts that build Kubernetes-like nodes (node.sh, nodes.sh, tier.sh): a node's
# cni0 bridge and a pod on it, as the bridge CNI plugin makes them.

# Namespace NS as a node: loopback up, the cni0 bridge at BRIDGE/24, forwarding, and bridged
# packets through iptables (br_netfilter, as on every kubeadm node: kube-proxy un-DNATs the
# replies between pods on one bridge).
cni_node() {  # NS BRIDGE
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$1" link add cni0 type bridge
  ip -n "$1" addr add "$2/24" dev cni0
  ip -n "$1" link set cni0 up
  ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

# A pod: namespace POD with eth0 at IP/24, the other end VETH on NODE's cni0, its default route
# via the bridge's BRIDGE.
cni_pod() {  # NODE BRIDGE POD IP VETH
  ip netns add "$3"
  ip -n "$1" link add "$5" type veth peer name eth0 netns "$3"
  ip -n "$1" link set "$5" master cni0 up
  ip -n "$3" link set lo up
  ip -n "$3" addr add "$4/24" dev eth0
  ip -n "$3" link set eth0 up
  ip -n "$3" route add default via "$2"
}
