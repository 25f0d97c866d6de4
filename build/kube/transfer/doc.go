// Package transfer moves a build's source into its Pod and its artifacts
// back, over the daemon's own HTTP endpoint ([Transfer]) with a token made
// for that one build. [Helper] is the Pod's side, run by the small
// slipway-helper binary of the helper image; the package imports no
// Kubernetes client, so that binary stays small and quick to start (it
// runs twice in every build).
package transfer
