package kubetest

import (
	"context"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// stopFirst is the pod client virtual-kubelet is given. A kubelet deletes
// a pod object only once the pod's processes are dead. virtual-kubelet
// 1.14 force-deletes a pod marked for deletion whose main containers are
// not running (running() in its podcontroller.go), one still in its init
// containers too, without asking the provider to stop it first: the pod
// left the API while its processes ran on. stopFirst's Delete stops such a
// pod on this node, with the grace period it was deleted with, and waits
// for its processes before it passes the delete on.
type stopFirst struct {
	corev1client.PodsGetter
	prov *provider
}

func (s stopFirst) Pods(namespace string) corev1client.PodInterface {
	return stopFirstPods{PodInterface: s.PodsGetter.Pods(namespace), prov: s.prov, namespace: namespace}
}

type stopFirstPods struct {
	corev1client.PodInterface
	prov      *provider
	namespace string
}

func (s stopFirstPods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	if pr := s.prov.lookup(s.namespace, name); pr != nil {
		pod, err := s.Get(ctx, name, metav1.GetOptions{})
		if err == nil && pod.UID == pr.pod.UID && pod.DeletionTimestamp != nil {
			if err := s.prov.DeletePod(ctx, pod); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
		}
	}
	return s.PodInterface.Delete(ctx, name, opts)
}
