package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"slipway/build/executor"
	"slipway/build/kube/transfer"
)

// podRun is one job's Pod from creation to removal.
type podRun struct {
	e    *Executor
	job  executor.Job
	name string // of the Pod and of its Secret
	log  io.Writer
	tj   *transfer.Job
	w    *podWatch
	// artifactsDir is where the upload is unpacked, "" without artifacts.
	artifactsDir string
	made         bool // the Secret or the Pod may exist
	res          executor.Result
}

// imageFailures are the reasons of a waiting container that will not start
// by waiting longer.
var imageFailures = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true,
}

func (r *podRun) run(ctx context.Context) (executor.Result, error) {
	e, job := r.e, r.job
	dir := ""
	if len(job.Artifacts) > 0 {
		var err error
		if dir, err = os.MkdirTemp(e.o.TempDir, "artifacts-"); err != nil {
			return r.res, fmt.Errorf("make artifacts folder: %w", err)
		}
		r.artifactsDir = dir
	}
	tj, err := e.o.Transfer.Open(job.Workspace, dir, job.MaxArtifactBytes)
	if err != nil {
		return r.res, err
	}
	r.tj = tj
	token := tj.Token

	e.track(r.name)
	r.made = true
	secrets := e.o.Client.CoreV1().Secrets(e.o.Namespace)
	if _, err := secrets.Create(ctx, e.secret(job, r.name, token), metav1.CreateOptions{}); err != nil {
		return r.res, r.createError(ctx, "secret", err)
	}
	pods := e.o.Client.CoreV1().Pods(e.o.Namespace)
	if _, err := pods.Create(ctx, e.pod(job, r.name), metav1.CreateOptions{}); err != nil {
		return r.res, r.createError(ctx, "pod", err)
	}
	r.w = e.watch(r.name)

	if err := r.fetched(ctx); err != nil || ctx.Err() != nil {
		return r.res, err
	}
	if job.Placed != nil {
		node := "(none)"
		if p := r.w.latest(); p != nil {
			node = p.Spec.NodeName
		}
		job.Placed(fmt.Sprintf("kubernetes: pod %s on node %s (namespace %s)", r.name, node, e.o.Namespace))
	}
	// Job.Timeout bounds the steps, from the first one's start: the time
	// the cluster takes to schedule the Pod and fetch the source is the
	// build's (its own deadline, in ctx), not the steps'.
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, job.Timeout, errJobTimeout)
		defer cancel()
	}
	for i := range job.Steps {
		stop, err := r.step(ctx, i)
		if err != nil || stop {
			return r.res, err
		}
	}
	return r.res, r.artifacts(ctx)
}

func (r *podRun) createError(ctx context.Context, what string, err error) error {
	if Unavailable(err) {
		return &executor.UnavailableError{Err: fmt.Errorf("the Kubernetes API server cannot be reached: %w", err)}
	}
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		// An API server that is starting serves before its authorizer has
		// loaded the roles, and refuses what they allow: not the build's
		// fault. One that says it is ready means the refusal.
		if why := r.e.notReady(ctx); why != nil {
			return &executor.UnavailableError{Err: fmt.Errorf("the Kubernetes API server is not ready (%v): %w", why, err)}
		}
	}
	return fmt.Errorf("create the build's %s: %w", what, err)
}

// fetched waits for the fetch container to have unpacked the source.
func (r *podRun) fetched(ctx context.Context) error {
	pod, err := r.w.wait(ctx, r.e.o.APIGrace, func(p *corev1.Pod) bool {
		s := containerStatus(p, fetchContainer)
		return terminal(p) || (s != nil && s.State.Terminated != nil) || imageFailures[reason(s)]
	})
	if err != nil || ctx.Err() != nil {
		return err
	}
	s := containerStatus(pod, fetchContainer)
	if s == nil || s.State.Terminated == nil {
		return fmt.Errorf("fetch the source into the pod: %s", r.podProblem(pod, s))
	}
	if t := s.State.Terminated; t.ExitCode != 0 {
		return fmt.Errorf("fetch the source into the pod: exit %d: %s", t.ExitCode, r.tail(ctx, fetchContainer))
	}
	return nil
}

// step runs step i: waits for its container to start, streams its output,
// and waits for its end. stop says the job ends here.
func (r *podRun) step(ctx context.Context, i int) (stop bool, err error) {
	job, name := r.job, stepContainer(i)
	pod, err := r.w.wait(ctx, r.e.o.APIGrace, func(p *corev1.Pod) bool {
		s := containerStatus(p, name)
		return terminal(p) || (s != nil && (s.State.Running != nil || s.State.Terminated != nil)) || imageFailures[reason(s)]
	})
	if err != nil {
		return true, err
	}
	if ctx.Err() != nil {
		return true, nil // stopped before the step began
	}
	s := containerStatus(pod, name)
	if s == nil || (s.State.Running == nil && s.State.Terminated == nil) {
		if pod != nil && pod.Status.Reason == "DeadlineExceeded" {
			return true, nil
		}
		return true, &executor.StepError{Step: i, Err: errors.New(r.podProblem(pod, s))}
	}
	start := time.Now()
	if job.StepStarted != nil {
		job.StepStarted(i)
	}
	result := executor.StepResult{ExitCode: -1, Unenforced: r.e.Unenforced(job)}
	end := func(stop bool, err error) (bool, error) {
		result.Duration = time.Since(start)
		r.res.Steps = append(r.res.Steps, result)
		if job.StepEnded != nil {
			job.StepEnded(i, result)
		}
		return stop, err
	}
	ferr := r.follow(ctx, name)
	if ctx.Err() != nil {
		result.TimedOut = errors.Is(context.Cause(ctx), errJobTimeout)
		result.Cancelled = !result.TimedOut
		return end(true, nil)
	}
	if ferr != nil {
		return end(true, &executor.StepError{Step: i, Err: ferr})
	}
	pod, err = r.w.wait(ctx, r.e.o.APIGrace, func(p *corev1.Pod) bool {
		s := containerStatus(p, name)
		return terminal(p) || (s != nil && s.State.Terminated != nil)
	})
	if ctx.Err() != nil {
		result.TimedOut = errors.Is(context.Cause(ctx), errJobTimeout)
		result.Cancelled = !result.TimedOut
		return end(true, nil)
	}
	if err != nil {
		return end(true, &executor.StepError{Step: i, Err: err})
	}
	if t := terminated(pod, name); t != nil && t.ExitCode == 0 {
		result.ExitCode = 0
		return end(false, nil)
	}
	// The step failed, or the Pod was stopped under it: the Pod's phase
	// says which, once the kubelet has set it.
	pod, _ = r.w.wait(ctx, 10*time.Second, terminal)
	switch {
	case pod != nil && pod.Status.Reason == "Evicted" && strings.Contains(pod.Status.Message, `"`+workVolume+`"`):
		result.WorkspaceFull = true
		result.WorkspaceUsed = job.Limits.Workspace // at least; the cluster does not say how much
	case pod != nil && pod.Status.Reason == "DeadlineExceeded":
		result.TimedOut = true
	default:
		t := terminated(pod, name)
		if t == nil {
			return end(true, &executor.StepError{Step: i, Err: errors.New(r.podProblem(pod, containerStatus(pod, name)))})
		}
		result.ExitCode = int(t.ExitCode)
		result.OutOfMemory = t.Reason == "OOMKilled"
	}
	return end(true, nil)
}

// artifacts waits for the upload container's report and keeps the
// artifacts by executor.CopyArtifacts's rules, applied again on this host.
func (r *podRun) artifacts(ctx context.Context) error {
	job := r.job
	select {
	case <-r.tj.Done():
	case <-ctx.Done():
		return nil
	case <-r.w.until(terminal):
		// The upload container ended: its report is in, or it failed.
		select {
		case <-r.tj.Done():
		case <-time.After(5 * time.Second):
			pod := r.w.latest()
			return fmt.Errorf("send the artifacts from the pod: %s", r.podProblem(pod, containerStatus(pod, uploadContainer)))
		}
	}
	rep := r.tj.Report()
	switch {
	case rep.Failed != nil:
		return fmt.Errorf("receive the artifacts: %w", rep.Failed)
	case len(job.Artifacts) == 0:
		return nil
	case rep.Err != "" && rep.Size > 0:
		r.res.ArtifactsErr = &executor.ArtifactsTooLargeError{Size: rep.Size, Max: job.MaxArtifactBytes}
	case rep.Err != "":
		r.res.ArtifactsErr = errors.New(rep.Err)
	default:
		n, err := executor.CopyArtifacts(r.artifactsDir, job.ArtifactsDir, job.Artifacts, job.MaxArtifactBytes)
		r.res.Artifacts, r.res.ArtifactsErr = n, err
	}
	if r.res.ArtifactsErr != nil {
		r.res.Artifacts = 0
		if err := os.RemoveAll(job.ArtifactsDir); err != nil {
			return fmt.Errorf("remove refused artifacts: %w", err)
		}
	}
	return nil
}

// follow copies container c's output to the job's log from its start to
// its end. A stream that breaks before the container ended (the API server
// restarted, say) is opened again, and what was copied already is skipped.
func (r *podRun) follow(ctx context.Context, c string) error {
	pods := r.e.o.Client.CoreV1().Pods(r.e.o.Namespace)
	var sent int64
	var down time.Time
	for {
		stream, err := pods.GetLogs(r.name, &corev1.PodLogOptions{Container: c, Follow: true}).Stream(ctx)
		if err == nil {
			down = time.Time{}
			_, err = io.CopyN(io.Discard, stream, sent)
			if err == nil {
				var n int64
				n, err = io.Copy(r.log, stream)
				sent += n
			}
			stream.Close()
			if err == nil || errors.Is(err, io.EOF) {
				if s := containerStatus(r.w.latest(), c); s != nil && s.State.Terminated != nil {
					return nil
				}
				if terminal(r.w.latest()) || r.w.isGone() {
					return nil
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		// A refusal (no right to read logs, say) will not pass; anything
		// else is tried again until the API server has been away too long.
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return fmt.Errorf("follow the step's output: %w", err)
		}
		if down.IsZero() {
			down = time.Now()
		} else if time.Since(down) > r.e.o.APIGrace {
			return fmt.Errorf("follow the step's output: the Kubernetes API server has not answered for %s: %w", r.e.o.APIGrace.Round(time.Second), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tail is the end of container c's output, for an error message.
func (r *podRun) tail(ctx context.Context, c string) string {
	lines := int64(5)
	b, err := r.e.o.Client.CoreV1().Pods(r.e.o.Namespace).GetLogs(r.name, &corev1.PodLogOptions{Container: c, TailLines: &lines}).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(its output could not be read: %v)", err)
	}
	return strings.TrimSpace(string(b))
}

// podProblem says why a container of pod did not start or end as it should.
func (r *podRun) podProblem(pod *corev1.Pod, s *corev1.ContainerStatus) string {
	switch {
	case pod == nil:
		return fmt.Sprintf("pod %s is gone", r.name)
	case describeWaiting(s) != "":
		return fmt.Sprintf("pod %s: container %s cannot start: %s", r.name, s.Name, describeWaiting(s))
	case pod.Status.Reason != "":
		return fmt.Sprintf("pod %s %s: %s: %s", r.name, strings.ToLower(string(pod.Status.Phase)), pod.Status.Reason, pod.Status.Message)
	case s != nil && s.State.Terminated != nil:
		t := s.State.Terminated
		return fmt.Sprintf("pod %s: container %s ended with exit %d (%s) %s", r.name, s.Name, t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
	}
	return fmt.Sprintf("pod %s is %s", r.name, strings.ToLower(string(pod.Status.Phase)))
}

// cleanup removes the Pod and the Secret, waiting for the Pod to be gone
// (its processes ended) so that nothing of the job outlives Run, and
// forgets the token. What cannot be removed now (the API server is away)
// is left to the orphan sweep.
func (r *podRun) cleanup() {
	e := r.e
	if r.tj != nil {
		e.o.Transfer.Close(r.tj)
	}
	if r.artifactsDir != "" {
		os.RemoveAll(r.artifactsDir)
	}
	if !r.made {
		return
	}
	defer e.untrack(r.name)
	if r.w != nil {
		defer r.w.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.o.GracePeriod+e.o.APIGrace)
	defer cancel()
	if err := e.remove(ctx, r.name, r.w); err != nil {
		e.o.Log.Warn("build pod left for the orphan sweep", "pod", r.name, "err", err)
		e.mu.Lock()
		e.left++
		e.mu.Unlock()
	}
}

// remove deletes the Pod name (gracefully, then by force once its grace
// period is over) and its Secret, and waits for the Pod to be gone.
func (e *Executor) remove(ctx context.Context, name string, w *podWatch) error {
	pods := e.o.Client.CoreV1().Pods(e.o.Namespace)
	grace := int64(e.o.GracePeriod.Seconds())
	// A Pod that ended has no process left (every container of it has
	// terminated, its kubelet says): it goes at once, without waiting.
	ended := w != nil && w.latest() != nil && terminal(w.latest())
	if ended {
		grace = 0
	}
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod: %w", err)
	}
	if err == nil && !ended {
		if !e.gone(ctx, name, w, e.o.GracePeriod+5*time.Second) {
			zero := int64(0)
			if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("force delete pod: %w", err)
			}
			if !e.gone(ctx, name, w, 30*time.Second) {
				return errors.New("the pod is still there after its forced deletion")
			}
		}
	}
	err = e.o.Client.CoreV1().Secrets(e.o.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}

// gone waits up to d for the Pod name to be gone from the API server: as
// its watch w says, or asking every 100 ms without one.
func (e *Executor) gone(ctx context.Context, name string, w *podWatch, d time.Duration) bool {
	if w != nil {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		w.wait(wctx, d, func(p *corev1.Pod) bool { return p == nil })
		if w.isGone() {
			return true
		}
	}
	pods := e.o.Client.CoreV1().Pods(e.o.Namespace)
	deadline := time.Now().Add(d)
	for {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	if p == nil {
		return nil
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func terminated(p *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	if s := containerStatus(p, name); s != nil {
		return s.State.Terminated
	}
	return nil
}

func reason(s *corev1.ContainerStatus) string {
	if s == nil || s.State.Waiting == nil {
		return ""
	}
	return s.State.Waiting.Reason
}

// terminal reports whether the Pod has ended (or is gone).
func terminal(p *corev1.Pod) bool {
	return p == nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
