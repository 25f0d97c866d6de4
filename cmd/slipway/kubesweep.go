package main

import (
	"context"
	"time"
)

// sweepEvery is how often the Kubernetes executor looks for Pods and
// Secrets of builds that no longer run.
const sweepEvery = time.Minute

// leftoverEvery is how often it tries again while a build's Pod or Secret
// could not be removed.
const leftoverEvery = 2 * time.Second

// startKubernetes sweeps what an earlier run left in the cluster (before
// any build runs: every labelled Pod is an orphan then), serves the
// transfers, and sweeps again every sweepEvery. An API server that does not
// answer now is logged; the next sweep tries again.
func (d *daemon) startKubernetes(ctx context.Context) error {
	if d.kube == nil {
		return nil
	}
	log := d.logger.With("component", "kubernetes")
	sweep := func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if n, err := d.kube.Sweep(sctx); err != nil {
			log.Warn("sweep orphaned build pods", "err", err)
		} else if n > 0 {
			log.Info("orphaned build pods and secrets deleted", "count", n)
		}
	}
	sweep()
	go func() { d.served <- d.transferSrv.Serve(d.transferLn) }()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	d.stopSweep = func() { stop(); <-done }
	go func() {
		defer close(done)
		// Every sweepEvery, and soon after a build could not remove its
		// Pod (the API server was away): as soon as it answers again.
		t := time.NewTicker(leftoverEvery)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if d.kube.Leftovers() || time.Since(last) >= sweepEvery {
					sweep()
					last = time.Now()
				}
			}
		}
	}()
	return nil
}

// stopKubernetes ends the sweeps and the transfer endpoint; the builds
// have stopped before it.
func (d *daemon) stopKubernetes(ctx context.Context) error {
	if d.kube == nil {
		return nil
	}
	if d.stopSweep != nil {
		d.stopSweep()
	}
	return d.transferSrv.Shutdown(ctx)
}
