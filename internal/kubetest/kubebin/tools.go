//go:build tools

package kubebin

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
