package logs

import "strings"

// Metrics counts what logs take, for /metrics (package metrics provides
// it). Its methods are called by the writers, as they write, concurrently,
// and must not block.
type Metrics interface {
	// LogWritten counts n bytes stored in a log of kind ("build" or
	// "deployment"), stamps and Slipway's own lines included.
	LogWritten(kind string, n int)
	// LogDiscarded counts n bytes of output a log of kind discarded past
	// its cap.
	LogDiscarded(kind string, n int64)
}

// Options configure a Store made by NewStoreWith.
type Options struct {
	// Metrics counts the bytes written to logs and those discarded past
	// their caps; nil counts nothing.
	Metrics Metrics
}

type noMetrics struct{}

func (noMetrics) LogWritten(string, int)     {}
func (noMetrics) LogDiscarded(string, int64) {}

// kindOf is the kind of log id: deployments' logs are "deploy-<id>"
// (deploy.LogID), builds' are their ids.
func kindOf(id string) string {
	if strings.HasPrefix(id, "deploy-") {
		return "deployment"
	}
	return "build"
}
