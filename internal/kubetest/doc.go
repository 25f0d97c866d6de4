// Package kubetest runs a real Kubernetes control plane and a test node on
// loopback, for the tests of code that drives Kubernetes (the Kubernetes
// executor). Nothing in it is a fake of the API: the tests talk to a real
// kube-apiserver backed by a real etcd, with RBAC on, ServiceAccount tokens
// minted by the TokenRequest API, and pod logs proxied by the API server to
// the node's kubelet API.
//
// # Binaries
//
// etcd and kube-apiserver are built from the nested module in kubebin/
// (its own go.mod, so the main module's `go test ./...` ignores it) by
// kubebin/build.sh. The harness looks for them in BinDir: $SLIPWAY_KUBE_BIN
// if set, else <os.UserCacheDir()>/slipway/kube-<hash of kubebin's go.mod,
// go.sum and etcd/main.go>. When one is missing, the first test package to
// need it runs build.sh there under an exclusive flock(2) on a lock file in
// that folder; test packages running alongside wait for it. The first build
// takes about 15 minutes on 2 cores (kube-apiserver is big), so CI runs
// build.sh before the tests; with a warm Go build cache it is a minute.
//
// # Cluster
//
// NewCluster (or StartCluster in a test) starts etcd on kernel-chosen
// loopback ports and kube-apiserver on 127.0.0.1 with a serving certificate
// and CA generated in Go, a static admin token in system:masters,
// --authorization-mode=RBAC, service-account signing keys, and
// --endpoint-reconciler-type=none. The ServiceAccount admission plugin is
// off: no controller manager runs to create a namespace's "default"
// ServiceAccount, and pods get exactly the volumes their spec names (no
// projected API token). There is no kube-controller-manager and no
// kube-scheduler. The API server alone can be stopped and started again on
// the same port (Stop, Restart), to test a client that loses the API.
// Starting a cluster takes about 4 s on a 2-core machine (a node 0.2 s
// more); share one per test package (TestMain) and give each test its own
// namespace.
//
// # Node
//
// StartNode registers a node built with the virtual-kubelet library. Its
// provider runs each container's command as a local process in bubblewrap,
// with the host's network, a read-only root chosen by the image name
// (NodeOptions.Images), emptyDir volumes as folders, and logs served through
// the kubelet API, so that client-go's GetLogs(Follow) goes client ->
// apiserver -> kubelet API -> provider. Since no scheduler runs, the node
// also runs a small binder: it binds every pending pod that has no node and
// whose nodeSelector matches the node's labels (tolerations, resources and
// affinity are not looked at) through the pods/binding subresource; with
// several nodes, give pods a nodeSelector, or any of them may take a pod.
// The node's client waits out a stopped API server (its dials are retried)
// instead of backing off as client-go would, so the node carries on as soon
// as Restart returns. As a kubelet, the node removes a deleted pod from the
// API only once its processes are dead, also one still in its init
// containers, which virtual-kubelet alone force-deletes at once (see
// stopFirst). See Node for what the provider does and does not do.
//
// # Use
//
//	func TestBuild(t *testing.T) {
//		c := kubetest.StartCluster(t) // or one NewCluster per package in TestMain
//		kubetest.StartNode(t, c, kubetest.NodeOptions{
//			Name: "build-node",
//			Images: map[string]kubetest.Image{
//				"debian": kubetest.HostImage(),
//				"slipway-helper": kubetest.HostImage(kubetest.Bind{
//					Host: slipwayBinary, Path: "/usr/local/bin/slipway"}),
//			},
//		})
//		ns, err := c.CreateNamespace(t.Context(), "build")
//		...
//		kubeconfig, err := c.ServiceAccountKubeconfig(t.Context(), ns, "executor")
//		// apply a Role and RoleBinding with c.Clientset() (admin), run the
//		// executor with kubeconfig, follow its pods' logs with client-go.
//		c.Stop()         // the API server goes away...
//		c.Restart(ctx)   // ...and comes back on the same port
//	}
package kubetest

import (
	"log/slog"

	"k8s.io/klog/v2"
)

// client-go's informers and clients log through klog, one logger for the
// whole process: a test's output is not the place for them. It is set here,
// before any goroutine of the process can read it.
func init() { klog.SetSlogLogger(slog.New(slog.DiscardHandler)) }
