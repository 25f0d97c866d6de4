package kubetest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// env is the package's one cluster and node, made in TestMain: a cluster
// takes seconds to start.
type env struct {
	cluster *Cluster
	node    *Node
	cs      *kubernetes.Clientset
}

var shared env

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubetest-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	c, err := NewCluster(ctx, bins, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	started := time.Since(start)
	n, err := NewNode(ctx, c, NodeOptions{Name: "kubetest-main", Labels: map[string]string{"slipway.test/pool": "main"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintln(os.Stderr, c.LogTail(40))
		return 1
	}
	defer n.Stop()
	if testing.Verbose() {
		fmt.Printf("kubetest: cluster started in %s, node ready %s later\n", started.Round(time.Millisecond), (time.Since(start) - started).Round(time.Millisecond))
	}
	shared = env{cluster: c, node: n, cs: c.Clientset()}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, c.LogTail(60))
		fmt.Fprintln(os.Stderr, n.LogTail(60))
	}
	return code
}

// namespace makes a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns, err := shared.cluster.CreateNamespace(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// debianPod is a pod for the shared node with one container running script
// in sh.
func debianPod(name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			NodeSelector:  map[string]string{"slipway.test/pool": "main"},
			Containers:    []corev1.Container{shContainer("main", script)},
		},
	}
}

func shContainer(name, script string) corev1.Container {
	return corev1.Container{
		Name: name, Image: "debian", Command: []string{"/bin/sh", "-c", script},
		Env: []corev1.EnvVar{{Name: "PATH", Value: "/usr/bin:/bin"}},
	}
}

func createPod(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := shared.cs.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return got
}

// waitPod polls the pod until ok says yes, failing the test after limit.
func waitPod(t *testing.T, ns, name string, limit time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		pod, err := shared.cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			last = pod
			if ok(pod) {
				return pod
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("pod %s/%s: not %s within %s; phase %s reason %q message %q\ninit: %s\ncontainers: %s",
			ns, name, what, limit, last.Status.Phase, last.Status.Reason, last.Status.Message,
			states(last.Status.InitContainerStatuses), states(last.Status.ContainerStatuses))
	}
	t.Fatalf("pod %s/%s: not %s within %s (never read)", ns, name, what, limit)
	return nil
}

func states(sts []corev1.ContainerStatus) string {
	s := ""
	for _, st := range sts {
		s += fmt.Sprintf("[%s %s] ", st.Name, state(st))
	}
	return s
}

func state(st corev1.ContainerStatus) string {
	switch {
	case st.State.Waiting != nil:
		return "waiting " + st.State.Waiting.Reason + " " + st.State.Waiting.Message
	case st.State.Running != nil:
		return "running"
	case st.State.Terminated != nil:
		return fmt.Sprintf("terminated %d %s", st.State.Terminated.ExitCode, st.State.Terminated.Reason)
	}
	return "none"
}

func ended(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func podLogs(t *testing.T, ns, pod, container string) string {
	t.Helper()
	b, err := shared.cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", pod, container, err)
	}
	return string(b)
}
