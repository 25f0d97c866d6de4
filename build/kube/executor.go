package kube

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"slipway/build/executor"
	"slipway/build/kube/transfer"
)

// Labels on everything the executor makes.
const (
	LabelBuild     = "slipway.build"
	LabelInstance  = "slipway.instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// Where a job's folders appear in its Pod.
const (
	workspacePath = "/workspace"
	homePath      = "/home/slipway"
	tmpPath       = "/tmp"
)

// Options configure an Executor.
type Options struct {
	// Client talks to the cluster's API server.
	Client kubernetes.Interface
	// Namespace is where the build Pods and their Secrets are made.
	Namespace string
	// Instance tells this daemon's Pods from another's in the same
	// namespace (the slipway.instance label); the orphan sweep touches
	// only its own.
	Instance string
	// Image is the steps' image when the job names none; HelperImage runs
	// slipway-helper (transfer.HelperPath) to fetch the source and send
	// the artifacts.
	Image, HelperImage string
	// Transfer is this daemon's transfer endpoint and TransferURL where
	// the Pods reach it.
	Transfer    *transfer.Transfer
	TransferURL string
	// ServiceAccount is the Pods' service account; its token is mounted
	// only when MountToken is set.
	ServiceAccount string
	MountToken     bool
	// NodeSelector and Tolerations place the Pods.
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// Requests and Limits are every step container's resources; a job's
	// Limits.Memory, when set, is its memory limit.
	Requests, Limits corev1.ResourceList
	// RunAsUser and RunAsGroup are the ids every container runs as; the
	// Pods run as non-root, so RunAsUser must not be 0. Default 65532.
	RunAsUser, RunAsGroup int64
	// WritableRoot leaves the containers' root filesystems writable; by
	// default they are read-only and only the workspace, the home and
	// /tmp can be written.
	WritableRoot bool
	// MaxConcurrent caps the Pods of this executor at once; 0: no cap.
	MaxConcurrent int
	// GracePeriod is how long a cancelled build's processes get between
	// SIGTERM and SIGKILL. Default 10s.
	GracePeriod time.Duration
	// APIGrace is how long a running build waits for an API server that
	// stopped answering before it ends as an error. Default 60s.
	APIGrace time.Duration
	// TempDir is the host folder artifacts are unpacked in.
	TempDir string
	// Log hears about what the build logs do not show.
	Log *slog.Logger
}

// Executor runs each job as one Pod: an init container fetches the source
// into the Pod's workspace, one init container per step runs `sh -c
// <step>` in order (so a step that fails stops the Pod, and each step's
// exit code is its container's), and the last container sends the
// artifacts back. It implements executor.Executor.
type Executor struct {
	o     Options
	slots chan struct{}
	// ready asks the API server whether it is ready to serve (/readyz);
	// nil for a client that cannot ask (a fake), taken as ready.
	ready func(context.Context) error

	mu   sync.Mutex
	live map[string]bool // names of the Pods and Secrets of running jobs
	// left counts the jobs whose Pod or Secret could not be removed since
	// the last sweep that succeeded.
	left int
}

var _ executor.Executor = (*Executor)(nil)

// New returns an executor with o's settings, defaults filled in.
func New(o Options) (*Executor, error) {
	if o.Client == nil || o.Transfer == nil || o.TransferURL == "" || o.HelperImage == "" || o.Image == "" {
		return nil, errors.New("kube: Client, Transfer, TransferURL, Image and HelperImage are required")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.RunAsUser == 0 {
		o.RunAsUser = 65532
	}
	if o.RunAsGroup == 0 {
		o.RunAsGroup = o.RunAsUser
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = 10 * time.Second
	}
	if o.APIGrace <= 0 {
		o.APIGrace = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	e := &Executor{o: o, live: map[string]bool{}, ready: readyz(o.Client)}
	if o.MaxConcurrent > 0 {
		e.slots = make(chan struct{}, o.MaxConcurrent)
	}
	return e, nil
}

// Layout implements executor.Executor: the same paths in every Pod.
func (e *Executor) Layout(job executor.Job) executor.Layout {
	return executor.Layout{Workspace: workspacePath, Home: homePath, Tmp: tmpPath}
}

// Unenforced implements executor.Executor. A Pod spec has no per-process
// limits; the memory limit and the sizes of /tmp and the workspace are the
// cluster's to enforce (a container's memory limit, a memory-backed
// emptyDir's size, eviction of a Pod whose emptyDir passes its size).
func (e *Executor) Unenforced(job executor.Job) []string {
	var u []string
	if job.Limits.Procs > 0 {
		u = append(u, executor.LimitProcesses+": a Pod spec has no process limit (the node's pids limit applies)")
	}
	if job.Limits.FileSize > 0 {
		u = append(u, executor.LimitFileSize+": a Pod spec has no file size limit")
	}
	if job.Limits.Files > 0 {
		u = append(u, executor.LimitOpenFiles+": a Pod spec has no open-files limit (the container runtime's applies)")
	}
	if !job.Network {
		u = append(u, executor.Network+": Pods share the cluster's network (a NetworkPolicy of the namespace can close it)")
	}
	if job.Cache != "" {
		u = append(u, "cache: builds on Kubernetes keep no cache between builds")
	}
	return u
}

// errJobTimeout is the cause of a job's context ending at Job.Timeout.
var errJobTimeout = errors.New("the job's timeout ran out")

// MaxConcurrent is the cap on this executor's Pods at once (0: none). The
// build service claims no more of its builds than that, so a build over
// the cap waits in the queue; Run's own slots enforce it whoever calls.
func (e *Executor) MaxConcurrent() int { return cap(e.slots) }

// Run implements executor.Executor.
func (e *Executor) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	if err := checkWorkspace(job.Workspace); err != nil {
		return executor.Result{}, err
	}
	if len(job.Artifacts) > 0 && job.ArtifactsDir == "" {
		return executor.Result{}, errors.New("artifacts asked for without an artifacts folder")
	}
	if e.slots != nil {
		select {
		case e.slots <- struct{}{}:
			defer func() { <-e.slots }()
		case <-ctx.Done():
			return executor.Result{}, nil
		}
	}
	r := &podRun{e: e, job: job, name: podName(job.ID), log: job.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	defer r.cleanup()
	return r.run(ctx)
}

func checkWorkspace(ws string) error {
	if ws == "" || !filepath.IsAbs(ws) {
		return fmt.Errorf("workspace %q: not an absolute path", ws)
	}
	fi, err := os.Stat(ws)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("workspace %s: not a folder", ws)
	}
	return nil
}

// podName is a new Pod's name: the build's id and a random tail, so that a
// retried build, or one a restarted daemon runs again, never meets the
// name of its earlier Pod.
func podName(id string) string {
	tail := strings.ToLower(rand.Text()[:6])
	if id == "" {
		return "slipway-job-" + tail
	}
	return "slipway-build-" + id + "-" + tail
}

// Unavailable reports whether err says the API server could not be
// reached or could not serve now, as opposed to refusing the request.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return apierrors.IsServiceUnavailable(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsInternalError(err)
}

// readyz returns a GET of the API server's /readyz through c, or nil when
// c has no REST client to send it with.
func readyz(c kubernetes.Interface) func(context.Context) error {
	rc, ok := c.Discovery().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil {
		return nil
	}
	return func(ctx context.Context) error {
		_, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}
}

// notReady says why the API server is not ready to serve, nil when it is
// (or cannot be asked). It waits at most 5 s for the answer.
func (e *Executor) notReady(ctx context.Context) error {
	if e.ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return e.ready(ctx)
}

// quantity is n bytes as a resource quantity.
func quantity(n int64) *resource.Quantity {
	return resource.NewQuantity(n, resource.BinarySI)
}

func (e *Executor) track(names ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		e.live[n] = true
	}
}

func (e *Executor) untrack(names ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range names {
		delete(e.live, n)
	}
}

func (e *Executor) isLive(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[name]
}

// Leftovers reports whether some job's Pod or Secret could not be removed
// (the API server was away) and no sweep has succeeded since: the daemon
// then sweeps soon instead of at its usual period.
func (e *Executor) Leftovers() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.left > 0
}
