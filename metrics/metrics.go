package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"slipway/configs"
	"slipway/record"
)

// OtherRepo is the repository label of every repository the configuration
// in force does not name.
const OtherRepo = "_other"

// Options configure a Metrics. Config is required.
type Options struct {
	// Config decides which repositories have a label of their own: the
	// ones the configuration in force names.
	Config configs.Source
	Logger *slog.Logger // nil discards
}

// Metrics is the daemon's collectors and the registry that holds them. It
// is safe for concurrent use.
type Metrics struct {
	cfg     configs.Source
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler

	sshConns     *prometheus.CounterVec   // stage
	sshRefused   *prometheus.CounterVec   // reason
	webhooks     *prometheus.CounterVec   // outcome
	gitOps       *prometheus.HistogramVec // kind, result
	pushes       *prometheus.CounterVec   // repo
	builds       *prometheus.CounterVec   // repo, state
	buildTime    *prometheus.HistogramVec // state
	queueWait    *prometheus.HistogramVec // trigger
	deploys      *prometheus.CounterVec   // repo, env, state
	deployTime   *prometheus.HistogramVec // env, state
	fires        *prometheus.CounterVec   // repo, schedule, trigger
	skips        *prometheus.CounterVec   // repo, schedule, reason
	logBytes     *prometheus.CounterVec   // kind
	logDiscarded *prometheus.CounterVec   // kind
	// The two kinds of log, resolved once: LogWritten is called for
	// every chunk a step prints.
	buildLogBytes, deployLogBytes prometheus.Counter
}

// Buckets, in seconds. A git operation takes from milliseconds (an
// up-to-date fetch) to minutes (the first clone of a large repository); a
// build from seconds to the hours of build.max_timeout; the queue from
// nothing to as long as a build when every worker is busy; a deployment
// from a second (a local folder) to the minutes of a slow target.
var (
	gitBuckets    = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	buildBuckets  = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}
	waitBuckets   = []float64{.01, .05, .1, .5, 1, 5, 15, 30, 60, 300, 900, 3600}
	deployBuckets = []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
)

// New makes the collectors and registers them, with the Go runtime's and
// the process's (memory, open files, CPU), in a registry of its own.
func New(o Options) (*Metrics, error) {
	if o.Config == nil {
		return nil, errors.New("metrics: no config")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "slipway", Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "slipway", Name: name, Help: help, Buckets: buckets}, labels)
	}
	m := &Metrics{
		cfg: o.Config,
		log: log,
		reg: prometheus.NewRegistry(),
		sshConns: counter("ssh_connections_total",
			"SSH connections by stage: accepted (let in, not authenticated yet), authenticated (the key's signature verified and a session slot given), over_limit (verified, but at ssh.max_sessions or ssh.max_sessions_per_user: let in to read why).",
			"stage"),
		webhooks: counter("webhook_attempts_total",
			"Attempts at webhook deliveries, by outcome: delivered, retry (to be tried again), failed (a 3xx or 4xx answer, or the last attempt), refused (an address the SSRF guard refuses).",
			"outcome"),
		sshRefused: counter("ssh_connections_refused_total",
			"SSH connections refused, or closed before they authenticated, by reason: max_startups, per_source_max_startups, gave_way (silent, closed for a newer one), handshake_timeout, failed (closed by the client or a protocol error, a refused key included).",
			"reason"),
		gitOps: histogram("git_operation_duration_seconds",
			"Git operations over SSH by kind (fetch: clone or fetch, git-upload-pack; push: git-receive-pack; archive: git-upload-archive) and result (ok: git exited 0), with how long git ran.",
			gitBuckets, "kind", "result"),
		pushes: counter("pushes_total",
			"Pushes recorded (their refs moved), by repository.", "repo"),
		builds: counter("builds_total",
			"Builds that reached a final state in this daemon, by repository and state (passed, failed, error, cancelled, skipped, superseded, interrupted).",
			"repo", "state"),
		buildTime: histogram("build_duration_seconds",
			"How long builds ran on a worker, from claim to result, by final state.", buildBuckets, "state"),
		queueWait: histogram("build_queue_wait_seconds",
			"How long builds waited in the queue before a worker took them (first attempts), by trigger.", waitBuckets, "trigger"),
		deploys: counter("deployments_total",
			"Deployments that ended, by repository, environment and state (succeeded, failed, rolled_back).",
			"repo", "env", "state"),
		deployTime: histogram("deployment_duration_seconds",
			"How long deployments ran, from claim to outcome, by environment and state.", deployBuckets, "env", "state"),
		fires: counter("schedule_fires_total",
			"Schedule firings, by repository, schedule and trigger (schedule: its time came; manual: ssh run).",
			"repo", "schedule", "trigger"),
		skips: counter("schedule_skips_total",
			"What schedules did not run, by reason: build_skipped (a branch's build recorded skipped: its previous run was still queued or running, or only_if_changed and the tip already passed), missed (instants missed while the daemon was down or stalled and not caught up).",
			"repo", "schedule", "reason"),
		logBytes: counter("log_bytes_total",
			"Bytes written to build and deployment logs, stamps included, by kind (build, deployment).", "kind"),
		logDiscarded: counter("log_discarded_bytes_total",
			"Bytes of output discarded past a log's cap (build.max_log_bytes), by kind.", "kind"),
	}
	m.buildLogBytes = m.logBytes.WithLabelValues("build")
	m.deployLogBytes = m.logBytes.WithLabelValues("deployment")
	cs := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, m.own()...)
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A gauge whose source fails (the store, say) is left out and
		// counted in promhttp_metric_handler_errors_total; the rest
		// is still served.
		ErrorHandling:       promhttp.ContinueOnError,
		ErrorLog:            printer{log},
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	})
	return m, nil
}

// own are the collectors of Slipway's own series.
func (m *Metrics) own() []prometheus.Collector {
	return []prometheus.Collector{
		m.sshConns, m.sshRefused, m.gitOps, m.pushes, m.builds, m.buildTime, m.queueWait,
		m.deploys, m.deployTime, m.fires, m.skips, m.logBytes, m.logDiscarded, m.webhooks,
	}
}

// Handler serves the registry in Prometheus' text format (or
// OpenMetrics, or gzipped, as the scraper asks). It does not check who
// asks: the web side does (web.Options.Metrics).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gatherer is the registry, for tests.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// repo is the label of repository name: itself when the configuration in
// force names it, OtherRepo when not (see the package doc).
func (m *Metrics) repo(name string) string {
	if m.cfg.Current().Configured(name) {
		return name
	}
	return OtherRepo
}

// printer gives promhttp's error log to slog.
type printer struct{ log *slog.Logger }

func (p printer) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }

// SSH connection stages and refusal reasons, the label values of
// slipway_ssh_connections_total and slipway_ssh_connections_refused_total.
const (
	StageAccepted      = "accepted"
	StageAuthenticated = "authenticated"
	StageOverLimit     = "over_limit"
)

// SSHConnection counts a connection reaching stage (StageAccepted,
// StageAuthenticated, StageOverLimit).
func (m *Metrics) SSHConnection(stage string) { m.sshConns.WithLabelValues(stage).Inc() }

// WebhookAttempt counts an attempt at a webhook delivery by its outcome.
func (m *Metrics) WebhookAttempt(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

// SSHRefused counts a connection refused or closed before it
// authenticated, for reason.
func (m *Metrics) SSHRefused(reason string) { m.sshRefused.WithLabelValues(reason).Inc() }

// GitOperation counts one git service run of kind ("fetch", "push",
// "archive") that took took; ok says whether git exited 0.
func (m *Metrics) GitOperation(kind string, ok bool, took time.Duration) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.gitOps.WithLabelValues(kind, result).Observe(took.Seconds())
}

// PushRecorded counts a push to repo whose record was made.
func (m *Metrics) PushRecorded(repo string) { m.pushes.WithLabelValues(m.repo(repo)).Inc() }

// BuildStarted observes how long b waited in the queue, when a worker has
// just claimed it for its first attempt (a later attempt waited for the
// daemon to come back, not for a worker).
func (m *Metrics) BuildStarted(b record.Build) {
	if b.Attempt > 1 || b.CreatedAt.IsZero() || b.StartedAt.IsZero() {
		return
	}
	m.queueWait.WithLabelValues(string(trigger(b))).Observe(max(0, b.StartedAt.Sub(b.CreatedAt).Seconds()))
}

// trigger is b's trigger, as record.Build defines the empty one.
func trigger(b record.Build) record.Trigger {
	if b.Trigger == "" {
		if b.PushID != 0 {
			return record.TriggerPush
		}
		return record.TriggerManual
	}
	return b.Trigger
}

// BuildFinished counts build b, which ran on a worker for ran, ending in
// state.
func (m *Metrics) BuildFinished(b record.Build, state record.State, ran time.Duration) {
	m.builds.WithLabelValues(m.repo(b.Repo), string(state)).Inc()
	m.buildTime.WithLabelValues(string(state)).Observe(ran.Seconds())
}

// BuildEnded counts a build of repo that ended in state without running
// (superseded or cancelled while queued, skipped when its push was
// recorded, interrupted by the daemon's stops).
func (m *Metrics) BuildEnded(repo string, state record.State) {
	m.builds.WithLabelValues(m.repo(repo), string(state)).Inc()
}

// DeploymentFinished counts deployment d, which ran for took and ended in
// state.
func (m *Metrics) DeploymentFinished(d record.Deployment, state record.DeployState, took time.Duration) {
	m.deploys.WithLabelValues(m.repo(d.Repo), d.Env, string(state)).Inc()
	m.deployTime.WithLabelValues(d.Env, string(state)).Observe(took.Seconds())
}

// Reasons of slipway_schedule_skips_total.
const (
	SkipBuild  = "build_skipped"
	SkipMissed = "missed"
)

// ScheduleFired counts one firing of repo's schedule name.
func (m *Metrics) ScheduleFired(repo, name string, t record.Trigger) {
	m.fires.WithLabelValues(m.repo(repo), name, string(t)).Inc()
}

// ScheduleSkipped counts n runs of repo's schedule name that did not
// happen, for reason (SkipBuild, SkipMissed).
func (m *Metrics) ScheduleSkipped(repo, name, reason string, n int) {
	if n > 0 {
		m.skips.WithLabelValues(m.repo(repo), name, reason).Add(float64(n))
	}
}

// LogWritten counts n bytes written to a log of kind ("build",
// "deployment").
func (m *Metrics) LogWritten(kind string, n int) {
	if n <= 0 {
		return
	}
	switch kind {
	case "build":
		m.buildLogBytes.Add(float64(n))
	case "deployment":
		m.deployLogBytes.Add(float64(n))
	default:
		m.logBytes.WithLabelValues(kind).Add(float64(n))
	}
}

// LogDiscarded counts n bytes of output a log of kind discarded past its
// cap.
func (m *Metrics) LogDiscarded(kind string, n int64) {
	if n > 0 {
		m.logDiscarded.WithLabelValues(kind).Add(float64(n))
	}
}
