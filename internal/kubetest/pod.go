package kubetest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podRun is one pod on the node: its spec, the status the provider
// reports, and the sandboxes of its running containers.
type podRun struct {
	p    *provider
	key  string
	dir  string
	done chan struct{} // closed when run has returned: no process left, final status set

	stopped    chan struct{} // closed by the first stop
	stopOnce   sync.Once
	deleteOnce sync.Once
	notifyMu   sync.Mutex // orders status notifications

	mu      sync.Mutex
	pod     *corev1.Pod // spec as created, status as reported
	why     *stopReason // set by stop
	stopAt  time.Time
	running map[string]*sandbox      // by container name
	logs    map[string]*containerLog // containers that have started
}

// stopReason is why a pod's processes are killed before they end.
type stopReason struct {
	reason, message string        // the pod's status reason and message (none for a deletion)
	grace           time.Duration // SIGTERM, then SIGKILL after grace
}

func newPodRun(p *provider, pod *corev1.Pod) *podRun {
	return &podRun{
		p:       p,
		key:     podKey(pod.Namespace, pod.Name),
		dir:     p.podDir(pod),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
		pod:     pod,
		running: map[string]*sandbox{},
		logs:    map[string]*containerLog{},
	}
}

func (pr *podRun) snapshot() *corev1.Pod {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.pod.DeepCopy()
}

// publish hands the current pod to the library, which writes its status
// to the API server. Notifications are made one at a time so that an older
// status never overtakes a newer one.
func (pr *podRun) publish() {
	pr.notifyMu.Lock()
	defer pr.notifyMu.Unlock()
	pod := pr.snapshot()
	pr.p.mu.Lock()
	notify := pr.p.notify
	pr.p.mu.Unlock()
	if notify != nil {
		notify(pod)
	}
}

// containerSpec and status find a container (init or not) by name; the
// caller holds pr.mu.
func (pr *podRun) containerSpec(name string) *corev1.Container {
	return named(name, func(c *corev1.Container) string { return c.Name },
		pr.pod.Spec.InitContainers, pr.pod.Spec.Containers)
}

func (pr *podRun) status(name string) *corev1.ContainerStatus {
	return named(name, func(s *corev1.ContainerStatus) string { return s.Name },
		pr.pod.Status.InitContainerStatuses, pr.pod.Status.ContainerStatuses)
}

// named returns the first element of lists whose name is name, or nil.
func named[T any](name string, nameOf func(*T) string, lists ...[]T) *T {
	for _, list := range lists {
		for i := range list {
			if nameOf(&list[i]) == name {
				return &list[i]
			}
		}
	}
	return nil
}

// setContainer changes a container's status and publishes the pod.
func (pr *podRun) setContainer(name string, change func(*corev1.ContainerStatus)) {
	pr.mu.Lock()
	if st := pr.status(name); st != nil {
		change(st)
	}
	pr.mu.Unlock()
	pr.publish()
}

func (pr *podRun) setWaiting(name, reason, message string) {
	pr.setContainer(name, func(st *corev1.ContainerStatus) {
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	})
}

func (pr *podRun) setCondition(t corev1.PodConditionType, status corev1.ConditionStatus, reason string) {
	now := metav1.Now()
	for i := range pr.pod.Status.Conditions {
		c := &pr.pod.Status.Conditions[i]
		if c.Type == t {
			if c.Status != status {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason = status, reason
			return
		}
	}
	pr.pod.Status.Conditions = append(pr.pod.Status.Conditions,
		corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
}

// stop kills the pod: no container starts any more, running ones get
// SIGTERM and, after the grace period, SIGKILL. The first reason given is
// the one reported; a later, shorter grace period wins, as with the
// kubelet.
func (pr *podRun) stop(why stopReason) {
	pr.mu.Lock()
	first := pr.why == nil
	if first {
		pr.why = &why
		pr.stopAt = time.Now()
	} else if why.grace < pr.why.grace {
		pr.why.grace = why.grace
	}
	pr.mu.Unlock()
	if first {
		pr.stopOnce.Do(func() {
			close(pr.stopped)
			go pr.reap()
		})
	}
}

// killAt is when, after a stop with grace period grace, the survivors get
// SIGKILL: half a second before the grace period ends, because
// virtual-kubelet force-deletes the pod object when it ends, and a pod that
// is gone from the API should have no process left.
func killAt(grace time.Duration) time.Duration {
	if grace >= time.Second {
		return grace - 500*time.Millisecond
	}
	return grace
}

// reap signals the running sandboxes until they are all gone.
func (pr *podRun) reap() {
	termed := map[*sandbox]bool{}
	for {
		pr.mu.Lock()
		deadline := pr.stopAt.Add(killAt(pr.why.grace))
		boxes := make([]*sandbox, 0, len(pr.running))
		for _, s := range pr.running {
			boxes = append(boxes, s)
		}
		pr.mu.Unlock()
		select {
		case <-pr.done:
			return
		default:
		}
		for _, s := range boxes {
			if !time.Now().Before(deadline) {
				s.kill()
			} else if !termed[s] {
				termed[s] = true
				s.signalAll(syscall.SIGTERM)
			}
		}
		select {
		case <-pr.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run carries the pod from Pending to Succeeded or Failed.
func (pr *podRun) run() {
	defer pr.p.wg.Done()
	defer close(pr.done)
	pr.start()
	finished := make(chan struct{})
	defer close(finished)
	go pr.watch(finished)

	ok := pr.prepareVolumes()
	failed := !ok
	if ok {
		for _, c := range pr.pod.Spec.InitContainers {
			code, ran := pr.runContainer(c)
			if !ran || code != 0 {
				failed = true
				break
			}
		}
	}
	if !failed {
		pr.mu.Lock()
		pr.setCondition(corev1.PodInitialized, corev1.ConditionTrue, "")
		pr.mu.Unlock()
		pr.publish()
		var wg sync.WaitGroup
		codes := make([]int32, len(pr.pod.Spec.Containers))
		rans := make([]bool, len(pr.pod.Spec.Containers))
		for i, c := range pr.pod.Spec.Containers {
			wg.Go(func() { codes[i], rans[i] = pr.runContainer(c) })
		}
		wg.Wait()
		for i := range codes {
			if !rans[i] || codes[i] != 0 {
				failed = true
			}
		}
	}
	pr.finish(failed)
}

// start writes the pod's first status: scheduled here, every container
// waiting.
func (pr *podRun) start() {
	pr.mu.Lock()
	now := metav1.Now()
	st := &pr.pod.Status
	st.Phase = corev1.PodPending
	st.HostIP, st.PodIP = "127.0.0.1", "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	st.StartTime = &now
	st.Conditions = nil
	pr.setCondition(corev1.PodScheduled, corev1.ConditionTrue, "")
	pr.setCondition(corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized")
	pr.setCondition(corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady")
	pr.setCondition(corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady")
	waiting := func(c corev1.Container) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "kubetest://" + c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}}
	}
	st.InitContainerStatuses, st.ContainerStatuses = nil, nil
	for _, c := range pr.pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, waiting(c))
	}
	for _, c := range pr.pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, waiting(c))
	}
	pr.mu.Unlock()
	pr.publish()
}

// finish writes the pod's terminal status.
func (pr *podRun) finish(failed bool) {
	pr.mu.Lock()
	st := &pr.pod.Status
	st.Phase = corev1.PodSucceeded
	if failed || pr.why != nil {
		st.Phase = corev1.PodFailed
	}
	if pr.why != nil {
		st.Reason, st.Message = pr.why.reason, pr.why.message
	}
	pr.setCondition(corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted")
	pr.setCondition(corev1.PodReady, corev1.ConditionFalse, "PodCompleted")
	for i := range st.ContainerStatuses {
		st.ContainerStatuses[i].Ready = false
	}
	pr.mu.Unlock()
	pr.publish()
}

// prepareVolumes makes a folder per emptyDir volume. Any other kind of
// volume fails the pod.
func (pr *podRun) prepareVolumes() bool {
	if err := os.MkdirAll(filepath.Join(pr.dir, "logs"), 0o755); err != nil {
		pr.failAll("CreateContainerConfigError", fmt.Sprintf("create pod folder: %v", err))
		return false
	}
	os.Chmod(pr.dir, 0o755)
	for _, v := range pr.pod.Spec.Volumes {
		if v.EmptyDir == nil {
			pr.failAll("CreateContainerConfigError", fmt.Sprintf("kubetest node: volume %q: only emptyDir volumes are supported", v.Name))
			return false
		}
		dir := filepath.Join(pr.dir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			pr.failAll("CreateContainerConfigError", fmt.Sprintf("create volume %q: %v", v.Name, err))
			return false
		}
		// As the kubelet makes them: writable by any user the pod runs as.
		os.Chmod(filepath.Dir(dir), 0o755)
		os.Chmod(dir, 0o777)
		if sizedTmpfs(v) {
			// As the kubelet mounts a memory emptyDir with a sizeLimit: a
			// tmpfs of that size, where a write past it fails with "no
			// space left on device".
			opts := fmt.Sprintf("size=%d,mode=1777", v.EmptyDir.SizeLimit.Value())
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				pr.failAll("CreateContainerConfigError", fmt.Sprintf("mount volume %q: %v", v.Name, err))
				return false
			}
		}
	}
	return true
}

// sizedTmpfs reports whether the node mounts volume v as a tmpfs of its
// sizeLimit: a memory emptyDir with one, when the node runs as root (only
// root may mount; otherwise the limit is enforced by eviction).
func sizedTmpfs(v corev1.Volume) bool {
	return v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory &&
		v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() && os.Geteuid() == 0
}

// removePodDir unmounts the tmpfs volumes under a pod's folder and removes
// it.
func removePodDir(dir string) {
	entries, _ := os.ReadDir(filepath.Join(dir, "volumes"))
	for _, e := range entries {
		_ = unix.Unmount(filepath.Join(dir, "volumes", e.Name()), unix.MNT_DETACH)
	}
	os.RemoveAll(dir)
}

// failAll sets every container waiting with reason and ends the pod as
// Failed.
func (pr *podRun) failAll(reason, message string) {
	pr.mu.Lock()
	for _, list := range [][]corev1.ContainerStatus{pr.pod.Status.InitContainerStatuses, pr.pod.Status.ContainerStatuses} {
		for i := range list {
			list[i].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
		}
	}
	pr.pod.Status.Message = message
	pr.mu.Unlock()
}

// watch enforces activeDeadlineSeconds and emptyDir sizeLimits, checking
// every 250 ms until finished is closed.
func (pr *podRun) watch(finished <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return
		case <-pr.stopped:
			return
		case <-tick.C:
		}
		pr.mu.Lock()
		deadline := pr.pod.Spec.ActiveDeadlineSeconds
		started := pr.pod.Status.StartTime
		pr.mu.Unlock()
		if deadline != nil && started != nil && time.Since(started.Time) >= time.Duration(*deadline)*time.Second {
			pr.stop(stopReason{reason: "DeadlineExceeded", message: "Pod was active on the node longer than the specified deadline"})
			return
		}
		for _, v := range pr.pod.Spec.Volumes {
			if v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.IsZero() || sizedTmpfs(v) {
				continue
			}
			used := diskUsage(filepath.Join(pr.dir, "volumes", v.Name))
			if used > v.EmptyDir.SizeLimit.Value() {
				// The kubelet's message (pkg/kubelet/eviction), trailing space included.
				msg := fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", v.Name, v.EmptyDir.SizeLimit.String())
				pr.stop(stopReason{reason: "Evicted", message: msg})
				return
			}
		}
	}
}

// diskUsage is the space the files under dir take, counted in blocks as du
// does (the kubelet's measure), each inode once.
func diskUsage(dir string) int64 {
	var total int64
	seen := map[uint64]bool{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// waitStopped blocks until the pod is stopped or the node ends.
func (pr *podRun) waitStopped(d time.Duration) bool {
	var after <-chan time.Time
	if d > 0 {
		after = time.After(d)
	}
	select {
	case <-pr.stopped:
		return true
	case <-pr.p.ctx.Done():
		return true
	case <-after:
		return false
	}
}

// runContainer runs one container to its end. ran is false when it never
// started (the pod was stopped first, or it could not be set up).
func (pr *podRun) runContainer(c corev1.Container) (code int32, ran bool) {
	var spec sandboxSpec
	for {
		select {
		case <-pr.stopped:
			return 0, false
		default:
		}
		var problem *setupError
		spec, problem = pr.setUp(c)
		if problem == nil {
			break
		}
		pr.setWaiting(c.Name, problem.reason, problem.message)
		// A missing Secret may appear: retry like the kubelet's pod sync.
		// An unknown image or a refused user will not change.
		retry := time.Duration(0)
		if problem.retry {
			retry = time.Second
		}
		if pr.waitStopped(retry) {
			return 0, false
		}
	}
	logPath := filepath.Join(pr.dir, "logs", c.Name+".log")
	cl := &containerLog{path: logPath, exited: make(chan struct{})}
	pr.mu.Lock()
	if pr.why != nil {
		pr.mu.Unlock()
		return 0, false
	}
	pr.logs[c.Name] = cl
	pr.mu.Unlock()
	s, err := startSandbox(pr.p.bwrap, logPath, c.Name, spec)
	if err != nil {
		close(cl.exited)
		now := metav1.Now()
		pr.setContainer(c.Name, func(st *corev1.ContainerStatus) {
			st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 128, Reason: "StartError", Message: err.Error(), StartedAt: now, FinishedAt: now}}
		})
		return 128, true
	}
	started := metav1.NewTime(s.started)
	pr.mu.Lock()
	pr.running[c.Name] = s
	stoppedMeanwhile := pr.why != nil
	pr.mu.Unlock()
	if stoppedMeanwhile {
		s.signalAll(syscall.SIGTERM) // reap sends the SIGKILL when due
	}
	isInit := pr.isInit(c.Name)
	t := true
	pr.setContainer(c.Name, func(st *corev1.ContainerStatus) {
		st.ContainerID = "kubetest://" + string(pr.pod.UID) + "/" + c.Name
		st.Started = &t
		st.Ready = !isInit
		st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
	})
	code = s.wait()
	close(cl.exited)
	pr.mu.Lock()
	delete(pr.running, c.Name)
	pr.mu.Unlock()
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	f := false
	pr.setContainer(c.Name, func(st *corev1.ContainerStatus) {
		st.Ready = false
		st.Started = &f
		st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: metav1.NewTime(s.finished),
			ContainerID: "kubetest://" + string(pr.pod.UID) + "/" + c.Name}}
	})
	return code, true
}

func (pr *podRun) isInit(name string) bool {
	for _, c := range pr.pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// ctx is the context for the API calls a pod makes (Secret reads).
func (pr *podRun) ctx() context.Context { return pr.p.ctx }
