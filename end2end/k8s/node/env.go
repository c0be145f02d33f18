// A container's environment as kubelet makes it: the Services of the pod's namespace (and the
// `kubernetes` Service) as {NAME}_SERVICE_HOST/PORT and Docker link variables, then the
// container's own `env` with field references and $(VAR) expansion, kubelet's own expansion code.

package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

func (w *podWorker) environment(c *v1.Container) (map[string]string, error) {
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOSTNAME": w.pod.Name}
	if w.pod.Spec.EnableServiceLinks == nil || *w.pod.Spec.EnableServiceLinks {
		svcs, _ := w.a.services.Services(w.pod.Namespace).List(labels.Everything())
		if w.pod.Namespace != "default" {
			if k, err := w.a.services.Services("default").Get("kubernetes"); err == nil {
				svcs = append(svcs, k)
			}
		}
		for _, s := range svcs {
			serviceEnv(env, s)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expansion.Expand(e.Value, expansion.MappingFuncFor(env))
		case e.ValueFrom.FieldRef != nil:
			v, err := w.field(e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, err
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("env %s: only values and field references are supported here", e.Name)
		}
	}
	return env, nil
}

func (w *podWorker) field(path string) (string, error) {
	p := w.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return w.a.nodeIP, nil
	case "status.podIP":
		return w.sandbox.addr.String(), nil
	}
	return "", fmt.Errorf("field %s is not supported here", path)
}

// serviceEnv adds one Service's variables (k8s.io/kubernetes/pkg/kubelet/envvars).
func serviceEnv(env map[string]string, s *v1.Service) {
	if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
		return
	}
	name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	first := s.Spec.Ports[0]
	env[name+"_SERVICE_HOST"] = s.Spec.ClusterIP
	env[name+"_SERVICE_PORT"] = fmt.Sprint(first.Port)
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			env[name+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = fmt.Sprint(p.Port)
		}
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, strings.ToUpper(proto))
		env[prefix] = fmt.Sprintf("%s://%s:%d", proto, s.Spec.ClusterIP, p.Port)
		env[prefix+"_PROTO"] = proto
		env[prefix+"_PORT"] = fmt.Sprint(p.Port)
		env[prefix+"_ADDR"] = s.Spec.ClusterIP
	}
	env[name+"_PORT"] = fmt.Sprintf("tcp://%s:%d", s.Spec.ClusterIP, first.Port)
}

func expandAll(argv []string, env map[string]string) []string {
	m := expansion.MappingFuncFor(env)
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = expansion.Expand(a, m)
	}
	return out
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// hostPaths maps each word of an argument (a path, or the paths in a `sh -c` script) with
// hostPath.
func (w *podWorker) hostPaths(arg string) string {
	words := strings.Fields(arg)
	if len(words) < 2 {
		return w.hostPath(arg)
	}
	for i, word := range words {
		words[i] = w.hostPath(word)
	}
	return strings.Join(words, " ")
}

// hostPath maps a path inside the lab's image to where its files are on this host (--path).
func (w *podWorker) hostPath(s string) string {
	for _, p := range w.a.paths {
		if s == p[0] || strings.HasPrefix(s, p[0]+"/") {
			return p[1] + s[len(p[0]):]
		}
	}
	return s
}
