// Command lab-node is a node of podtap's lab cluster: what runs the pods that kube-scheduler
// binds to it, in place of kubelet, containerd and a CNI plugin, which this machine cannot run
// from a registry (see README, "A real Kubernetes under the lab").
//
//	lab-node relay --listen ADDR --to ADDR      copies connections (tcp:HOST:PORT or unix:PATH)
//	lab-node agent --name NODE --kubeconfig F --node-ip IP --state DIR [--image NAME]… [--path C=H]…
//
// The agent runs inside the node's network namespace. It registers the Node (the controller
// manager gives it a pod CIDR), renews its Lease, makes each pod's network namespace and veth on
// cni0 as the bridge CNI plugin does, starts the pod's commands there, probes them with kubelet's
// own prober (k8s.io/kubernetes/pkg/probe/http and tcp) and reports status.podIP, readiness and
// phase through the API, as kubelet does. The relay lets the node's processes reach the API
// server, which listens on the root namespace's loopback only.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lab-node relay|agent FLAGS…")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "relay":
		err = relayMain(os.Args[2:])
	case "agent":
		err = agentMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (relay, agent)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab-node:", err)
		os.Exit(1)
	}
}
