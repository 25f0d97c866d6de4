package kube

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"slipway/build/executor"
	"slipway/build/executor/executortest"
	"slipway/build/kube/transfer"
	"slipway/internal/kubetest"
)

// The tests below run against a real kube-apiserver (and etcd) with a test
// node whose Pods are bubblewrap sandboxes on this machine: one cluster for
// the package, started in TestMain. The helper image holds slipway-helper,
// built from cmd/slipway-helper in TestMain.
var cluster struct {
	c        *kubetest.Cluster
	node     *kubetest.Node
	transfer *transfer.Transfer
	url      string
}

func TestMain(m *testing.M) {
	os.Exit(runWithCluster(m))
}

func runWithCluster(m *testing.M) int {
	ctx := context.Background()
	bins, err := kubetest.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test cluster binaries:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The Pods run as an unprivileged uid, which must reach the helper,
	// built into a folder open to all.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helper := filepath.Join(dir, "slipway-helper")
	if out, err := exec.Command("go", "build", "-o", helper, "slipway/cmd/slipway-helper").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build slipway-helper: %v\n%s", err, out)
		return 1
	}
	c, err := kubetest.NewCluster(ctx, bins, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test cluster:", err)
		return 1
	}
	defer c.Close()
	node, err := kubetest.NewNode(ctx, c, kubetest.NodeOptions{
		Name: "kube-test",
		Images: map[string]kubetest.Image{
			"debian": kubetest.HostImage(),
			"helper": kubetest.HostImage(kubetest.Bind{Host: helper, Path: transfer.HelperPath}),
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test node:", err)
		return 1
	}
	defer node.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tr := &transfer.Transfer{}
	srv := &http.Server{Handler: tr}
	go srv.Serve(ln)
	defer srv.Close()
	cluster.c, cluster.node, cluster.transfer, cluster.url = c, node, tr, "http://"+ln.Addr().String()
	return m.Run()
}

// namespace makes a namespace for one test, with the "default" service
// account the build Pods run as.
func namespace(t *testing.T) string {
	t.Helper()
	cs := cluster.c.Clientset()
	name := "t-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(strings.ReplaceAll(name, "_", "-"), "-") + "-" + fmt.Sprint(time.Now().UnixNano()%100000)
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(name).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newExecutor(t *testing.T, tmp, ns string) *Executor {
	t.Helper()
	e, err := New(Options{
		Client: cluster.c.Clientset(), Namespace: ns, Instance: "test",
		Image: "debian", HelperImage: "helper",
		Transfer: cluster.transfer, TransferURL: cluster.url,
		GracePeriod: 2 * time.Second, APIGrace: 10 * time.Second,
		TempDir: tmp,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The executor passes the conformance suite on a real API server.
func TestConformance(t *testing.T) {
	ns := namespace(t)
	executortest.Run(t, func(t *testing.T, tmp string) executor.Executor {
		e := newExecutor(t, tmp, ns)
		t.Cleanup(func() {
			// Every Run removed what it made.
			pods, err := cluster.c.Clientset().CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			if err == nil && len(pods.Items) > 0 {
				for _, p := range pods.Items {
					if e.isLive(p.Name) {
						t.Errorf("pod %s left after its Run", p.Name)
					}
				}
			}
		})
		return e
	})
}

// A build's token opens the source once while the build runs, and nothing
// after it; the steps never see it.
func TestTokenEndsWithTheBuild(t *testing.T) {
	ns := namespace(t)
	e := newExecutor(t, t.TempDir(), ns)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokens := make(chan string, 1)
	job := executor.Job{
		ID: "9", Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Timeout: time.Minute,
		Steps: []string{"env | grep -c SLIPWAY_TRANSFER || true", "sleep 1"},
		StepStarted: func(i int) {
			if i != 1 {
				return
			}
			s, err := cluster.c.Clientset().CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil || len(s.Items) != 1 {
				t.Errorf("the build's secret: %v, %v", s, err)
				tokens <- ""
				return
			}
			tokens <- string(s.Items[0].Data[tokenKey])
		},
	}
	var log strings.Builder
	job.Log = &log
	res, err := e.Run(t.Context(), job)
	if err != nil || len(res.Steps) != 2 || res.Steps[1].ExitCode != 0 {
		t.Fatalf("Run: %+v, %v\n%s", res, err, log.String())
	}
	if strings.TrimSpace(log.String()) != "0" {
		t.Errorf("a step saw the transfer's variables: %q", log.String())
	}
	token := <-tokens
	req, _ := http.NewRequest(http.MethodGet, cluster.url+"/source", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if token == "" || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the token after its build: %s, want 401 Unauthorized", resp.Status)
	}
}
