// The probe log (--probe-log FILE): one JSON line per HTTP probe this node sent, saying whether
// its request reached the socket (so the wire carries it) and whether an answer came back. A
// probe whose pod is stopping may be written and never read by the app: only the prober knows.
// Each line is appended with the file opened anew, so a test may remove the file between runs.

package main

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/probe"
)

// probeLog appends to a file, or does nothing when no file was given.
type probeLog struct {
	mu   sync.Mutex
	path string
}

// probeSeen is what the HTTP client's trace saw of one probe.
type probeSeen struct {
	mu       sync.Mutex
	local    string // the prober's address:port, once connected
	wrote    bool   // the request was written whole to the socket
	answered bool   // a response's first byte came back
}

func (s *probeSeen) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			s.mu.Lock()
			s.local = info.Conn.LocalAddr().String()
			s.mu.Unlock()
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			s.mu.Lock()
			s.wrote = info.Err == nil
			s.mu.Unlock()
		},
		GotFirstResponseByte: func() {
			s.mu.Lock()
			s.answered = true
			s.mu.Unlock()
		},
	}
}

type probeLine struct {
	TS        float64 `json:"ts"`
	Pod       string  `json:"pod"`
	URL       string  `json:"url"`
	LocalIP   string  `json:"local_ip,omitempty"`
	LocalPort int     `json:"local_port,omitempty"`
	Wrote     bool    `json:"wrote"`
	Answered  bool    `json:"answered"`
	Result    string  `json:"result"`
	Output    string  `json:"output,omitempty"` // the prober's words for a failure
	Error     string  `json:"error,omitempty"`
}

func (l *probeLog) write(pod *v1.Pod, req *http.Request, start time.Time, seen *probeSeen, res probe.Result, output string, err error) {
	if l == nil || l.path == "" {
		return
	}
	seen.mu.Lock()
	line := probeLine{
		TS:       float64(start.UnixMicro()) / 1e6,
		Pod:      pod.Namespace + "/" + pod.Name,
		URL:      req.URL.String(),
		Wrote:    seen.wrote,
		Answered: seen.answered,
		Result:   string(res),
	}
	if res != probe.Success {
		line.Output = output
	}
	if host, port, e := net.SplitHostPort(seen.local); e == nil {
		line.LocalIP = host
		line.LocalPort, _ = strconv.Atoi(port)
	}
	seen.mu.Unlock()
	if err != nil {
		line.Error = err.Error()
	}
	b, _ := json.Marshal(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	f, e := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if e != nil {
		log.Printf("probe log: %v", e)
		return
	}
	defer f.Close()
	if _, e := f.Write(append(b, '\n')); e != nil {
		log.Printf("probe log: %v", e)
	}
}
