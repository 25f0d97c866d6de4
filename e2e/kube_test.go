package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"slipway/build/kube"
	"slipway/build/kube/transfer"
	"slipway/internal/kubetest"
	"slipway/internal/testutil"
)

// The package's Kubernetes tests share one test cluster (etcd and
// kube-apiserver on loopback) and one test node, started by the first test
// that needs them and stopped by TestMain; each test gets a namespace of
// its own, made by configs/kubernetes-rbac.yaml, and runs its daemon as
// that file's service account.
var kubeShared struct {
	once    sync.Once
	err     error
	cluster *kubetest.Cluster
	node    *kubetest.Node
	close   func()
}

// kubeClose stops the shared cluster, if a test started it.
func kubeClose() {
	if kubeShared.close != nil {
		kubeShared.close()
	}
}

// The test node's images: "debian" (the host's system folders) and
// "slipway-helper" (the same with slipway-helper at transfer.HelperPath).
const (
	kubeStepImage   = "debian"
	kubeHelperImage = "slipway-helper"
)

func kubeStart(t *testing.T) (*kubetest.Cluster, *kubetest.Node) {
	t.Helper()
	kubeShared.once.Do(func() {
		ctx := context.Background()
		bins, err := kubetest.EnsureBinaries(ctx, os.Stderr)
		if err != nil {
			kubeShared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "kube-")
		if err != nil {
			kubeShared.err = err
			return
		}
		helper, err := buildHelper(dir, raceEnabled)
		if err != nil {
			kubeShared.err = err
			return
		}
		c, err := kubetest.NewCluster(ctx, bins, dir)
		if err != nil {
			kubeShared.err = err
			return
		}
		n, err := kubetest.NewNode(ctx, c, kubetest.NodeOptions{
			Name: "kube-e2e",
			Images: map[string]kubetest.Image{
				kubeStepImage:   kubetest.HostImage(),
				kubeHelperImage: kubetest.HostImage(kubetest.Bind{Host: helper, Path: transfer.HelperPath}),
			},
		})
		if err != nil {
			c.Close()
			kubeShared.err = err
			return
		}
		kubeShared.cluster, kubeShared.node = c, n
		kubeShared.close = func() {
			n.Stop()
			c.Close()
			os.RemoveAll(dir)
		}
	})
	if kubeShared.err != nil {
		t.Fatalf("the test cluster: %v", kubeShared.err)
	}
	return kubeShared.cluster, kubeShared.node
}

// kubeNS is a test's namespace on the shared cluster: the RBAC file
// applied to it, and a kubeconfig of its slipway service account.
type kubeNS struct {
	name       string
	kubeconfig string
	admin      kubernetes.Interface
	cluster    *kubetest.Cluster
}

// kubeNamespace makes a namespace by configs/kubernetes-rbac.yaml (its
// namespace renamed) and returns it.
func kubeNamespace(t *testing.T) kubeNS {
	t.Helper()
	c, _ := kubeStart(t)
	return kubeNamespaceOn(t, c)
}

// kubeNamespaceOn is kubeNamespace on cluster c.
func kubeNamespaceOn(t testing.TB, c *kubetest.Cluster) kubeNS {
	t.Helper()
	ns := kubeNS{name: "e2e-" + strings.ToLower(rand.Text()[:8]), admin: c.Clientset(), cluster: c}
	raw, err := os.ReadFile("../configs/kubernetes-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("slipway-builds"), []byte(ns.name))
	ctx := t.Context()
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("configs/kubernetes-rbac.yaml: %v", err)
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			_, err = ns.admin.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ServiceAccount:
			_, err = ns.admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = ns.admin.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = ns.admin.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("configs/kubernetes-rbac.yaml: unexpected %T", obj)
		}
		if err != nil {
			t.Fatalf("apply configs/kubernetes-rbac.yaml: %v", err)
		}
	}
	// The namespace's "default" account, which build Pods run as, is the
	// service-account controller's to make; the test cluster has none.
	if _, err := ns.admin.CoreV1().ServiceAccounts(ns.name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns.name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ns.kubeconfig, err = c.ServiceAccountKubeconfig(ctx, ns.name, "slipway"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// config is the [kubernetes] table of a daemon building in ns, with its
// transfer endpoint on a free loopback port, and extra lines in it.
func (ns kubeNS) config(t testing.TB, extra string) string {
	t.Helper()
	port := freePort(t)
	return fmt.Sprintf(`
[kubernetes]
kubeconfig = %q
namespace = %q
image = %q
helper_image = %q
transfer_listen = "127.0.0.1:%d"
transfer_url = "http://127.0.0.1:%d"
%s
`, ns.kubeconfig, ns.name, kubeStepImage, kubeHelperImage, port, port, extra)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// objects lists the Pods and Secrets in ns, "pod/NAME" and "secret/NAME".
func (ns kubeNS) objects(t *testing.T) []string {
	t.Helper()
	var out []string
	pods, err := ns.admin.CoreV1().Pods(ns.name).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		out = append(out, "pod/"+p.Name)
	}
	secrets, err := ns.admin.CoreV1().Secrets(ns.name).List(t.Context(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{kube.LabelManagedBy: "slipway"}).String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		out = append(out, "secret/"+s.Name)
	}
	return out
}

// waitEmpty waits until ns holds no build Pod or Secret.
func (ns kubeNS) waitEmpty(t *testing.T, d *daemon, timeout time.Duration, what string) {
	t.Helper()
	var left []string
	d.eventually(t, timeout, what+": no build pod or secret left", func() bool {
		left = ns.objects(t)
		return len(left) == 0
	})
}

// kubeApp starts a daemon whose repository app builds in a new namespace,
// with extra lines in [kubernetes] and daemonExtra after it.
func kubeApp(t *testing.T, kubeExtra, daemonExtra string) (*user, *daemon, kubeNS) {
	t.Helper()
	return kubeAppWith(t, "", kubeExtra, daemonExtra)
}

// kubeAppWith is kubeApp with repoExtra in app's [[repo]] table.
func kubeAppWith(t *testing.T, repoExtra, kubeExtra, daemonExtra string, env ...string) (*user, *daemon, kubeNS) {
	t.Helper()
	ns := kubeNamespace(t)
	alice, bob := btUsers(t)
	cfg := configFor(btRepoConfig+"executor = \"kubernetes\"\n"+repoExtra+ns.config(t, kubeExtra)+daemonExtra, []*user{alice}, bob)
	return alice, kubeDaemon(t, cfg, env...), ns
}

// TestKubeBuildPassesAndFails: a push builds on the cluster, live over
// `git push -o wait`, in the pipeline's image; the build says where it ran,
// and a failing step fails it with its exit code. Nothing is left in the
// namespace after either build.
func TestKubeBuildPassesAndFails(t *testing.T) {
	t.Parallel()
	const secret = "kube-secret-value-7f3a"
	alice, d, ns := kubeAppWith(t, `  [[repo.secret]]
  name = "KT_TOKEN"
  env = "KT_E2E_SECRET"
  branches = ["main"]
`, "", "", "KT_E2E_SECRET="+secret)
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(`image = "debian:13"
artifacts = ["out"]
`, `echo "step one in $PWD as $(id -u)"`, `test "$KT_TOKEN" = "`+secret+`" && echo "secret arrived: $KT_TOKEN"`,
			`mkdir -p out && cp main.txt out/ && echo built > out/stamp`),
		"main.txt": "hello\n",
	})
	out := alice.mustGit(t, src, "push", "-o", "wait", d.url("app"), "HEAD:main")
	if strings.Contains(out, secret) {
		t.Errorf("the secret's value reached the pusher unmasked:\n%s", out)
	}
	for _, want := range []string{"== running on kubernetes: pod slipway-build-1-", "== step 1/3", "step one in /workspace as 65532", "secret arrived: ***", "passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("push -o wait output lacks %q:\n%s", want, out)
		}
	}
	b := btPassed(t, d, db, alice, "app", 1, "the build on Kubernetes")
	if b.Digest == "" {
		t.Errorf("no artifacts digest: %+v", b)
	}
	list := sshJSON[[]struct {
		ID    int64  `json:"id"`
		RanOn string `json:"ran_on"`
	}](t, d, alice, "builds", "app", "--json")
	if len(list) != 1 || !strings.HasPrefix(list[0].RanOn, "kubernetes: pod slipway-build-1-") || !strings.Contains(list[0].RanOn, "on node kube-e2e") {
		t.Errorf("builds --json: %+v; want ran_on naming the pod and its node", list)
	}
	if table := mustSSH(t, d, alice, "builds", "app"); !strings.Contains(table, "RAN ON") {
		t.Errorf("builds shows no RAN ON column:\n%s", table)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after a passing build")

	alice.commit(t, src, ".slipway.toml", btPipeline("", "echo failing on purpose; exit 3", "echo never"))
	out, _ = alice.git(src, "push", "-o", "wait", d.url("app"), "HEAD:main")
	b = btFinal(t, d, db, alice, "app", 2)
	if b.State != "failed" || !strings.Contains(b.Reason, "exited 3") || strings.Contains(out, "never") {
		t.Errorf("failing build: %s (%s)\n%s", b.State, b.Reason, out)
	}
	// A retry runs on the cluster again, in a Pod of its own.
	mustSSH(t, d, alice, "retry", "2")
	b = btFinal(t, d, db, alice, "app", 3)
	if b.State != "failed" || !strings.Contains(b.Reason, "exited 3") || !strings.Contains(btLog(t, d, alice, 3, false), "== running on kubernetes: pod slipway-build-3-") {
		t.Errorf("retried build: %s (%s)", b.State, b.Reason)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after a failing build and its retry")
}

// TestKubeArtifactsMatchLocal: the same commit built on Kubernetes and on
// this host keeps the same artifacts, with the same digest.
func TestKubeArtifactsMatchLocal(t *testing.T) {
	t.Parallel()
	ns := kubeNamespace(t)
	alice, bob := btUsers(t)
	cfg := configFor(`
[[repo]]
name = "onkube"
write = ["alice"]
executor = "kubernetes"

[[repo]]
name = "local"
write = ["alice"]
`+ns.config(t, ""), []*user{alice}, bob)
	d := kubeDaemon(t, cfg)
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(`artifacts = ["dist", "README"]
`, `mkdir -p dist/bin && printf 'app' > dist/bin/app && chmod 755 dist/bin/app && ln -s bin/app dist/current && head -c 100000 /dev/zero > dist/blob`),
		"README": "read me\n",
	})
	alice.mustGit(t, src, "push", d.url("onkube"), "HEAD:main")
	alice.mustGit(t, src, "push", d.url("local"), "HEAD:main")
	k := btPassed(t, d, db, alice, "onkube", 1, "the build on Kubernetes")
	l := btPassed(t, d, db, alice, "local", 2, "the local build")
	if k.Digest == "" || k.Digest != l.Digest {
		t.Errorf("digests differ: kubernetes %q, local %q", k.Digest, l.Digest)
	}
}

// TestKubeCancelAndTimeout: cancelling a build deletes its Pod (its
// processes with it), and a build past its timeout ends the same way.
func TestKubeCancelAndTimeout(t *testing.T) {
	t.Parallel()
	alice, d, ns := kubeApp(t, `grace_period = "2s"`, "")
	db := d.store(t)
	mark := "kube-cancel-" + strings.ToLower(rand.Text()[:8])
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "echo started; sh -c 'sleep 300; true' "+mark)})
	alice.mustGit(t, src, "push", d.url("app"), "HEAD:main")
	d.eventually(t, 2*time.Minute, "the step to start", func() bool { return strings.Contains(btLog(t, d, alice, 1, false), "started") })
	if len(ns.objects(t)) == 0 {
		t.Fatal("no pod while the build runs")
	}
	mustSSH(t, d, alice, "cancel", "1")
	b := btFinal(t, d, db, alice, "app", 1)
	if b.State != "cancelled" {
		t.Errorf("cancelled build: %s (%s)", b.State, b.Reason)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after the cancel")
	if ps := testutil.ProcessesWith(mark); len(ps) > 0 {
		t.Errorf("the cancelled build's processes live on:\n%s", strings.Join(ps, "\n"))
	}

	alice.commit(t, src, ".slipway.toml", btPipeline(`timeout = "3s"`, "echo started; sh -c 'sleep 300; true' "+mark))
	alice.mustGit(t, src, "push", d.url("app"), "HEAD:main")
	b = btFinal(t, d, db, alice, "app", 2)
	if b.State != "failed" || !strings.Contains(b.Reason, "timed out") {
		t.Errorf("timed-out build: %s (%s)", b.State, b.Reason)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after the timeout")
}

// TestKubeDaemonKilledMidBuild: a daemon killed (-9) while its build runs
// on the cluster finds the build's Pod at its next start, deletes it, and
// runs the build again; nothing is left once it settles.
func TestKubeDaemonKilledMidBuild(t *testing.T) {
	t.Parallel()
	alice, d, ns := kubeApp(t, "", "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "echo started; sleep 6; echo done")})
	alice.mustGit(t, src, "push", d.url("app"), "HEAD:main")
	d.eventually(t, 2*time.Minute, "the step to start", func() bool { return strings.Contains(btLog(t, d, alice, 1, false), "started") })
	before := ns.objects(t)
	if len(before) != 2 {
		t.Fatalf("while the build runs: %v; want its pod and secret", before)
	}
	d.kill()
	d.start()
	b := btPassed(t, d, db, alice, "app", 1, "the build after the restart")
	if b.Attempt != 2 {
		t.Errorf("attempt %d, want 2", b.Attempt)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after the restart")
	for _, o := range ns.objects(t) {
		for _, old := range before {
			if o == old {
				t.Errorf("%s of the killed daemon is still there", o)
			}
		}
	}
}

// TestKubeAPIServerAway: with the API server stopped, a pushed build waits
// in the queue, saying why, and runs once it is back; a build whose API
// server stops answering mid-build for longer than api_timeout ends in
// error, and its Pod and Secret are deleted once the server is back.
func TestKubeAPIServerAway(t *testing.T) {
	// Not parallel: it stops the shared API server.
	alice, d, ns := kubeApp(t, `api_timeout = "4s"`, "")
	db := d.store(t)
	c := ns.cluster
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "echo started; sleep 8; echo done")})

	c.Stop()
	alice.mustGit(t, src, "push", d.url("app"), "HEAD:main")
	d.eventually(t, time.Minute, "the build to wait in the queue with the reason", func() bool {
		b := btBuildByID(t, d, alice, "app", 1)
		return b.State == "queued" && strings.Contains(b.Reason, "Kubernetes API server cannot be reached")
	})
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := btPassed(t, d, db, alice, "app", 1, "the build queued while the API server was away")
	if b.Attempt != 1 {
		t.Errorf("attempt %d after waiting in the queue, want 1", b.Attempt)
	}
	ns.waitEmpty(t, d, 30*time.Second, "after the queued build")

	alice.commit(t, src, "again", "x")
	alice.mustGit(t, src, "push", d.url("app"), "HEAD:main")
	d.eventually(t, 2*time.Minute, "the step to start", func() bool { return strings.Contains(btLog(t, d, alice, 2, false), "started") })
	c.Stop()
	b = btFinal(t, d, db, alice, "app", 2)
	if b.State != "error" || !strings.Contains(b.Reason, "has not answered") {
		t.Errorf("build whose API server went away: %s (%s)", b.State, b.Reason)
	}
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	ns.waitEmpty(t, d, time.Minute, "once the API server is back")
}

// TestKubeConcurrencyCap: 20 builds at once with max_concurrent = 4 never
// have more than 4 Pods, and all pass.
func TestKubeConcurrencyCap(t *testing.T) {
	t.Parallel()
	alice, d, ns := kubeApp(t, "max_concurrent = 4", "\n[build]\nconcurrency = 20\nmax_per_push = 20\n")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "sleep 1")})
	var most, now int
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := ns.admin.CoreV1().Pods(ns.name).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case "ADDED":
				if !seen[p.Name] {
					seen[p.Name] = true
					now++
				}
			case "DELETED":
				if seen[p.Name] {
					now--
				}
			}
			most = max(most, now)
			mu.Unlock()
		}
	}()
	var refs []string
	for i := range 20 {
		refs = append(refs, "HEAD:refs/heads/b"+strconv.Itoa(i))
	}
	alice.mustGit(t, src, append([]string{"push", d.url("app")}, refs...)...)
	for id := int64(1); id <= 20; id++ {
		btPassed(t, d, db, alice, "app", id, "one of 20 builds")
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 4 || len(seen) != 20 {
		t.Errorf("%d pods at most at once (want 4 at most), %d in all (want 20)", most, len(seen))
	}
}

// buildHelper builds slipway-helper into dir (made searchable: the Pods run
// as an unprivileged uid), with the race detector when race.
func buildHelper(dir string, race bool) (string, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "slipway-helper")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "slipway/cmd/slipway-helper")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build slipway-helper: %v\n%s", err, out)
	}
	return bin, nil
}

// kubeBins are slipway built with the Kubernetes executor (-tags
// kubernetes), as the tests are (with -race when the run is) and as it
// ships (without), each made once, when a test first needs it.
var kubeBins = struct{ test, release func() (string, error) }{
	test:    sync.OnceValues(func() (string, error) { return buildKubeBin("-kube", raceEnabled) }),
	release: sync.OnceValues(func() (string, error) { return buildKubeBin("-kube-release", false) }),
}

func buildKubeBin(suffix string, race bool) (string, error) {
	bin := slipwayBin + suffix
	args := []string{"build", "-tags", "kubernetes", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "slipway/cmd/slipway")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build slipway -tags kubernetes: %v\n%s", err, out)
	}
	return bin, nil
}

// kubeDaemon starts a daemon of the Kubernetes build of slipway on config,
// failing on a warning at start as btStartDaemon does.
func kubeDaemon(t testing.TB, config string, env ...string) *daemon {
	t.Helper()
	bin, err := kubeBins.test()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemonBin(t, bin, config, env...)
	btNoWarning(d)
	return d
}

// TestKubeNeedsTheTaggedBuild: the default build of slipway, which has no
// Kubernetes client (it would cost every hook process and the idle daemon),
// refuses a configuration that runs builds on Kubernetes, saying how to
// build the one that can.
func TestKubeNeedsTheTaggedBuild(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cfg := filepath.Join(root, "slipway.toml")
	body := strings.ReplaceAll(configFor(btRepoConfig+`executor = "kubernetes"
[kubernetes]
kubeconfig = "/nonexistent"
helper_image = "h"
transfer_listen = "127.0.0.1:0"
transfer_url = "http://127.0.0.1:1"
`, []*user{newUser(t, "alice")}), "%DATA%", filepath.Join(root, "data"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(slipwayBin, "serve", "--config", cfg)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "go build -tags kubernetes ./cmd/slipway") {
		t.Errorf("serve without the Kubernetes executor: %v\n%s", err, out)
	}
}
