package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"slipway/deploy"
)

// Shipping a build's artifacts to a local folder target; an SSH target
// ("deploy@host:/srv/app" with KeyFile and KnownHostsFile) works the same.
func ExampleShipper_Ship() {
	tmp, _ := os.MkdirTemp("", "slipway-example-")
	defer os.RemoveAll(tmp)
	artifacts := filepath.Join(tmp, "build")
	_ = os.MkdirAll(artifacts, 0o755)
	_ = os.WriteFile(filepath.Join(artifacts, "app"), []byte("#!/bin/sh\n"), 0o755)

	target, err := deploy.ParseTarget(filepath.Join(tmp, "staging"))
	if err != nil {
		fmt.Println(err)
		return
	}
	var s deploy.Shipper
	res, err := s.Ship(context.Background(), deploy.Request{
		Target: target, Source: artifacts, Release: "42",
		Repo: "app", Env: "staging", Commit: "3f2a9c1",
		Activate: `echo "now serving $SLIPWAY_RELEASE ($SLIPWAY_COMMIT)"`,
		Log:      nil, // the deployment's own log: rsync, ssh and activate output
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	link, _ := os.Readlink(filepath.Join(tmp, "staging", "current"))
	fmt.Println("live:", res.Live, "current ->", link)
	// Output: live: 42 current -> releases/42
}
