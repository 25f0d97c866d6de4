package kubetest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// NodeOptions configure a test node. The zero value is a node named
// "kubetest-node" with the image "debian" (HostImage).
type NodeOptions struct {
	// Name is the Node's name; "kubetest-node" when empty. Nodes of one
	// cluster need different names.
	Name string
	// Labels are added to the node's own (kubernetes.io/hostname,
	// kubernetes.io/os, type=kubetest). The binder binds a pod only when
	// its nodeSelector matches them.
	Labels map[string]string
	// Capacity is what the node reports as capacity and allocatable;
	// cpu 8, memory 16Gi, pods 110 when nil. Nothing enforces it.
	Capacity corev1.ResourceList
	// Images maps an image name to its filesystem; {"debian": HostImage()}
	// when nil. An image is found by its exact name, then by its name
	// without tag or digest. A container whose image is not here waits
	// with reason ErrImagePull and never starts.
	Images map[string]Image
	// Dir holds the pods' volumes and logs, and the node's log (node.log).
	// When empty, a new folder under os.TempDir() that is removed when the
	// node stops. Containers that run as another user than root must be
	// able to reach it: each folder up to it must be searchable by all
	// (TMPDIR=/dev/shm/XXXX with mode 1777, as CI sets it, is).
	Dir string
	// Bwrap is the bubblewrap program; "bwrap" from PATH when empty.
	Bwrap string
}

// Node is a test node: a virtual-kubelet whose provider runs containers as
// local bubblewrap sandboxes, its kubelet API on 127.0.0.1, and a binder
// that stands in for the scheduler.
//
// What the provider does: init containers one after another, each
// needing exit 0, then the containers in parallel (restartPolicy is
// taken as Never whatever it says); statuses waiting -> running ->
// terminated (exit code, reason Completed or Error, times; 128+n for a
// signal n) pushed as they change; phase Succeeded or Failed. Env from
// value, $(NAME) expansion, secretKeyRef, configMapKeyRef, a few fieldRefs,
// and envFrom secretRef/configMapRef, read through the API when the
// container starts (a missing one: waiting, CreateContainerConfigError,
// retried each second), and nothing else: no PATH unless given. workingDir,
// runAsUser/runAsGroup (pod or container), runAsNonRoot (uid 0 refused
// with CreateContainerConfigError), readOnlyRootFilesystem (the image is
// read-only anyway; it also drops the private /tmp). emptyDir volumes,
// subPath mounts, sizeLimit enforced every 250 ms by eviction (phase
// Failed, reason Evicted, the kubelet's message). activeDeadlineSeconds
// (phase Failed, reason DeadlineExceeded). Deletion: SIGTERM to every
// process of the running containers, SIGKILL half a second before the
// grace period ends (virtual-kubelet force-deletes the pod object when it
// ends), then the pod object is deleted with grace 0 as soon as the
// processes are gone. The host's network is shared.
//
// What it does not do: other volume types (the pod fails), memory and cpu
// limits, probes, restarts, image pulls (images are the map), exec,
// attach, port-forward, stats, log timestamps or previous logs, the
// scheduler's resource fit, taints and affinity. Deadline and eviction
// kill at once, without a grace period. While a pod is still in its init
// containers, virtual-kubelet 1.14 removes a deleted pod from the API at
// once (it deems the pod not running); the processes still get SIGTERM and
// then SIGKILL after the pod's terminationGracePeriodSeconds.
type Node struct {
	Name string

	prov    *provider
	cancel  context.CancelFunc
	vkDone  chan struct{}
	srv     *http.Server
	dir     string
	ownDir  bool
	logFile *os.File
	stopped sync.Once
}

// StartNode starts a node on c and stops it when the test ends, printing
// the tail of the node's log if the test failed.
func StartNode(t testing.TB, c *Cluster, opts NodeOptions) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := NewNode(ctx, c, opts)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(n.LogTail(60))
		}
		n.Stop()
	})
	return n
}

// NewNode registers a node with the cluster and waits until it is Ready.
// Stop ends it.
func NewNode(ctx context.Context, c *Cluster, opts NodeOptions) (*Node, error) {
	n := &Node{Name: opts.Name, dir: opts.Dir}
	if n.Name == "" {
		n.Name = "kubetest-node"
	}
	if n.dir == "" {
		dir, err := os.MkdirTemp("", "kubetest-node-")
		if err != nil {
			return nil, fmt.Errorf("create node folder: %w", err)
		}
		n.dir, n.ownDir = dir, true
	}
	os.Chmod(n.dir, 0o755) // containers running as other users reach their volumes through it
	if err := n.start(ctx, c, opts); err != nil {
		n.Stop()
		return nil, fmt.Errorf("start node %s: %w", n.Name, err)
	}
	return n, nil
}

func (n *Node) start(ctx context.Context, c *Cluster, opts NodeOptions) error {
	bwrap := opts.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	bwrapPath, err := exec.LookPath(bwrap)
	if err != nil {
		return fmt.Errorf("find bubblewrap (apt-get install bubblewrap): %w", err)
	}
	images := opts.Images
	if images == nil {
		images = map[string]Image{"debian": HostImage()}
	}
	logFile, err := os.OpenFile(filepath.Join(n.dir, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open node log: %w", err)
	}
	n.logFile = logFile
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", n.Name)

	cfg := c.Config()
	cfg.Dial = patientDial
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	runCtx, cancel := context.WithCancel(vklog.WithLogger(context.Background(), vkslog.FromSlog(logger)))
	n.cancel = cancel
	n.prov = &provider{
		node:   n.Name,
		client: client,
		images: images,
		dir:    n.dir,
		bwrap:  bwrapPath,
		log:    logger,
		ctx:    runCtx,
		pods:   map[string]*podRun{},
	}

	// The kubelet API: TLS with a certificate from the cluster's CA (the
	// API server checks it, --kubelet-certificate-authority), and only
	// clients with a certificate from that CA (the API server's
	// --kubelet-client-certificate) get in.
	cert, err := c.ca.tlsCert(n.Name)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the kubelet API: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.Handle("/", api.PodHandler(api.PodHandlerConfig{
		GetContainerLogs:   n.prov.GetContainerLogs,
		GetPods:            n.prov.GetPods,
		GetStatsSummary:    n.prov.GetStatsSummary,
		GetMetricsResource: n.prov.GetMetricsResource,
		RunInContainer:     n.prov.RunInContainer,
		AttachToContainer:  n.prov.AttachToContainer,
		PortForward:        n.prov.PortForward,
	}, false))
	n.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runCtx },
	}
	tlsLn := tls.NewListener(ln, &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.ca.pool(),
		MinVersion:   tls.VersionTLS12,
	})
	go n.srv.Serve(tlsLn)

	spec := n.nodeSpec(opts, port)
	vk, err := nodeutil.NewNode(n.Name,
		func(nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) { return n.prov, nil, nil },
		nodeutil.WithClient(client),
		func(cfg *nodeutil.NodeConfig) error {
			cfg.NodeSpec = spec
			cfg.HTTPListenAddr = "127.0.0.1:0" // unused: no TLSConfig, the server above serves
			cfg.SkipDownwardAPIResolution = true
			cfg.NumWorkers = 4
			return nil
		},
		// The library's default queues (10 a second, backing off per pod)
		// hold a pod's later status changes for seconds; a kubelet sends
		// them as they happen, and so does this node.
		nodeutil.WithPodControllerConfigOverrides(func(pc *node.PodControllerConfig) error {
			fast := func() workqueue.TypedRateLimiter[any] {
				return workqueue.NewTypedItemExponentialFailureRateLimiter[any](time.Millisecond, time.Second)
			}
			pc.SyncPodsFromKubernetesRateLimiter = fast()
			pc.DeletePodsFromKubernetesRateLimiter = fast()
			pc.SyncPodStatusFromProviderRateLimiter = fast()
			pc.PodClient = stopFirst{PodsGetter: pc.PodClient, prov: n.prov}
			return nil
		}),
	)
	if err != nil {
		return fmt.Errorf("virtual-kubelet: %w", err)
	}
	n.vkDone = make(chan struct{})
	go func() {
		defer close(n.vkDone)
		if err := vk.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("virtual-kubelet stopped", "err", err)
		}
	}()
	go n.bind(runCtx, client, spec.Labels, logger)
	if err := vk.WaitReady(ctx, time.Minute); err != nil {
		return fmt.Errorf("wait for the node to be ready: %w", err)
	}
	return nil
}

func (n *Node) nodeSpec(opts NodeOptions, port int) corev1.Node {
	labels := map[string]string{
		"type":                   "kubetest",
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/role":     "agent",
	}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	capacity := opts.Capacity
	if capacity == nil {
		capacity = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("16Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
	}
	cond := func(t corev1.NodeConditionType, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}
	}
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels},
		Status: corev1.NodeStatus{
			Phase:       corev1.NodePending,
			Capacity:    capacity,
			Allocatable: capacity,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: "linux", Architecture: "amd64",
				KubeletVersion: "v1.37.2-kubetest", ContainerRuntimeVersion: "bwrap://",
			},
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeReady, "KubeletNotReady"),
				cond(corev1.NodeMemoryPressure, "KubeletHasSufficientMemory"),
				cond(corev1.NodeDiskPressure, "KubeletHasNoDiskPressure"),
				cond(corev1.NodePIDPressure, "KubeletHasSufficientPID"),
			},
		},
	}
}

// bind stands in for kube-scheduler: it binds each pending pod that has no
// node and whose nodeSelector the node's labels satisfy, through the
// pods/binding subresource. A failed bind is tried again at the informer's
// next resync (2 s).
func (n *Node) bind(ctx context.Context, client kubernetes.Interface, labels map[string]string, logger *slog.Logger) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 2*time.Second,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" }))
	var inflight sync.Map
	try := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil ||
			(pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending) {
			return
		}
		for k, v := range pod.Spec.NodeSelector {
			if labels[k] != v {
				return
			}
		}
		if _, busy := inflight.LoadOrStore(pod.UID, true); busy {
			return
		}
		go func() {
			defer inflight.Delete(pod.UID)
			b := &corev1.Binding{
				ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
				Target:     corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name},
			}
			if err := client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
				logger.Info("bind pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
		}()
	}
	factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    try,
		UpdateFunc: func(_, obj any) { try(obj) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

// Stop kills every process the node runs, waits for them to end, and
// stops the node's controllers and kubelet API. The Node object stays in
// the API (NotReady once its lease runs out). Safe to call twice.
func (n *Node) Stop() {
	n.stopped.Do(func() {
		if n.prov != nil {
			n.prov.shutdown()
		}
		if n.cancel != nil {
			n.cancel()
		}
		if n.vkDone != nil {
			<-n.vkDone
		}
		if n.srv != nil {
			n.srv.Close()
		}
		if n.logFile != nil {
			n.logFile.Close()
		}
		// A pod the node did not get to remove may hold tmpfs volumes.
		pods, _ := filepath.Glob(filepath.Join(n.dir, "pods", "*"))
		for _, d := range pods {
			removePodDir(d)
		}
		if n.ownDir {
			os.RemoveAll(n.dir)
		}
	})
}

// Processes lists every process of the node's running containers.
func (n *Node) Processes() []Process { return n.prov.processes() }

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	p := filepath.Join(n.dir, "node.log")
	data, _ := os.ReadFile(p)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("--- last %d lines of %s:\n%s", len(all), p, strings.Join(all, "\n"))
}

// patientDial is the node's way to reach the API server: while nothing
// listens (Cluster.Stop), it keeps trying until the request's context ends,
// so that the node's informers and status updates go on as soon as the API
// server is back. With plain dials, client-go's reflectors back off for up
// to a minute after an outage of a few seconds; a test stopping the API
// server is about its own client, not about the node's patience.
func patientDial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	for {
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
