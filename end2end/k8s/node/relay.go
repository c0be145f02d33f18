// The relay: accepts connections on one address and copies each, both ways, to another.

package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
)

// endpoint splits "tcp:HOST:PORT" or "unix:PATH" into a network and an address.
func endpoint(s string) (string, string, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || (network != "tcp" && network != "unix") {
		return "", "", fmt.Errorf("address %q: want tcp:HOST:PORT or unix:PATH", s)
	}
	return network, addr, nil
}

func relayMain(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	listen := fs.String("listen", "", "where to accept: tcp:HOST:PORT or unix:PATH")
	to := fs.String("to", "", "where to connect: tcp:HOST:PORT or unix:PATH")
	_ = fs.Parse(args)
	ln, la, err := endpoint(*listen)
	if err != nil {
		return err
	}
	tn, ta, err := endpoint(*to)
	if err != nil {
		return err
	}
	if ln == "unix" {
		_ = os.Remove(la) // a socket file left by a relay that was killed
	}
	l, err := net.Listen(ln, la)
	if err != nil {
		return err
	}
	log.Printf("relay: %s -> %s", *listen, *to)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial(tn, ta)
			if err != nil {
				log.Printf("relay: %v", err)
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// closeWrite half-closes a connection so the other side sees the end of what was sent.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
