package kubetest

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClusterStarts(t *testing.T) {
	start := time.Now()
	c := StartCluster(t)
	t.Logf("cluster started in %s", time.Since(start))
	ns, err := c.Clientset().CoreV1().Namespaces().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d namespaces", len(ns.Items))
}
