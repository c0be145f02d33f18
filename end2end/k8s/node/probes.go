// Probes with kubelet's own prober: k8s.io/kubernetes/pkg/probe/http (a new connection per probe,
// `User-Agent: kube-probe/1.37`, SO_LINGER so no TIME_WAIT) and pkg/probe/tcp, from the node's
// network namespace straight to the pod's address, on the probe's period and thresholds. With
// --probe-log, every HTTP probe is logged as one JSON line (probelog.go): the tests' truth for
// probes is the prober's, not the app's, which never sees a probe its stopping pod did not read.

package main

import (
	"context"
	"net/http/httptrace"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/probe"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
	tcpprobe "k8s.io/kubernetes/pkg/probe/tcp"
)

var (
	httpProber = httpprobe.New(false)
	tcpProber  = tcpprobe.New()
)

func (w *podWorker) startProbes(i int) {
	c := w.containers[i]
	ctx, cancel := context.WithCancel(w.a.ctx)
	c.stopProbe = cancel
	podIP := w.sandbox.addr.String()
	spec := c.spec
	if spec.ReadinessProbe == nil {
		go w.send(ctx, event{container: i, probe: "readiness", ok: true})
	} else {
		go w.probeLoop(ctx, i, "readiness", spec.ReadinessProbe, &spec, podIP)
	}
	if spec.LivenessProbe != nil {
		go w.probeLoop(ctx, i, "liveness", spec.LivenessProbe, &spec, podIP)
	}
}

func (w *podWorker) send(ctx context.Context, ev event) {
	select {
	case w.events <- ev:
	case <-ctx.Done():
	}
}

// probeLoop probes every period after the initial delay and sends a result when the thresholds
// are crossed (failureThreshold failures in a row, successThreshold successes).
func (w *podWorker) probeLoop(ctx context.Context, i int, kind string, p *v1.Probe, c *v1.Container, podIP string) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	failures, successes := max(p.FailureThreshold, 1), max(p.SuccessThreshold, 1)
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	state := kind == "liveness" // a liveness probe starts passing, a readiness probe failing
	last, streak := state, int32(0)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		success := w.probeOnce(p, c, podIP, timeout) == probe.Success
		if success != last {
			last, streak = success, 0
		}
		streak++
		if success != state && ((success && streak >= successes) || (!success && streak >= failures)) {
			state = success
			w.send(ctx, event{container: i, probe: kind, ok: state})
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *podWorker) probeOnce(p *v1.Probe, c *v1.Container, podIP string, timeout time.Duration) probe.Result {
	switch {
	case p.HTTPGet != nil:
		req, err := httpprobe.NewRequestForHTTPGetAction(p.HTTPGet, c, podIP, "probe")
		if err != nil {
			return probe.Unknown
		}
		seen := &probeSeen{}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), seen.trace()))
		start := time.Now()
		res, output, err := httpProber.Probe(req, timeout)
		w.a.probes.write(w.pod, req, start, seen, res, output, err)
		return res
	case p.TCPSocket != nil:
		port, err := probe.ResolveContainerPort(p.TCPSocket.Port, c)
		if err != nil {
			return probe.Unknown
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		res, _, _ := tcpProber.Probe(host, port, timeout)
		return res
	}
	return probe.Unknown
}
