//go:build !kubernetes

package main

import (
	"context"
	"errors"
)

// kubernetesBuilt says whether this binary has the Kubernetes executor.
const kubernetesBuilt = false

// errNoKubernetes is serve's error when the configuration runs builds on
// Kubernetes and this binary was built without the executor.
var errNoKubernetes = errors.New(`some builds run on Kubernetes (executor = "kubernetes"), but this slipway was built without the Kubernetes executor: build it with  go build -tags kubernetes ./cmd/slipway`)

// wireKubernetes refuses a configuration that needs the Kubernetes
// executor, which this binary does not have (see kube.go).
func (d *daemon) wireKubernetes(context.Context, *wiring) error {
	if d.cfg.UsesKubernetes() {
		return errNoKubernetes
	}
	return nil
}
