// The agent: registers the Node, keeps its Lease and status fresh and hands each pod bound here
// to a pod worker. (Routes to the other nodes' pod CIDRs are the lab's to set, as a CNI daemon
// with its own credentials would: a node may read only its own Node object.)

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeletVersion is what the Node says it runs: the release the lab's control plane is built from.
const kubeletVersion = "v1.37.2"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type agent struct {
	name     string
	nodeIP   string
	state    string
	images   map[string]bool
	paths    [][2]string // container path prefix -> host path, longest first
	dns      string      // the cluster DNS Service's address (kubelet's clusterDNS), or ""
	client   kubernetes.Interface
	services listersv1.ServiceLister
	ipam     *ipam
	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	wg       sync.WaitGroup
	ctx      context.Context
	probes   *probeLog
}

func agentMain(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	a := &agent{images: map[string]bool{}, workers: map[types.UID]*podWorker{}}
	kubeconfig := fs.String("kubeconfig", "", "the node's kubeconfig (CN=system:node:NAME, O=system:nodes)")
	fs.StringVar(&a.name, "name", "", "the Node's name")
	fs.StringVar(&a.nodeIP, "node-ip", "", "the node's InternalIP")
	fs.StringVar(&a.state, "state", "", "a directory for the pods' logs")
	a.probes = &probeLog{}
	fs.StringVar(&a.probes.path, "probe-log", "", "a file to append a JSON line to for every HTTP probe sent (for tests)")
	fs.StringVar(&a.dns, "cluster-dns", "", "the cluster DNS Service's ClusterIP, for pods' resolv.conf (dnsPolicy ClusterFirst)")
	var images, paths listFlag
	fs.Var(&images, "image", "an image this node has (repeatable); pods of others fail ErrImageNeverPull")
	fs.Var(&paths, "path", "CONTAINER_PATH=HOST_PATH: where the images' files are on this host (repeatable)")
	_ = fs.Parse(args)
	if a.name == "" || *kubeconfig == "" || net.ParseIP(a.nodeIP) == nil || a.state == "" {
		return fmt.Errorf("agent needs --name, --kubeconfig, --node-ip and --state")
	}
	for _, i := range images {
		a.images[i] = true
	}
	for _, p := range paths {
		c, h, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--path %q: want CONTAINER_PATH=HOST_PATH", p)
		}
		a.paths = append(a.paths, [2]string{c, h})
	}
	sortLongestFirst(a.paths)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "lab-node/" + kubeletVersion
	if a.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a.ctx = ctx
	if err := os.MkdirAll(a.state, 0o755); err != nil {
		return err
	}

	cidr, err := a.register(ctx)
	if err != nil {
		return err
	}
	if a.ipam, err = newIPAM(cidr); err != nil {
		return err
	}
	if err := bridgeUp(a.ipam.gateway, a.ipam.prefix); err != nil {
		return err
	}
	log.Printf("node %s: pod CIDR %s on cni0", a.name, cidr)
	go a.heartbeat(ctx)

	all := informers.NewSharedInformerFactory(a.client, 0)
	a.services = all.Core().V1().Services().Lister()
	_ = all.Core().V1().Services().Informer()
	mine := informers.NewSharedInformerFactoryWithOptions(a.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + a.name }))
	pods := mine.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.dispatch(o.(*v1.Pod)) },
		UpdateFunc: func(_, o any) { a.dispatch(o.(*v1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				a.gone(p.UID)
			}
		},
	})
	all.Start(ctx.Done())
	all.WaitForCacheSync(ctx.Done())
	mine.Start(ctx.Done())
	<-ctx.Done()
	log.Printf("node %s: stopping its pods", a.name)
	a.mu.Lock()
	for _, w := range a.workers {
		w.shutdown()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

// register creates (or takes over) this node's Node object, reports it Ready, and waits for the
// controller manager's node IPAM to give it a pod CIDR.
func (a *agent) register(ctx context.Context) (string, error) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.name, Labels: map[string]string{
		"kubernetes.io/hostname": a.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
	}}}
	// Until the API server takes it (it may not answer yet), as kubelet keeps trying.
	for {
		_, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			err = a.reportNode(ctx)
		}
		if err == nil {
			break
		}
		log.Printf("node %s: registering: %v", a.name, err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	for {
		n, err := a.client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
		if err == nil && n.Spec.PodCIDR != "" {
			return n.Spec.PodCIDR, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reportNode writes the node's status (its addresses, capacity and a Ready condition) as kubelet
// does, with a strategic merge patch of the status: an update would carry the spec as this agent
// last read it, and NodeRestriction refuses a node that seems to change its own taints (the node
// lifecycle controller taints a new node until it is Ready).
func (a *agent) reportNode(ctx context.Context) error {
	now := metav1.Now()
	capacity := v1.ResourceList{
		v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("8Gi"),
		v1.ResourcePods: resource.MustParse("110"),
	}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
		Message: "lab-node is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now}
	if n, err := a.client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err == nil {
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				ready.LastTransitionTime = c.LastTransitionTime
			}
		}
	}
	status := v1.NodeStatus{
		Capacity: capacity, Allocatable: capacity, Conditions: []v1.NodeCondition{ready},
		Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: a.nodeIP}, {Type: v1.NodeHostName, Address: a.name}},
		NodeInfo: v1.NodeSystemInfo{KubeletVersion: kubeletVersion, OperatingSystem: "linux", Architecture: runtime.GOARCH,
			ContainerRuntimeVersion: "lab-node://" + kubeletVersion, OSImage: "podtap lab node"},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: 10250}},
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = a.client.CoreV1().Nodes().Patch(ctx, a.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// heartbeat renews the node's Lease every 10 s and its status every minute, as kubelet does.
func (a *agent) heartbeat(ctx context.Context) {
	leases := a.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	duration := int32(40)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Get(ctx, a.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.name}, Spec: coordv1.LeaseSpec{
				HolderIdentity: &a.name, LeaseDurationSeconds: &duration, RenewTime: &now}}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		case err == nil:
			l.Spec.RenewTime = &now
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err != nil && ctx.Err() == nil {
			log.Printf("node %s: lease: %v", a.name, err)
		}
		if n%6 == 5 {
			if err := a.reportNode(ctx); err != nil && ctx.Err() == nil {
				log.Printf("node %s: status: %v", a.name, err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dispatch gives a pod's newest state to its worker, starting one for a pod not seen before.
func (a *agent) dispatch(p *v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return
	}
	w, ok := a.workers[p.UID]
	if !ok {
		if p.DeletionTimestamp == nil && (p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed) {
			return // finished before this agent started: nothing of it runs here
		}
		w = newPodWorker(a, p)
		a.workers[p.UID] = w
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			w.run()
			a.mu.Lock()
			delete(a.workers, p.UID)
			a.mu.Unlock()
		}()
	}
	w.update(p)
}

// gone: the pod's object was deleted (by this agent, or forcibly): its worker stops.
func (a *agent) gone(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w, ok := a.workers[uid]; ok {
		w.shutdown()
	}
}
