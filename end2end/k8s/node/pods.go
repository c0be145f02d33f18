// A pod worker: one goroutine per pod, as kubelet's pod workers. It makes the pod's sandbox,
// starts its containers' commands inside it, restarts them by the pod's restartPolicy, runs the
// probes, reports status, and on deletion stops the commands (SIGTERM, the grace period, SIGKILL),
// removes the sandbox and confirms the deletion with grace period 0.

package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// containerCreation is the time between a pod's sandbox and its containers' start.
const containerCreation = 200 * time.Millisecond

type container struct {
	spec      v1.Container
	cmd       *exec.Cmd
	started   metav1.Time
	restarts  int32
	ready     bool
	exited    *v1.ContainerStateTerminated
	lastState v1.ContainerState
	waiting   string // a reason the container cannot start (ErrImageNeverPull…)
	stopProbe context.CancelFunc
}

type event struct {
	container int
	exited    *int   // exit code of the container's command
	probe     string // "readiness" or "liveness"
	ok        bool
	restart   bool
}

type podWorker struct {
	a          *agent
	pod        *v1.Pod
	updates    chan *v1.Pod
	events     chan event
	quit       chan struct{}
	quitOnce   bool
	sandbox    *sandbox
	containers []*container
	started    metav1.Time
}

func newPodWorker(a *agent, p *v1.Pod) *podWorker {
	return &podWorker{a: a, pod: p, updates: make(chan *v1.Pod, 64), events: make(chan event, 64), quit: make(chan struct{})}
}

// reportAfter: a pod annotation, a Go duration; the pod's first status report waits that long.
// Or "hold": it waits until the pod is annotated reportNow="now" (a test that saw what it waited
// for), at most holdAtMost.
const reportAfter = "lab.podtap.io/report-after"

// reportNow: the annotation that releases a held first report.
const reportNow = "lab.podtap.io/report"

// holdAtMost: a held report goes anyway after this long, so a test that never releases it still
// ends (its own check then says what it did not see).
const holdAtMost = 2 * time.Minute

func (w *podWorker) update(p *v1.Pod) {
	select {
	case w.updates <- p:
	default: // a burst of updates: the worker reads the newest from the informer's object anyway
	}
}

// shutdown: the agent stops, or the pod's object is gone. Called with the agent's lock held.
func (w *podWorker) shutdown() {
	if !w.quitOnce {
		w.quitOnce = true
		close(w.quit)
	}
}

func (w *podWorker) name() string { return w.pod.Namespace + "/" + w.pod.Name }

func (w *podWorker) run() {
	p := w.pod
	if p.DeletionTimestamp != nil {
		w.confirmDeletion()
		return
	}
	w.started = metav1.Now()
	w.sandbox = newSandbox(string(p.UID))
	for _, c := range p.Spec.Containers {
		w.containers = append(w.containers, &container{spec: c})
	}
	if err := w.sandbox.up(p, w.a.ipam, w.a.dns); err != nil {
		log.Printf("pod %s: sandbox: %v", w.name(), err)
		w.sandbox = nil
	} else {
		log.Printf("pod %s: %s on %s", w.name(), w.sandbox.addr, w.sandbox.veth)
		// A container runtime takes this long and more between the sandbox's network and the
		// container's first instruction (creating the container, its mounts, its process); an
		// observer that follows new pod interfaces has had that long to start capturing.
		time.Sleep(containerCreation)
		for i := range w.containers {
			w.start(i)
		}
	}
	// A kubelet under load (or facing a slow API server) reports a started pod's address
	// seconds after its containers began to talk: the annotation makes this pod's first report
	// that late, so a test can be sure of it instead of hoping for it.
	if p.Annotations[reportAfter] == "hold" {
		w.hold()
		if w.pod.DeletionTimestamp != nil {
			w.update(w.pod) // the loop below terminates it, after the report
		}
	} else if d, err := time.ParseDuration(p.Annotations[reportAfter]); err == nil && d > 0 {
		log.Printf("pod %s: first status report in %v (%s)", w.name(), d, reportAfter)
		select {
		case <-time.After(d):
		case <-w.quit:
		}
	}
	w.report()
	resync := time.NewTicker(statusResync)
	defer resync.Stop()
	for {
		select {
		case np := <-w.updates:
			w.pod = np
			if np.DeletionTimestamp != nil {
				w.terminate(np, 0)
				w.confirmDeletion()
				return
			}
			if w.differs() {
				w.report()
			}
		case <-resync.C:
			if w.differs() {
				w.report()
			}
		case ev := <-w.events:
			w.handle(ev)
		case <-w.quit:
			w.terminate(w.pod, 2*time.Second) // the node is going away: no pod's full grace period
			return
		}
	}
}

// hold keeps the pod's first status report until the pod is annotated reportNow="now" (or the
// worker quits, or holdAtMost passed).
func (w *podWorker) hold() {
	log.Printf("pod %s: first status report held until %s=now", w.name(), reportNow)
	limit := time.After(holdAtMost)
	for w.pod.Annotations[reportNow] != "now" {
		select {
		case np := <-w.updates:
			w.pod = np
		case <-limit:
			log.Printf("pod %s: nothing released the report in %v: reporting", w.name(), holdAtMost)
			return
		case <-w.quit:
			return
		}
	}
	log.Printf("pod %s: first status report released", w.name())
}

// start runs container i's command in the pod's network namespace.
func (w *podWorker) start(i int) {
	c := w.containers[i]
	if !w.a.images[c.spec.Image] {
		c.waiting = "ErrImageNeverPull"
		return
	}
	env, err := w.environment(&c.spec)
	if err != nil {
		c.waiting = "CreateContainerConfigError"
		log.Printf("pod %s: %v", w.name(), err)
		return
	}
	argv := append(append([]string{}, c.spec.Command...), c.spec.Args...)
	if len(argv) == 0 {
		c.waiting = "CreateContainerConfigError" // the lab's images have no entrypoint
		return
	}
	argv = expandAll(argv, env)
	for k := range argv {
		argv[k] = w.hostPaths(argv[k])
	}
	logf, err := os.OpenFile(filepath.Join(w.a.state, fmt.Sprintf("%s_%s_%s.log", w.pod.Namespace, w.pod.Name, c.spec.Name)),
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.waiting = "CreateContainerError"
		return
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", w.sandbox.netns}, argv...)...)
	cmd.Env = envList(env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.spec.WorkingDir != "" {
		cmd.Dir = w.hostPath(c.spec.WorkingDir)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.waiting = "RunContainerError"
		log.Printf("pod %s: %v", w.name(), err)
		return
	}
	c.cmd, c.started, c.exited, c.waiting, c.ready = cmd, metav1.Now(), nil, "", false
	go func() {
		err := cmd.Wait()
		logf.Close()
		code := 0
		if err != nil {
			code = 1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
				if code < 0 {
					code = 137
				}
			}
		}
		select {
		case w.events <- event{container: i, exited: &code}:
		case <-w.quit:
		}
	}()
	w.startProbes(i)
}

func (w *podWorker) handle(ev event) {
	c := w.containers[ev.container]
	switch {
	case ev.exited != nil:
		if c.cmd == nil {
			return
		}
		c.cmd = nil
		c.ready = false
		if c.stopProbe != nil {
			c.stopProbe()
		}
		c.exited = &v1.ContainerStateTerminated{ExitCode: int32(*ev.exited), StartedAt: c.started, FinishedAt: metav1.Now(),
			Reason: map[bool]string{true: "Completed", false: "Error"}[*ev.exited == 0]}
		policy := w.pod.Spec.RestartPolicy
		if policy == v1.RestartPolicyAlways || (policy == v1.RestartPolicyOnFailure && *ev.exited != 0) {
			delay := time.Duration(1<<min(c.restarts, 5)) * time.Second
			time.AfterFunc(delay, func() {
				select {
				case w.events <- event{container: ev.container, restart: true}:
				case <-w.quit:
				}
			})
		} else if w.finished() {
			w.report()
			w.sandbox.down(w.a.ipam) // a finished pod's address goes back to the pool; status keeps it
			log.Printf("pod %s: finished; its address is free", w.name())
			return
		}
	case ev.restart:
		if w.pod.DeletionTimestamp != nil || c.cmd != nil {
			return
		}
		c.lastState = v1.ContainerState{Terminated: c.exited}
		c.restarts++
		w.start(ev.container)
	case ev.probe == "readiness":
		if c.cmd == nil || c.ready == ev.ok {
			return
		}
		c.ready = ev.ok
	case ev.probe == "liveness":
		if c.cmd != nil && !ev.ok {
			log.Printf("pod %s: container %s failed its liveness probe; restarting it", w.name(), c.spec.Name)
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		}
		return
	}
	w.report()
}

// finished: every container has exited and none will be restarted.
func (w *podWorker) finished() bool {
	if w.pod.Spec.RestartPolicy == v1.RestartPolicyAlways || w.pod.Spec.RestartPolicy == "" {
		return false
	}
	for _, c := range w.containers {
		if c.cmd != nil || c.exited == nil {
			return false
		}
		if w.pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure && c.exited.ExitCode != 0 {
			return false
		}
	}
	return true
}

func (w *podWorker) everStarted() bool {
	for _, c := range w.containers {
		if c.cmd != nil || c.exited != nil {
			return true
		}
	}
	return false
}

// terminate stops every container: SIGTERM to its process group, SIGKILL after the grace period
// (or after limit, when that is shorter and not 0).
func (w *podWorker) terminate(p *v1.Pod, limit time.Duration) {
	grace := 30 * time.Second
	if p.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*p.DeletionGracePeriodSeconds) * time.Second
	} else if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if limit > 0 && limit < grace {
		grace = limit
	}
	running := 0
	for _, c := range w.containers {
		if c.stopProbe != nil {
			c.stopProbe()
		}
		if c.cmd != nil {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
			running++
		}
	}
	deadline := time.After(grace)
	for running > 0 {
		select {
		case ev := <-w.events:
			if ev.exited != nil && w.containers[ev.container].cmd != nil {
				w.containers[ev.container].cmd = nil
				running--
			}
		case <-deadline:
			for _, c := range w.containers {
				if c.cmd != nil {
					_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
				}
			}
			deadline = nil
		}
	}
	if w.sandbox != nil {
		w.sandbox.down(w.a.ipam)
	}
	log.Printf("pod %s: stopped", w.name())
}

// confirmDeletion deletes the pod's object with grace period 0, as kubelet does once it has
// stopped everything: the API server then removes it.
func (w *podWorker) confirmDeletion() {
	zero := int64(0)
	uid := w.pod.UID
	err := w.a.client.CoreV1().Pods(w.pod.Namespace).Delete(w.a.ctx, w.pod.Name,
		metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		log.Printf("pod %s: delete: %v", w.name(), err)
	}
}

// statusResync: how often a worker compares the API's copy of its pod's status with its own, as
// kubelet's status manager does (its syncBatch, every 10 s).
const statusResync = 10 * time.Second

// differs: the API's copy of the pod's status (the informer's newest object) says otherwise than
// this node about its phase, address or readiness — a report failed while the API server was
// away, or the node lifecycle controller marked the pod NotReady while this node could not
// report. kubelet writes its own status again then (pkg/kubelet/status, needsReconcile); so does
// this, or a pod stays NotReady for good after an API server outage.
func (w *podWorker) differs() bool {
	st, api := w.status(), w.pod.Status
	return st.Phase != api.Phase || st.PodIP != api.PodIP || readyOf(st) != readyOf(api)
}

func readyOf(st v1.PodStatus) v1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == v1.PodReady {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

// report writes the pod's status as kubelet would: phase, addresses, conditions, containers.
func (w *podWorker) report() {
	st := w.status()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := w.a.client.CoreV1().Pods(w.pod.Namespace).Get(w.a.ctx, w.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.UID != w.pod.UID {
			return nil
		}
		p.Status = st
		_, err = w.a.client.CoreV1().Pods(p.Namespace).UpdateStatus(w.a.ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && w.a.ctx.Err() == nil {
		log.Printf("pod %s: status: %v", w.name(), err)
	}
}

func (w *podWorker) status() v1.PodStatus {
	now := metav1.Now()
	st := v1.PodStatus{HostIP: w.a.nodeIP, HostIPs: []v1.HostIP{{IP: w.a.nodeIP}}, StartTime: &w.started, QOSClass: v1.PodQOSBestEffort}
	if w.sandbox != nil && w.sandbox.addr.IsValid() {
		st.PodIP = w.sandbox.addr.String()
		st.PodIPs = []v1.PodIP{{IP: st.PodIP}}
	} else if prev := w.pod.Status.PodIP; prev != "" {
		st.PodIP, st.PodIPs = prev, w.pod.Status.PodIPs // a finished pod keeps its address in status
	}
	allReady, running, failed := true, false, false
	for _, c := range w.containers {
		cs := v1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, ImageID: c.spec.Image, RestartCount: c.restarts,
			Ready: c.ready, LastTerminationState: c.lastState}
		switch {
		case c.cmd != nil:
			cs.State.Running = &v1.ContainerStateRunning{StartedAt: c.started}
			cs.ContainerID = fmt.Sprintf("lab-node://%d", c.cmd.Process.Pid)
			started := true
			cs.Started = &started
			running = true
		case c.exited != nil:
			cs.State.Terminated = c.exited
			failed = failed || c.exited.ExitCode != 0
		default:
			reason := c.waiting
			if reason == "" {
				reason = "ContainerCreating"
			}
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason}
		}
		allReady = allReady && cs.Ready
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	switch {
	case w.finished() && failed:
		st.Phase = v1.PodFailed
	case w.finished():
		st.Phase = v1.PodSucceeded
	case running || (w.sandbox != nil && w.everStarted()):
		st.Phase = v1.PodRunning // also between a crash and its restart, as kubelet says
	default:
		st.Phase = v1.PodPending
	}
	cond := func(t v1.PodConditionType, ok bool) v1.PodCondition {
		s := v1.ConditionFalse
		if ok {
			s = v1.ConditionTrue
		}
		for _, c := range w.pod.Status.Conditions {
			if c.Type == t && c.Status == s {
				return c
			}
		}
		return v1.PodCondition{Type: t, Status: s, LastTransitionTime: now}
	}
	ready := allReady && running
	st.Conditions = []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, w.sandbox != nil), cond(v1.PodInitialized, true),
		cond(v1.ContainersReady, ready), cond(v1.PodReady, ready), cond(v1.PodScheduled, true),
	}
	return st
}
