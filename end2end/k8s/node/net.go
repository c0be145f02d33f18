// Pod networking as the bridge CNI plugin with host-local IPAM does it: cni0 holds the pod
// CIDR's first address, each pod gets a network namespace with eth0 (a veth whose peer is on
// cni0) and the lowest free address of the CIDR, so an address a finished pod let go is the next
// one handed out.

package main

import (
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
)

// ip runs `ip ARGS` and returns its error output as the error.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func sortLongestFirst(p [][2]string) {
	sort.Slice(p, func(i, j int) bool { return len(p[i][0]) > len(p[j][0]) })
}

type ipam struct {
	mu      sync.Mutex
	prefix  netip.Prefix
	gateway netip.Addr
	used    map[netip.Addr]bool
}

func newIPAM(cidr string) (*ipam, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 28 {
		return nil, fmt.Errorf("pod CIDR %q: want an IPv4 prefix of /28 or wider", cidr)
	}
	p = p.Masked()
	return &ipam{prefix: p, gateway: p.Addr().Next(), used: map[netip.Addr]bool{}}, nil
}

// take hands out the lowest free address after the gateway.
func (m *ipam) take() (netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a := m.gateway.Next(); m.prefix.Contains(a.Next()); a = a.Next() {
		if !m.used[a] {
			m.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod CIDR %s is full", m.prefix)
}

func (m *ipam) release(a netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.used, a)
}

// bridgeUp makes cni0 with the gateway address (once; a restarted agent finds it there).
func bridgeUp(gw netip.Addr, p netip.Prefix) error {
	if exec.Command("ip", "link", "show", "cni0").Run() != nil {
		if err := ip("link", "add", "cni0", "type", "bridge"); err != nil {
			return err
		}
		if err := ip("addr", "add", fmt.Sprintf("%s/%d", gw, p.Bits()), "dev", "cni0"); err != nil {
			return err
		}
	}
	return ip("link", "set", "cni0", "up")
}

// sandbox is one pod's network: its namespace (under /run/netns) and the veth on cni0.
type sandbox struct {
	netns string
	veth  string
	addr  netip.Addr
}

// newSandbox names a pod's namespace and veth after its UID, as CNI names veths after the
// container: ptk-p-UID8 and vethUID8.
func newSandbox(uid string) *sandbox {
	short := strings.ReplaceAll(uid, "-", "")[:8]
	return &sandbox{netns: "ptk-p-" + short, veth: "veth" + short}
}

// resolvConf writes the pod's /etc/resolv.conf as kubelet does for dnsPolicy ClusterFirst: the
// cluster DNS, the namespace's search path, ndots 5 (`ip netns exec` mounts /etc/netns/NAME/*
// over /etc). Without a cluster DNS, or for another policy, the node's own is used.
func (s *sandbox) resolvConf(pod *v1.Pod, dns string) error {
	policy := pod.Spec.DNSPolicy
	if dns == "" || (policy != "" && policy != v1.DNSClusterFirst) {
		return nil
	}
	dir := filepath.Join("/etc/netns", s.netns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ns := pod.Namespace
	text := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", dns, ns)
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(text), 0o644)
}

func (s *sandbox) up(pod *v1.Pod, m *ipam, dns string) error {
	addr, err := m.take()
	if err != nil {
		return err
	}
	s.addr = addr
	// The agent shares the root's mount namespace (only its network namespace is the node's), so
	// the namespace is mounted where everyone sees it.
	if err := ip("netns", "add", s.netns); err != nil {
		return err
	}
	if err := s.resolvConf(pod, dns); err != nil {
		s.down(m)
		return err
	}
	steps := [][]string{
		{"link", "add", s.veth, "type", "veth", "peer", "name", "eth0", "netns", s.netns},
		{"link", "set", s.veth, "master", "cni0", "up"},
		// hairpinMode, as the bridge plugin sets it for kube-proxy: a pod reaching itself through
		// its Service leaves and comes back on the same bridge port.
		{"link", "set", s.veth, "type", "bridge_slave", "hairpin", "on"},
		{"-n", s.netns, "link", "set", "lo", "up"},
		{"-n", s.netns, "addr", "add", fmt.Sprintf("%s/%d", addr, m.prefix.Bits()), "dev", "eth0"},
		{"-n", s.netns, "link", "set", "eth0", "up"},
		{"-n", s.netns, "route", "add", "default", "via", m.gateway.String()},
	}
	for _, st := range steps {
		if err := ip(st...); err != nil {
			s.down(m)
			return err
		}
	}
	// A gratuitous ARP, as the bridge plugin sends one: the address may be one a finished pod
	// held a moment ago, and the pods that talked to it must not keep its old MAC address.
	if err := s.announce(); err != nil {
		log.Printf("pod %s: gratuitous ARP: %v", s.netns, err)
	}
	return nil
}

// down removes the namespace (its eth0, and so the veth, goes with it) and frees the address.
func (s *sandbox) down(m *ipam) {
	_ = exec.Command("ip", "netns", "pids", s.netns).Run()
	_ = ip("link", "del", s.veth)
	_ = ip("netns", "del", s.netns)
	_ = os.RemoveAll(filepath.Join("/etc/netns", s.netns))
	if s.addr.IsValid() {
		m.release(s.addr)
		s.addr = netip.Addr{}
	}
}
