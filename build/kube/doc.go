// Package kube is the Kubernetes executor: it runs each build as one Pod
// on a cluster, behind the executor.Executor seam, while the Git host, the
// queue, the records and the deploy path stay in the daemon.
//
// A build's Pod is made of init containers that run in order: "fetch"
// (the helper image, `slipway-helper fetch`) downloads the commit's
// tree from the daemon's [Transfer] endpoint into the workspace, an
// emptyDir; then one container per step runs `sh -c <step>` in the
// pipeline's image, so that the first step that fails ends the Pod and
// each step's exit code is its container's; the last container, "upload",
// keeps the artifacts by executor.CopyArtifacts's rules and sends them
// back, where the same rules are applied again. The steps' environment,
// secrets included, is in a Secret of the build's own, named by key in the
// Pod spec; the transfer token is in it too, given only to the helper
// containers. Pod and Secret are deleted when the build ends, on every
// path; [Executor.Sweep] deletes what a dead daemon or an unreachable API
// server left.
//
// Why a token and not pods/exec: the token is valid for one build, for one
// fetch and one upload, and is forgotten when the build ends, so nothing
// standing can be stolen from a Pod; pods/exec would need the right to run
// commands in every Pod of the namespace, and a tar binary in every image.
// The price is that Pods must reach the daemon's transfer address.
package kube
