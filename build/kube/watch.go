package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// podWatch keeps the latest state of one Pod, from a watch of it that is
// opened again whenever it ends (the API server restarted, say).
type podWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pod     *corev1.Pod // nil until seen, and once gone
	seen    bool        // the Pod was read at least once
	gone    bool        // deleted
	err     error       // why the API server does not answer now; nil when it does
	errFrom time.Time   // since when it does not
	changed chan struct{}
}

// watch starts following the Pod name.
func (e *Executor) watch(name string) *podWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &podWatch{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	go w.loop(ctx, e, name)
	return w
}

func (w *podWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *podWatch) loop(ctx context.Context, e *Executor, name string) {
	defer close(w.done)
	pods := e.o.Client.CoreV1().Pods(e.o.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	for ctx.Err() == nil {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			w.failed(err)
			sleep(ctx, 250*time.Millisecond)
			continue
		}
		if len(list.Items) == 0 {
			w.set(nil, true, nil)
			return
		}
		w.set(&list.Items[0], false, nil)
		wi, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			w.failed(err)
			sleep(ctx, 250*time.Millisecond)
			continue
		}
		if w.follow(wi) {
			return
		}
	}
}

// follow reads the watch until it ends; true when the Pod is gone.
func (w *podWatch) follow(wi watch.Interface) bool {
	defer wi.Stop()
	for ev := range wi.ResultChan() {
		switch ev.Type {
		case watch.Added, watch.Modified:
			if p, ok := ev.Object.(*corev1.Pod); ok {
				w.set(p, false, nil)
			}
		case watch.Deleted:
			w.set(nil, true, nil)
			return true
		case watch.Error:
			return false
		}
	}
	return false
}

func (w *podWatch) set(p *corev1.Pod, gone bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pod, w.gone, w.seen, w.err = p, gone, true, err
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *podWatch) failed(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.errFrom = time.Now()
	}
	w.err = err
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *podWatch) latest() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod
}

func (w *podWatch) isGone() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// errPodGone is wait's error when the Pod was deleted under the job.
var errPodGone = errors.New("the build's pod was deleted")

// wait returns the Pod once cond holds for it (cond gets nil once the Pod
// is gone), or when ctx ends (nil error: the caller looks at ctx). When
// the API server has not answered for grace, it gives up with an error.
func (w *podWatch) wait(ctx context.Context, grace time.Duration, cond func(*corev1.Pod) bool) (*corev1.Pod, error) {
	for {
		w.mu.Lock()
		p, seen, gone, err, since, changed := w.pod, w.seen, w.gone, w.err, w.errFrom, w.changed
		w.mu.Unlock()
		if seen && cond(p) {
			if gone {
				return nil, errPodGone
			}
			return p, nil
		}
		var timeout <-chan time.Time
		if err != nil {
			left := grace - time.Since(since)
			if left <= 0 {
				return p, fmt.Errorf("the Kubernetes API server has not answered for %s: %w", grace.Round(time.Second), err)
			}
			timeout = time.After(left)
		}
		select {
		case <-ctx.Done():
			return p, nil
		case <-changed:
		case <-timeout:
		}
	}
}

// until returns a channel closed once cond holds for the Pod.
func (w *podWatch) until(cond func(*corev1.Pod) bool) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-w.done
			cancel()
		}()
		w.wait(ctx, time.Hour, cond)
	}()
	return ch
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
