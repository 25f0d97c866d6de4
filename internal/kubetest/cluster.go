package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is etcd and kube-apiserver on loopback. Its methods are safe for
// concurrent use.
type Cluster struct {
	// Host is the API server's URL, https://127.0.0.1:PORT. The port stays
	// the same across Stop and Restart.
	Host string
	// CAFile holds the PEM CA that signed the API server's certificate.
	CAFile string
	// AdminToken is a bearer token of user "kubetest-admin" in group
	// system:masters.
	AdminToken string

	dir     string
	bins    Bins
	ca      *authority
	port    int
	etcd    *daemon
	etcdURL string

	mu     sync.Mutex
	api    *daemon // nil while stopped
	closed bool
	seq    int // numbers the kubeconfig files written
}

// The API server's port is drawn from [apiPortLow, apiPortHigh): below
// Linux's ephemeral range (32768-60999), so that the port is still free
// when Restart binds it again. kube-apiserver cannot bind port 0.
const apiPortLow, apiPortHigh = 20000, 32767

// StartCluster starts a cluster for the test and stops it when the test
// ends, printing the tail of both daemons' logs if the test failed. It
// fails the test when the binaries cannot be found or built or the cluster
// does not come up. A cluster takes seconds to start: tests that can share
// one should (NewCluster in TestMain).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bins, err := EnsureBinaries(ctx, testWriter{t})
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	c, err := NewCluster(ctx, bins, t.TempDir())
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.LogTail(80))
		}
		c.Close()
	})
	return c
}

// testWriter sends a build's progress to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// NewCluster starts etcd and kube-apiserver with their data, certificates
// and logs (etcd.log, kube-apiserver.log) in dir, and waits until the API
// server's /readyz answers. Close stops both.
func NewCluster(ctx context.Context, bins Bins, dir string) (*Cluster, error) {
	c := &Cluster{dir: dir, bins: bins, CAFile: filepath.Join(dir, "ca.crt")}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	if err := c.startEtcd(ctx); err != nil {
		return nil, err
	}
	var err error
	for range 8 { // a port taken by another listener: draw again
		c.port = apiPortLow + randInt(apiPortHigh-apiPortLow)
		c.Host = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
		err = c.startAPI(ctx)
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w\n%s", err, c.LogTail(40))
	}
	return c, nil
}

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

func (c *Cluster) path(name string) string { return filepath.Join(c.dir, name) }

// prepare writes the CA, certificates, keys and token file.
func (c *Cluster) prepare() error {
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	c.ca = ca
	if err := os.WriteFile(c.CAFile, ca.certPEM, 0o644); err != nil {
		return fmt.Errorf("write CA: %w", err)
	}
	if err := ca.issueFiles(c.path("apiserver.crt"), c.path("apiserver.key"), "kube-apiserver", nil,
		"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"); err != nil {
		return err
	}
	// The API server's client certificate towards kubelets (pods/log).
	if err := ca.issueFiles(c.path("kubelet-client.crt"), c.path("kubelet-client.key"), "kube-apiserver-kubelet-client", []string{"system:masters"}); err != nil {
		return err
	}
	if err := writeSigningKey(c.path("sa.key"), c.path("sa.pub")); err != nil {
		return err
	}
	b := make([]byte, 16)
	rand.Read(b)
	c.AdminToken = hex.EncodeToString(b)
	tokens := fmt.Sprintf("%s,kubetest-admin,kubetest-admin,\"system:masters\"\n", c.AdminToken)
	if err := os.WriteFile(c.path("tokens.csv"), []byte(tokens), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return c.writeKubeconfig(c.KubeconfigPath(), c.AdminToken, "default")
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	addr := make(chan string, 1)
	d, err := startDaemon("etcd", c.path("etcd.log"), c.bins.Etcd, []string{
		"--name=kubetest",
		"--data-dir=" + c.path("etcd"),
		// Port 0: the kernel picks; the bound address is read from the log.
		"--listen-client-urls=http://127.0.0.1:0",
		"--advertise-client-urls=http://127.0.0.1:0",
		"--listen-peer-urls=http://127.0.0.1:0",
		"--initial-advertise-peer-urls=http://127.0.0.1:0",
		"--initial-cluster=kubetest=http://127.0.0.1:0",
		"--unsafe-no-fsync", // test data: nothing to keep across a crash
		"--log-level=info",
	}, func(line string) {
		if !strings.Contains(line, "serving client traffic insecurely") {
			return
		}
		var entry struct{ Address string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Address != "" {
			select {
			case addr <- entry.Address:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	c.etcd = d
	select {
	case a := <-addr:
		c.etcdURL = "http://" + a
		return nil
	case <-d.done:
		return fmt.Errorf("etcd exited before serving (%v)\n%s", d.err, c.LogTail(40))
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	d.stop(time.Second)
	return fmt.Errorf("etcd did not serve within a minute\n%s", c.LogTail(40))
}

var errPortInUse = errors.New("API server port in use")

// startAPI starts kube-apiserver on c.port and waits for /readyz.
func (c *Cluster) startAPI(ctx context.Context) error {
	inUse := make(chan struct{}, 1)
	d, err := startDaemon("kube-apiserver", c.path("kube-apiserver.log"), c.bins.APIServer, []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--tls-cert-file=" + c.path("apiserver.crt"),
		"--tls-private-key-file=" + c.path("apiserver.key"),
		"--client-ca-file=" + c.CAFile,
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("sa.pub"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		// No controller manager creates the "default" ServiceAccount, and
		// the test node has no projected token volumes.
		"--disable-admission-plugins=ServiceAccount",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + c.CAFile,
		"--kubelet-client-certificate=" + c.path("kubelet-client.crt"),
		"--kubelet-client-key=" + c.path("kubelet-client.key"),
		"--cert-dir=" + c.path("apiserver-certs"),
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}, func(line string) {
		if strings.Contains(line, "address already in use") {
			select {
			case inUse <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.api = d
	c.mu.Unlock()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ca.pool()}}, Timeout: 5 * time.Second}
	// /readyz includes informer-sync: once it passes, the authorizer has
	// loaded every Role and binding (a client that does not wait for it,
	// as the daemon under test, may be refused what its Role allows).
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.done:
			select {
			case <-inUse:
				return errPortInUse
			default:
			}
			return fmt.Errorf("kube-apiserver exited before it was ready (%v)", d.err)
		case <-ctx.Done():
			d.stop(time.Second)
			return fmt.Errorf("wait for kube-apiserver: %w", context.Cause(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.stop(time.Second)
	return errors.New("kube-apiserver was not ready within 2 minutes")
}

// Stop stops the API server alone (etcd keeps running), as if the
// control plane became unreachable: clients get connection refused until
// Restart.
func (c *Cluster) Stop() {
	c.mu.Lock()
	d := c.api
	c.api = nil
	c.mu.Unlock()
	if d != nil {
		d.stop(10 * time.Second)
	}
}

// Restart starts the API server again on the same port after Stop (and
// stops it first if it runs), and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context) error {
	c.Stop()
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errors.New("restart a closed cluster")
	}
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if err = c.startAPI(ctx); !errors.Is(err, errPortInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	return nil
}

// Close stops the API server and etcd. Safe to call twice.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.Stop()
	if c.etcd != nil {
		c.etcd.stop(10 * time.Second)
	}
}

// LogTail returns the last n lines of the etcd and kube-apiserver logs,
// with their paths.
func (c *Cluster) LogTail(n int) string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		p := c.path(name)
		data, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- last %d lines of %s:\n%s\n", len(lines), p, strings.Join(lines, "\n"))
	}
	return b.String()
}

// Config is an admin client configuration.
func (c *Cluster) Config() *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     c.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ca.certPEM},
		QPS:             200,
		Burst:           400,
	}
}

// Clientset is a new admin client.
func (c *Cluster) Clientset() *kubernetes.Clientset {
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		panic(fmt.Sprintf("kubetest: admin clientset: %v", err)) // only a malformed config fails
	}
	return cs
}

// KubeconfigPath is an admin kubeconfig file (namespace "default").
func (c *Cluster) KubeconfigPath() string { return c.path("admin.kubeconfig") }

// writeKubeconfig writes a kubeconfig for the cluster that authenticates
// with token and whose context's namespace is namespace.
func (c *Cluster) writeKubeconfig(path, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.ca.certPEM}
	cfg.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest", Namespace: namespace}
	cfg.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// ServiceAccountToken mints a token for the ServiceAccount namespace/name
// through the TokenRequest API, creating the ServiceAccount first if it
// does not exist. The token is valid for an hour.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	cs := c.Clientset()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create service account %s/%s: %w", namespace, name, err)
	}
	ttl := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token for service account %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes a kubeconfig file that authenticates as
// the ServiceAccount namespace/name (see ServiceAccountToken) with
// namespace as its context's namespace, and returns its path.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	token, err := c.ServiceAccountToken(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.seq++
	path := c.path(fmt.Sprintf("sa-%s-%s-%d.kubeconfig", namespace, name, c.seq))
	c.mu.Unlock()
	if err := c.writeKubeconfig(path, token, namespace); err != nil {
		return "", err
	}
	return path, nil
}

// CreateNamespace creates a namespace with a unique name starting with
// prefix and returns its name.
func (c *Cluster) CreateNamespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	got, err := c.Clientset().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create namespace %s-*: %w", prefix, err)
	}
	return got.Name, nil
}
