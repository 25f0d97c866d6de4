// Package metrics counts what the daemon does, for Prometheus: pushes and
// git operations, builds and their queue, deployments, schedules, SSH
// connections and log bytes. A Metrics owns its own registry (never the
// global one), so two daemons in one test process count apart; the web
// side serves it at /metrics (Handler) behind the bearer token of
// [http] metrics_token_file.
//
// The packages that do the work do not import this one: each declares the
// few methods it calls in a small interface of its own (gitserver.Metrics,
// push.Metrics, build.Metrics, deploy.Metrics, schedule.Metrics,
// logs.Metrics), with nil meaning nothing is counted, and cmd/slipway hands
// them one *Metrics. Every method is safe for concurrent use and only
// touches the collectors (atomic adds), so counting never makes a push or a
// build wait. What is a level rather than an event (builds queued and
// running, SSH connections open) is read at scrape time through the
// functions given to WatchBuilds and WatchSSH, which read counters kept
// with atomics or a read-only query of the store, never a lock the work
// takes.
//
// Label values are bounded. A repository's name labels the counters only
// when the configuration in force names it; the repositories an admin made
// by pushing to a new name, which nothing bounds, share the value "_other"
// (no repository name can start with "_"). Histograms carry no repository
// at all: their buckets would multiply a thousand configured repositories
// into tens of thousands of series. Environment and schedule names come
// from the configuration, and every other label has a fixed set of values.
package metrics
