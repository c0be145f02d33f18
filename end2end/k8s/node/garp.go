// A gratuitous ARP from a new pod's eth0 (the bridge CNI plugin sends one after setting up the
// pod's interface). The lab hands out the lowest free address, so a pod often gets the address a
// finished pod let go seconds before; without the announcement, a pod that talked to the old one
// keeps its MAC address for up to ~8 s (REACHABLE, then DELAY and unicast PROBEs) and its
// answers to the new pod go nowhere.

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// announce waits until the pod's bridge port forwards (its carrier comes up asynchronously), then
// sends the ARP request "who-has ADDR tell ADDR" from inside the pod's network namespace.
func (s *sandbox) announce() error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		state, oper, err := portState(s.veth)
		if err == nil && state == "forwarding" && oper == "UP" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start forwarding (state %q, operstate %q, %v)", s.veth, state, oper, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := make(chan error, 1)
	// setns moves only this OS thread; it stays locked, so Go ends it with the goroutine.
	go func() {
		runtime.LockOSThread()
		done <- s.sendGARP()
	}()
	return <-done
}

// portState is a bridge port's STP state and its operstate, as `ip -details link` reports them
// in this (the node's) network namespace. Not from /sys/class/net: the agent shares the root's
// mount of sysfs, which lists the root namespace's interfaces, never the node's (every
// announcement failed so until session 25).
func portState(dev string) (state, oper string, err error) {
	out, err := exec.Command("ip", "-json", "-details", "link", "show", "dev", dev).Output()
	if err != nil {
		return "", "", err
	}
	var links []struct {
		Operstate string `json:"operstate"`
		Linkinfo  struct {
			InfoSlaveData struct {
				State string `json:"state"`
			} `json:"info_slave_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", "", fmt.Errorf("ip link show %s: %q", dev, out)
	}
	return links[0].Linkinfo.InfoSlaveData.State, links[0].Operstate, nil
}

func (s *sandbox) sendGARP() error {
	ns, err := os.Open(filepath.Join("/run/netns", s.netns))
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return err
	}
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	proto := htons(unix.ETH_P_ARP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	addr := s.addr.As4()
	broadcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	frame := make([]byte, 0, 42)
	frame = append(frame, broadcast...)
	frame = append(frame, ifi.HardwareAddr...)
	frame = append(frame, 0x08, 0x06)                // ARP
	frame = append(frame, 0, 1, 0x08, 0, 6, 4, 0, 1) // Ethernet, IPv4, request
	frame = append(frame, ifi.HardwareAddr...)
	frame = append(frame, addr[:]...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, addr[:]...)
	to := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], broadcast)
	return unix.Sendto(fd, frame, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
