package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// provider is the node's virtual-kubelet provider: pods as bubblewrap
// sandboxes on this machine.
type provider struct {
	node   string
	client kubernetes.Interface
	images map[string]Image
	dir    string // pods/<uid>/ holds each pod's volumes and logs
	bwrap  string
	log    *slog.Logger
	ctx    context.Context // the node's life

	mu       sync.Mutex
	pods     map[string]*podRun // by namespace/name
	notify   func(*corev1.Pod)  // nil before NotifyPods and after shutdown
	shutting bool
	wg       sync.WaitGroup // one per podRun.run and per deletion
}

func podKey(namespace, name string) string { return namespace + "/" + name }

func (p *provider) lookup(namespace, name string) *podRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[podKey(namespace, name)]
}

// NotifyPods is how statuses reach the API server: the library queues each
// pod handed to cb and writes its status.
func (p *provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shutting {
		p.notify = cb
	}
}

func (p *provider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutting {
		return errors.New("node is stopping")
	}
	key := podKey(pod.Namespace, pod.Name)
	if _, ok := p.pods[key]; ok {
		return nil
	}
	pr := newPodRun(p, pod.DeepCopy())
	p.pods[key] = pr
	p.wg.Add(1)
	go pr.run()
	return nil
}

// UpdatePod takes what may change on a running pod that the provider
// uses: activeDeadlineSeconds, labels and annotations.
func (p *provider) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	pr := p.lookup(pod.Namespace, pod.Name)
	if pr == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	pr.mu.Lock()
	pr.pod.Spec.ActiveDeadlineSeconds = pod.Spec.ActiveDeadlineSeconds
	pr.pod.Spec.Tolerations = pod.Spec.Tolerations
	pr.pod.Labels = pod.Labels
	pr.pod.Annotations = pod.Annotations
	for i := range pr.pod.Spec.Containers {
		if i < len(pod.Spec.Containers) {
			pr.pod.Spec.Containers[i].Image = pod.Spec.Containers[i].Image
		}
	}
	for i := range pr.pod.Spec.InitContainers {
		if i < len(pod.Spec.InitContainers) {
			pr.pod.Spec.InitContainers[i].Image = pod.Spec.InitContainers[i].Image
		}
	}
	pr.mu.Unlock()
	return nil
}

// DeletePod stops the pod's processes (SIGTERM, then SIGKILL after the
// grace period; at once for grace 0) and, once they are gone and the final
// status is written, deletes the pod from the API with grace 0, as the
// kubelet does: virtual-kubelet 1.14 itself only force-deletes a running
// pod when its grace period has run out. It returns at once.
func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	pr := p.lookup(pod.Namespace, pod.Name)
	if pr == nil {
		return errdefs.NotFoundf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	} else if pr.pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pr.pod.Spec.TerminationGracePeriodSeconds
	}
	pr.stop(stopReason{grace: time.Duration(grace) * time.Second})
	// A kubelet removes a pod from the API only once its processes are
	// gone, so this returns only then: virtual-kubelet may delete the pod
	// object as soon as it returns.
	select {
	case <-pr.done:
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
	pr.deleteOnce.Do(func() {
		p.mu.Lock()
		if p.shutting {
			p.mu.Unlock()
			return
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.finishDelete(pr)
	})
	return nil
}

// finishDelete waits for the pod's processes to end, lets its final status
// reach the API server, deletes the pod object and forgets the pod.
func (p *provider) finishDelete(pr *podRun) {
	defer p.wg.Done()
	select {
	case <-pr.done:
	case <-p.ctx.Done():
		return
	}
	pods := p.client.CoreV1().Pods(pr.pod.Namespace)
	for range 50 { // at most 5 s for the library to write the final status
		got, err := pods.Get(p.ctx, pr.pod.Name, metav1.GetOptions{})
		if err != nil || got.UID != pr.pod.UID || got.Status.Phase == corev1.PodFailed || got.Status.Phase == corev1.PodSucceeded {
			break
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	opts := *metav1.NewDeleteOptions(0)
	opts.Preconditions = metav1.NewUIDPreconditions(string(pr.pod.UID))
	if err := pods.Delete(p.ctx, pr.pod.Name, opts); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.log.Warn("final delete of pod", "pod", pr.key, "err", err)
	}
	p.mu.Lock()
	if p.pods[pr.key] == pr {
		delete(p.pods, pr.key)
	}
	p.mu.Unlock()
	removePodDir(pr.dir)
}

func (p *provider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	pr := p.lookup(namespace, name)
	if pr == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, name)
	}
	return pr.snapshot(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, pr := range p.pods {
		runs = append(runs, pr)
	}
	p.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(runs))
	for _, pr := range runs {
		pods = append(pods, pr.snapshot())
	}
	return pods, nil
}

// GetContainerLogs serves a container's output (stdout and stderr in one
// file, interleaved as written). With Follow it streams until the
// container has ended and everything it wrote was sent. Tail and
// LimitBytes are honoured; Timestamps, Previous and Since* are not.
func (p *provider) GetContainerLogs(ctx context.Context, namespace, podName, containerName string, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	pr := p.lookup(namespace, podName)
	if pr == nil {
		return nil, errdefs.NotFoundf("pod %s/%s is not on this node", namespace, podName)
	}
	pr.mu.Lock()
	cl, ok := pr.logs[containerName]
	known := pr.containerSpec(containerName) != nil
	var waiting string
	if st := pr.status(containerName); st != nil && st.State.Waiting != nil {
		waiting = st.State.Waiting.Reason
	}
	pr.mu.Unlock()
	if !known {
		return nil, errdefs.InvalidInputf("container %s is not valid for pod %s", containerName, podName)
	}
	if !ok {
		return nil, errdefs.InvalidInputf("container %q in pod %q is waiting to start: %s", containerName, podName, waiting)
	}
	return openLog(ctx, p.ctx, cl, opts)
}

func (p *provider) RunInContainer(context.Context, string, string, string, []string, api.AttachIO) error {
	return errors.New("kubetest node: exec is not supported")
}

func (p *provider) AttachToContainer(context.Context, string, string, string, api.AttachIO) error {
	return errors.New("kubetest node: attach is not supported")
}

func (p *provider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return errors.New("kubetest node: port-forward is not supported")
}

func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.node}}, nil
}

func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// shutdown kills every pod at once and waits for their processes to end.
func (p *provider) shutdown() {
	p.mu.Lock()
	p.shutting = true
	p.notify = nil
	runs := make([]*podRun, 0, len(p.pods))
	for _, pr := range p.pods {
		runs = append(runs, pr)
	}
	p.mu.Unlock()
	for _, pr := range runs {
		pr.stop(stopReason{reason: "NodeStopped", message: "the kubetest node stopped"})
	}
	p.wg.Wait()
}

// Process is one process that a container of the node runs.
type Process struct {
	Namespace, Pod, Container string
	PID                       int // as the host sees it
}

// processes lists the processes of every running container, sandbox init
// included.
func (p *provider) processes() []Process {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, pr := range p.pods {
		runs = append(runs, pr)
	}
	p.mu.Unlock()
	var out []Process
	for _, pr := range runs {
		pr.mu.Lock()
		procs := make([]*sandbox, 0, len(pr.running))
		for _, s := range pr.running {
			procs = append(procs, s)
		}
		pr.mu.Unlock()
		for _, s := range procs {
			for _, pid := range s.pids() {
				out = append(out, Process{Namespace: pr.pod.Namespace, Pod: pr.pod.Name, Container: s.container, PID: pid})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// podDir is where a pod's volumes and logs live.
func (p *provider) podDir(pod *corev1.Pod) string {
	return filepath.Join(p.dir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}
