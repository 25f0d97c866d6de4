package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Sweep deletes the Pods and Secrets labelled with this executor's
// instance that belong to no job it runs now: those of a daemon that died
// mid-build (its builds run again from the queue, in new Pods), and those
// a job could not remove while the API server was away. The daemon calls
// it at start, before any build runs, and then periodically. It returns
// how many objects it deleted.
func (e *Executor) Sweep(ctx context.Context) (int, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelInstance: e.o.Instance, LabelManagedBy: "slipway"}).String()
	n := 0
	var errs []error
	pods, err := e.o.Client.CoreV1().Pods(e.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list build pods: %w", err)
	}
	zero := int64(0)
	for _, p := range pods.Items {
		if e.isLive(p.Name) {
			continue
		}
		err := e.o.Client.CoreV1().Pods(e.o.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		switch {
		case err == nil:
			n++
			e.o.Log.Info("orphaned build pod deleted", "pod", p.Name, "build", p.Labels[LabelBuild])
		case !apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("delete pod %s: %w", p.Name, err))
		}
	}
	secrets, err := e.o.Client.CoreV1().Secrets(e.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return n, errors.Join(append(errs, fmt.Errorf("list build secrets: %w", err))...)
	}
	for _, s := range secrets.Items {
		if e.isLive(s.Name) {
			continue
		}
		err := e.o.Client.CoreV1().Secrets(e.o.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			n++
		case !apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("delete secret %s: %w", s.Name, err))
		}
	}
	if len(errs) == 0 {
		e.mu.Lock()
		e.left = 0
		e.mu.Unlock()
	}
	return n, errors.Join(errs...)
}
