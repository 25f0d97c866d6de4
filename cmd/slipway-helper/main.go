// Command slipway-helper is the program of the Kubernetes executor's helper
// image: in a build's Pod it fetches the source from the daemon and sends
// the artifacts back (see package slipway/build/kube/transfer).
//
//	slipway-helper fetch DIR
//	slipway-helper upload DIR MAX [PATH...]
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"slipway/build/kube/transfer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := transfer.Helper(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
