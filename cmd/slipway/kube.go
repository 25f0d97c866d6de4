//go:build kubernetes

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"slipway/build/kube"
	"slipway/build/kube/transfer"
)

// This file is built with -tags kubernetes: the Kubernetes executor and its
// API client (client-go), which cost every slipway process about 20 ms of
// start and the daemon some 20 MB; without the tag, kube_off.go refuses a
// configuration that needs it.

// kubernetesBuilt says whether this binary has the Kubernetes executor.
const kubernetesBuilt = true

// wireKubernetes makes the Kubernetes executor when some build may run on
// it: the API client, the transfer endpoint's listener and this data dir's
// instance id. It starts nothing.
func (d *daemon) wireKubernetes(_ context.Context, w *wiring) error {
	cfg := d.cfg
	if !cfg.UsesKubernetes() {
		return nil
	}
	// client-go logs (retries, warnings of the API server) through klog:
	// into the daemon's log, with the rest.
	klog.SetSlogLogger(d.logger.With("component", "client-go"))
	k := cfg.Kubernetes
	rc, err := restConfig(k.Kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	instance, err := instanceID(cfg.DataDir)
	if err != nil {
		return err
	}
	requests, err := resources(k.Requests)
	if err != nil {
		return err
	}
	limits, err := resources(k.Limits)
	if err != nil {
		return err
	}
	var tolerations []corev1.Toleration
	for _, t := range k.Tolerations {
		tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator),
			Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	ln, err := net.Listen("tcp", k.TransferListen)
	if err != nil {
		return fmt.Errorf("kubernetes.transfer_listen: %w", err)
	}
	transfer := &transfer.Transfer{Log: d.logger.With("component", "kubernetes")}
	maxPods := k.MaxConcurrent
	if maxPods == 0 {
		maxPods = cfg.Build.Concurrency
	}
	tmp := filepath.Join(w.buildDir, "kube")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		ln.Close()
		return fmt.Errorf("kubernetes: %w", err)
	}
	ex, err := kube.New(kube.Options{
		Client: client, Namespace: k.Namespace, Instance: instance,
		Image: k.Image, HelperImage: k.HelperImage,
		Transfer: transfer, TransferURL: k.TransferURL,
		ServiceAccount: k.ServiceAccount, MountToken: k.MountServiceAccountToken,
		NodeSelector: k.NodeSelector, Tolerations: tolerations,
		Requests: requests, Limits: limits,
		RunAsUser: k.RunAsUser, WritableRoot: k.WritableRoot,
		MaxConcurrent: maxPods, GracePeriod: k.GracePeriod.Duration, APIGrace: k.APITimeout.Duration,
		TempDir: tmp, Log: d.logger.With("component", "kubernetes"),
	})
	if err != nil {
		ln.Close()
		return err
	}
	d.kube, d.transferLn = ex, ln
	d.transferSrv = &http.Server{Handler: transfer, ReadHeaderTimeout: 10 * time.Second}
	d.logger.Info("kubernetes executor", "api", rc.Host, "namespace", k.Namespace, "instance", instance,
		"transfer", ln.Addr().String(), "transfer_url", k.TransferURL, "max_concurrent", maxPods)
	return nil
}

// restConfig is the API client's configuration: kubeconfig's, or the
// in-cluster service account's when it is empty.
func restConfig(kubeconfig string) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if kubeconfig == "" {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: no kubeconfig set and not in a cluster: %w", err)
		}
	} else if rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, fmt.Errorf("kubernetes.kubeconfig: %w", err)
	}
	// Every running build watches its Pod and follows its logs: the
	// default of 5 requests a second would queue them.
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "slipway"
	return rc, nil
}

func resources(m map[string]string) (corev1.ResourceList, error) {
	if len(m) == 0 {
		return nil, nil
	}
	l := corev1.ResourceList{}
	for name, q := range m {
		v, err := resource.ParseQuantity(q)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %s %q: %w", name, q, err)
		}
		l[corev1.ResourceName(name)] = v
	}
	return l, nil
}

// instanceID is this data dir's id among the daemons that share a
// namespace (the slipway.instance label): made once, kept in the data dir.
func instanceID(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "instance-id")
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read instance id: %w", err)
	}
	id := strings.ToLower(rand.Text()[:16])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write instance id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("write instance id: %w", err)
	}
	return id, nil
}
