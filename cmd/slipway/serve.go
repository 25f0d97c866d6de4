package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"slipway/build"
	"slipway/build/executor"
	"slipway/build/logs"
	"slipway/build/sandbox"
	"slipway/build/schedule"
	"slipway/configrepo"
	"slipway/configs"
	"slipway/console"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/hooks"
	"slipway/metrics"
	"slipway/notes"
	"slipway/push"
	"slipway/store"
	"slipway/views"
	"slipway/web"
	"slipway/webhook"
)

// shutdownGrace bounds how long running git processes and hooks may take to
// finish after SIGINT/SIGTERM before they are killed.
const shutdownGrace = 30 * time.Second

// serveOptions are the flags of `slipway serve`.
type serveOptions struct {
	configPath string // empty: the embedded default
	listen     string // replaces [ssh] listen when set
	httpListen string // replaces [http] listen when set; "off" turns it off
	dataDir    string // replaces data_dir when set
}

func serve(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	loader := configs.SystemLoader()
	loader.Listen, loader.HTTPListen, loader.DataDir = o.listen, o.httpListen, o.dataDir
	rl := &reloader{path: o.configPath, loader: loader, log: logger.With("component", "config")}
	data, err := rl.read()
	if err != nil {
		return err
	}
	defer rl.low.close()
	cfg, err := rl.parse(data)
	if err != nil {
		return err
	}
	if err := checkConfigRepo(cfg, o.configPath); err != nil {
		return err
	}
	rl.live = configs.NewLive(cfg, rl.origin(data))
	// One daemon per data dir, decided before anything in it is touched:
	// a second daemon must not recover, re-queue or fail the first one's
	// work. A data dir that does not exist yet is locked once it is made.
	lock, err := lockExistingDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer func() { lock.Close() }()
	// Listen before anything is created: a port in use must leave no data
	// dir behind. The services built below also need the port actually
	// bound for the commands they show people ("ssh -p PORT host log 12
	// -f"), which differs from the configured one when that is 0. Nothing
	// is accepted until the SSH server starts; its Shutdown closes the
	// listener.
	sshLn, err := listenSSH(cfg.SSH.Listen, o)
	if err != nil {
		return err
	}
	defer sshLn.Close()
	var httpLn net.Listener
	if cfg.HTTP.Listen != "" {
		if httpLn, err = listenHTTP(cfg.HTTP.Listen, o); err != nil {
			return err
		}
		defer httpLn.Close()
	}
	if err := makeDataDirs(cfg); err != nil {
		return err
	}
	if lock == nil {
		if lock, err = lockDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	d, err := assemble(ctx, rl, sshLn, httpLn, logger)
	if err != nil {
		return err
	}
	defer d.db.Close()
	if err := d.start(ctx); err != nil {
		return err
	}
	// SIGHUP reloads the configuration, a burst of them once.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupCtx, stopHup := context.WithCancel(ctx)
	defer stopHup()
	go rl.onSignals(hupCtx, hup)
	dashboard := ""
	if httpLn != nil {
		dashboard = dashboardURL(cfg, httpLn.Addr().String())
	}
	printBanner(stdout, sshLn.Addr().String(), d.host, d.gitSrv.HostKeyFingerprint(), dashboard, cfg, d.findings, d.sandboxErr)
	logger.Info("slipway started", "ssh", sshLn.Addr().String(), "data_dir", cfg.DataDir, "sandbox", cfg.Build.Sandbox)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", shutdownGrace)
	case serveErr = <-d.served:
		logger.Error("server stopped", "err", serveErr)
	}
	d.shutdown()
	logger.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, net.ErrClosed) && !errors.Is(serveErr, gitserver.ErrServerClosed) && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// daemon is everything serve builds: one value that owns the database, the
// servers and the services, starts them in order and stops them.
type daemon struct {
	cfg    *configs.Config // at start: paths, addresses, workers
	live   *configs.Live   // in force now
	reload *reloader
	logger *slog.Logger
	db     *store.Store
	sshLn  net.Listener
	httpLn net.Listener // nil: the web side is off

	gitSrv    *gitserver.Server
	webSrv    *web.Server
	hookSrv   *hooks.Server
	builds    *build.Service
	deploys   *deploy.Service
	scheduler *schedule.Scheduler
	views     *views.Service
	notes     *notes.Service
	webhooks  *webhook.Service

	host       string            // the name people reach the SSH server by
	findings   []sandbox.Finding // the sandbox self-test, for the banner
	sandboxErr error             // why builds cannot run, or nil

	served chan error // a server's Serve returned

	pushes    *push.Handler
	stopWatch func() // ends the open-push watch

	cfgRepo *configrepo.Repo // nil unless config_repo = true

	// The Kubernetes executor, nil unless some build may run on it (and
	// the binary was built with it: see kube.go).
	kube        kubeExecutor
	transferLn  net.Listener
	transferSrv *http.Server
	stopSweep   func()
}

// kubeExecutor is what the daemon asks of the Kubernetes executor besides
// running builds.
type kubeExecutor interface {
	executor.Executor
	Sweep(ctx context.Context) (int, error)
	Leftovers() bool
}

// assemble opens the database, writes the hook scripts, checks the sandbox
// and builds every service and server, wired to each other. It starts
// nothing. The data dir's folders exist and its lock is held.
func assemble(ctx context.Context, rl *reloader, sshLn, httpLn net.Listener, logger *slog.Logger) (*daemon, error) {
	cfg, live := rl.live.Current(), rl.live
	db, err := store.Open(ctx, cfg.DatabasePath())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	d := &daemon{cfg: cfg, live: live, reload: rl, logger: logger, db: db, sshLn: sshLn, httpLn: httpLn}
	rl.applied = d.applied
	w := &wiring{}
	for _, wire := range []func(context.Context, *wiring) error{
		d.prepareDisk,
		d.wireKubernetes,
		d.wireWork,
		d.wireHooks,
		d.wireReads,
		d.wireSSH,
	} {
		if err := wire(ctx, w); err != nil {
			db.Close()
			return nil, err
		}
	}
	return d, nil
}

// wiring is what assemble's steps hand on to the later ones.
type wiring struct {
	runner    sandbox.Runner   // the build sandbox
	ids       *sandbox.IDPool  // the builds' uids, nil: the daemon's own
	buildDir  string           // where builds' folders are made
	port      int              // the SSH server's, as people reach it
	counts    *metrics.Metrics // what /metrics shows
	buildLogs *logs.Store      // build and deployment logs
	registry  *hooks.Registry  // the pushes in flight, for the hooks
}

// prepareDisk writes the hook scripts, sweeps what pushes cut off left and
// makes the build root, then checks the sandbox there: its findings are
// the banner's, and its failure stops builds (said in every build), not
// the daemon.
func (d *daemon) prepareDisk(ctx context.Context, w *wiring) error {
	cfg, logger := d.cfg, d.logger
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the slipway binary for the hooks: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return fmt.Errorf("find the slipway binary for the hooks: %w", err)
	}
	if err := hooks.WriteScripts(cfg.HooksDir(), cfg.PushHooksDir(), self, cfg.HookSocket()); err != nil {
		return fmt.Errorf("write hooks: %w", err)
	}
	// No push is in flight: the SSH server starts last (see steps).
	gitserver.SweepQuarantines(cfg.ReposDir(), logger.With("component", "ssh"))

	if w.buildDir, err = buildRoot(cfg, logger); err != nil {
		return err
	}
	if err := makeBuildRoot(w.buildDir); err != nil {
		return err
	}
	runner, ids, findings, sandboxErr := newRunner(ctx, cfg, w.buildDir, logger)
	w.runner, w.ids, d.findings = runner, ids, findings
	for _, f := range findings {
		logger.Info("sandbox self-test", "check", f.Name, "holds", f.Holds, "detail", f.Detail)
	}
	if sandboxErr != nil {
		advice := sandboxAdvice(sandboxErr, cfg)
		attrs := []any{"build_dir", w.buildDir}
		if cause := errors.Unwrap(sandboxErr); cause != nil {
			attrs = append(attrs, "cause", cause)
		}
		logger.Error("builds will not run: "+advice, attrs...)
		sandboxErr = errors.New(advice)
	}
	d.sandboxErr = sandboxErr
	return nil
}

// wireWork makes the services that do the work: deployments, builds (on
// the sandbox prepareDisk checked), schedules, and the one way of a push.
func (d *daemon) wireWork(_ context.Context, w *wiring) error {
	cfg, live, logger, db := d.cfg, d.live, d.logger, d.db
	host, _ := configs.DisplayAddr(cfg.SSH.Listen)
	d.host = host
	_, port := configs.DisplayAddr(d.sshLn.Addr().String())
	w.port = port
	// What /metrics shows is counted from the start, whether or not
	// metrics_token_file is set: a reload may set it.
	counts, err := metrics.New(metrics.Options{Config: live, Logger: logger.With("component", "metrics")})
	if err != nil {
		return err
	}
	buildLogs := logs.NewStoreWith(filepath.Join(cfg.DataDir, "logs"), logs.Options{Metrics: counts})
	d.deploys, err = deploy.NewService(deploy.ServiceOptions{
		Config:     live,
		Store:      db,
		Logs:       buildLogs,
		DataDir:    cfg.DataDir,
		Logger:     logger.With("component", "deploy"),
		SSHCommand: fmt.Sprintf("ssh -p %d %s", port, host),
		Metrics:    counts,
	})
	if err != nil {
		return err
	}
	var onKube executor.Executor // nil unless configured: not a nil *kube.Executor
	if d.kube != nil {
		onKube = d.kube
	}
	d.builds, err = build.New(build.Options{
		Kubernetes: onKube,
		Config:     live,
		Store:      db,
		Logs:       buildLogs,
		// The local executor: each build's steps in the sandbox, one
		// after the other, homes beside the workspaces.
		Executor:   &sandbox.Local{Runner: w.runner, TempDir: filepath.Join(w.buildDir, "work"), IDs: w.ids},
		SandboxErr: d.sandboxErr,
		WorkDir:    filepath.Join(w.buildDir, "work"),
		CacheDir:   filepath.Join(w.buildDir, "cache"),
		SSHHost:    host,
		SSHPort:    port,
		Logger:     logger.With("component", "build"),
		Deployer:   d.deploys,
		Metrics:    counts,
	})
	if err != nil {
		return err
	}
	d.scheduler, err = schedule.New(schedule.Options{
		Config:   live,
		Store:    db,
		ReposDir: cfg.ReposDir(),
		Waker:    d.builds,
		Logger:   logger.With("component", "schedule"),
		Metrics:  counts,
		Events:   db,
	})
	if err != nil {
		return err
	}

	// The one way of an accepted push: recorded with its builds and release
	// deployments in one transaction, then reported, builds first.
	d.pushes, err = push.New(push.Options{
		Store:   db,
		Ledger:  db,
		Parts:   []push.Part{d.builds.Pushes(), d.deploys.Pushes()},
		Logger:  logger.With("component", "push"),
		Metrics: counts,
	})
	if err != nil {
		return err
	}
	w.counts, w.buildLogs = counts, buildLogs
	return nil
}

// wireHooks makes the server the git hooks of every push talk to, and the
// configuration repository when config_repo is on.
func (d *daemon) wireHooks(_ context.Context, w *wiring) (err error) {
	cfg, live, logger, db := d.cfg, d.live, d.logger, d.db
	registry := hooks.NewRegistry()
	hookOpts := hooks.ServerOptions{
		Config:      live,
		Registry:    registry,
		Recorder:    d.pushes,
		Ledger:      db,
		ReleaseGate: d.deploys,
		Verifier:    d.builds,
		Events:      db,
		Logger:      logger.With("component", "hooks"),
		ReposDir:    cfg.ReposDir(),
	}
	if cfg.ConfigRepo {
		if d.cfgRepo, err = newConfigRepo(cfg, d.reload, d); err != nil {
			return err
		}
		hookOpts.ConfigRepo = d.cfgRepo
	}
	d.hookSrv = hooks.NewServer(hookOpts)
	w.registry = registry
	return nil
}

// wireReads makes what reads and tells: the views behind the SSH commands
// and the API, git notes, the web side and webhooks.
func (d *daemon) wireReads(_ context.Context, w *wiring) (err error) {
	cfg, live, logger, db, host := d.cfg, d.live, d.logger, d.db, d.host
	counts, buildLogs, port := w.counts, w.buildLogs, w.port
	// The read model behind both the SSH commands and the JSON API.
	d.views, err = views.New(views.Options{
		Config:    live,
		Repos:     gitserver.Disk{ReposDir: cfg.ReposDir()},
		Records:   db,
		Builds:    d.builds,
		Deploys:   d.deploys,
		Schedules: d.scheduler,
		Logs:      buildLogs,
		Revisions: gitserver.Disk{ReposDir: cfg.ReposDir()},
	})
	if err != nil {
		return err
	}
	// Build and deployment results as git notes, from the outbox.
	d.notes, err = notes.New(notes.Options{
		Events:  db,
		Records: db,
		Config:  live,
		GitDir:  func(repo string) (string, error) { return gitserver.RepoPath(cfg.ReposDir(), repo) },
		Logger:  logger.With("component", "notes"),
	})
	if err != nil {
		return err
	}
	d.webSrv, err = web.New(web.Options{
		Config: live,
		Logger: logger.With("component", "web"),
		Repos:  gitserver.Disk{ReposDir: cfg.ReposDir()},
		Views:  d.views,
		// Live logs, log pages and badges; the pages' release gate,
		// artifacts and git address.
		BuildLogs:    d.builds,
		DeployLogs:   d.deploys,
		Badges:       db,
		Releases:     d.deploys,
		ArtifactsDir: filepath.Join(cfg.DataDir, "artifacts"),
		CloneURL:     "ssh://" + net.JoinHostPort(host, strconv.Itoa(port)),
		// Sessions and API tokens; `ssh login` and `ssh token` are its
		// commands, given to the SSH server below.
		Sessions: db,
		Tokens:   db,
		Addr:     addrOf(d.httpLn),
		Metrics:  counts.Handler(),
	})
	if err != nil {
		return err
	}
	// Webhooks: the outbox's events fanned out into deliveries, sent by
	// a pool of their own; `webhooks`, `deliveries`, `delivery` and
	// `redeliver` are their commands.
	d.webhooks, err = webhook.New(webhook.Options{
		Config:     live,
		Outbox:     db,
		Deliveries: db,
		Records:    db,
		Logger:     logger.With("component", "webhook"),
		Metrics:    counts,
	})
	if err != nil {
		return err
	}
	return nil
}

// wireSSH makes the SSH server with every command, and has /metrics watch
// it and the builds.
func (d *daemon) wireSSH(_ context.Context, w *wiring) (err error) {
	live, logger, db, counts := d.live, d.logger, d.db, w.counts
	commands := console.Commands(console.Options{Views: d.views})
	maps.Copy(commands, d.webSrv.Commands())
	maps.Copy(commands, d.webhooks.Commands(db))
	d.gitSrv, err = gitserver.New(gitserver.Options{
		Config:   live,
		Logger:   logger.With("component", "ssh"),
		Tokens:   w.registry,
		GitEnv:   raceEnv(),
		Commands: d.commands(commands),
		Metrics:  counts,
	})
	if err != nil {
		return err
	}
	if err := counts.WatchBuilds(d.builds.Load); err != nil {
		return err
	}
	if err := counts.WatchSSH(d.gitSrv.Connections); err != nil {
		return err
	}

	return nil
}

// step is one part of the daemon that runs: how it starts, how it stops,
// and how long its stop may take.
type step struct {
	name  string
	start func() error
	stop  func(context.Context) error
	grace time.Duration
}

// steps are the daemon's parts in the order they start: the workers
// recover and start before anything can push (the scheduler before the
// build workers: it cancels the queued runs of schedules removed from the
// config, which no worker must start meanwhile), then the hook socket, then
// the SSH server. They run until their Shutdown, not until the signal:
// that ends them gently.
func (d *daemon) steps(ctx context.Context) []step {
	runCtx := context.WithoutCancel(ctx)
	return []step{
		// First, so that its cursor is placed (at a first start) before
		// any event of this run.
		{"webhooks", func() error { return d.webhooks.Start(runCtx) }, d.webhooks.Shutdown, 5 * time.Second},
		{"deployments", func() error { return d.deploys.Start(runCtx) }, d.deploys.Shutdown, shutdownGrace},
		{"schedules", func() error { return d.scheduler.Start(runCtx) }, d.scheduler.Shutdown, 5 * time.Second},
		{"kubernetes", func() error { return d.startKubernetes(runCtx) }, d.stopKubernetes, 5 * time.Second},
		{"builds", func() error { return d.builds.Start(runCtx) }, d.builds.Shutdown, shutdownGrace},
		{"reconcile", func() error { return d.reconcile(runCtx) }, d.stopReconcile, 5 * time.Second},
		{"notes", func() error { return d.notes.Start(runCtx) }, d.notes.Shutdown, 10 * time.Second},
		{"hooks", func() error {
			ln, err := hooks.Listen(d.cfg.HookSocket())
			if err != nil {
				return err
			}
			go func() { d.served <- d.hookSrv.Serve(ln) }()
			return nil
		}, d.hookSrv.Shutdown, 10 * time.Second},
		{"repos", func() error {
			// Every configured repository exists before anyone can push.
			if _, err := d.gitSrv.EnsureRepos(runCtx, d.live.Current()); err != nil {
				d.logger.Error("create the configured repositories", "err", err)
			}
			return nil
		}, func(context.Context) error { return nil }, time.Second},
		{"config repo", func() error {
			// slipway-config shows the file the daemon starts on.
			d.syncConfigRepo(runCtx, d.live.Current().Origin(), "configuration on disk at start")
			return nil
		}, func(context.Context) error { return nil }, time.Second},
		{"http", func() error {
			if d.httpLn != nil {
				go func() { d.served <- d.webSrv.Serve(d.httpLn) }()
			}
			return nil
		}, d.webSrv.Shutdown, 10 * time.Second},
		{"ssh", func() error {
			go func() { d.served <- d.gitSrv.Serve(d.sshLn) }()
			return nil
		}, d.gitSrv.Shutdown, shutdownGrace},
	}
}

// Open pushes older than openPushAge are finished by the watch every
// openPushPeriod: their post-receive could not record their work.
const (
	openPushPeriod = time.Minute
	openPushAge    = 5 * time.Minute
)

// reconcile brings the record level with the repositories before any push
// can arrive (see push.Handler.Reconcile), then watches for pushes whose
// work could not be recorded. A failure is logged, not fatal: the daemon
// serves, and the next start tries again.
func (d *daemon) reconcile(ctx context.Context) error {
	disk := gitserver.Disk{ReposDir: d.cfg.ReposDir()}
	if err := d.pushes.Reconcile(ctx, disk); err != nil {
		d.logger.Error("reconcile the record with the repositories", "err", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.stopWatch = func() { cancel(); <-done }
	go func() {
		defer close(done)
		d.pushes.Watch(ctx, disk, openPushPeriod, openPushAge)
	}()
	return nil
}

func (d *daemon) stopReconcile(context.Context) error {
	if d.stopWatch != nil {
		d.stopWatch()
	}
	return nil
}

// start starts the daemon's parts in order. When one fails, the ones
// already started are stopped, last first, before the error is returned:
// nothing is left running against a database about to close.
func (d *daemon) start(ctx context.Context) error {
	d.served = make(chan error, 3)
	steps := d.steps(ctx)
	for i, st := range steps {
		if err := st.start(); err != nil {
			for j := i - 1; j >= 0; j-- {
				d.stop(steps[j])
			}
			return fmt.Errorf("start %s: %w", st.name, err)
		}
	}
	return nil
}

// shutdown stops the daemon's parts from the outside in: no new pushes,
// then no new work, then the workers, then the hooks that running pushes
// still needed. Each part gets its own grace, so that one slow part does
// not eat the others'. Before all that, no build or deployment starts any
// more, and pushers waiting for one are answered at once (a `-o wait` push
// that it goes on after the restart, a verified push with a refusal), so
// that their SSH sessions end without waiting for the grace.
func (d *daemon) shutdown() {
	d.builds.BeginShutdown()
	d.deploys.BeginShutdown()
	byName := map[string]step{}
	for _, st := range d.steps(context.Background()) {
		byName[st.name] = st
	}
	for _, name := range []string{"ssh", "http", "schedules", "reconcile", "builds", "deployments", "webhooks", "notes", "hooks"} {
		d.stop(byName[name])
	}
}

// stop stops one part within its grace.
func (d *daemon) stop(st step) {
	ctx, cancel := context.WithTimeout(context.Background(), st.grace)
	defer cancel()
	if err := st.stop(ctx); err != nil {
		d.logger.Warn("shutdown", "part", st.name, "err", err)
	}
}

// raceEnv passes the daemon's GORACE on to git and the hooks, which are
// this binary: only a binary built with -race reads it (the tests set
// atexit_sleep_ms=0, or every hook would sleep a second as it exits).
func raceEnv() []string {
	if v, ok := os.LookupEnv("GORACE"); ok {
		return []string{"GORACE=" + v}
	}
	return nil
}

// makeDataDirs creates the data dir's folders. The data dir is searchable
// (not readable) by others, because build steps run as an unprivileged uid
// that must reach its workspace (see buildRoot); everything else is the
// daemon's alone.
func makeDataDirs(cfg *configs.Config) error {
	dirs := []struct {
		path string
		mode os.FileMode
	}{
		{cfg.DataDir, 0o711},
		{cfg.ReposDir(), 0o700},
		{cfg.HooksDir(), 0o755},
		{filepath.Join(cfg.DataDir, "logs"), 0o700},
		{filepath.Join(cfg.DataDir, "artifacts"), 0o700},
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("set the mode of %s: %w", d.path, err)
		}
	}
	return nil
}

// newRunner returns the sandbox builds run in, the uids they run as (nil:
// the runner's own), what its self-test found, and why builds cannot run
// when the configured sandbox does not work on this host.
func newRunner(ctx context.Context, cfg *configs.Config, buildDir string, logger *slog.Logger) (sandbox.Runner, *sandbox.IDPool, []sandbox.Finding, error) {
	b := cfg.Build
	limits := sandbox.Limits{
		Procs:     b.MaxProcesses,
		FileSize:  b.MaxFileBytes,
		Files:     b.MaxOpenFiles,
		Memory:    b.MaxMemoryBytes,
		Tmp:       b.MaxTmpBytes,
		Workspace: b.MaxWorkspaceBytes,
	}
	if b.Sandbox == "none" {
		unenforced := sandbox.None{}.Unenforced(sandbox.Spec{Limits: limits})
		detail := executor.DescribeLimits(executor.Limits(limits), b.MaxArtifactBytes, unenforced)
		return sandbox.None{}, nil, []sandbox.Finding{
			{Name: "sandbox", Detail: "none: steps run as plain processes of the daemon's user, with the host's network and no isolation"},
			{Name: "limits", Holds: !strings.Contains(detail, "NOT in force"), Detail: detail},
		}, nil
	}
	r := &sandbox.Bwrap{EtcDir: filepath.Join(buildDir, "sandbox-etc")}
	// Detected even without a memory limit, so that the self-test can say
	// whether one could be set.
	cg, err := sandbox.DetectCgroups()
	if err != nil && b.MaxMemoryBytes > 0 {
		// Builds still run; the banner and each log say the memory limit
		// does not hold.
		logger.Warn("build.max_memory_bytes cannot be held on this host", "err", err)
	}
	r.Cgroups = cg
	if cg != nil {
		if n := cg.Sweep(); n > 0 {
			logger.Info("removed the memory cgroups of steps whose daemon died", "count", n)
		}
	}
	var ids *sandbox.IDPool
	var identity sandbox.Finding
	switch {
	case os.Geteuid() != 0:
		identity = sandbox.Finding{Name: "identities", Holds: true, Detail: fmt.Sprintf(
			"every build runs as the daemon's uid %d (only root has other uids to give); build folders are 0700, so other local users cannot read them", os.Geteuid())}
	case b.UIDRange.Count > 0:
		if err := sandbox.CheckIDRange(b.UIDRange.First, b.UIDRange.Count); err != nil {
			return r, nil, nil, &sandbox.SetupError{
				Problem: fmt.Sprintf("build.uid_range %s: %v", b.UIDRange, err),
				Fix:     "choose a range no account, group or subordinate id range of this machine uses",
				Err:     err,
			}
		}
		ids = sandbox.NewIDPool(b.UIDRange.First, b.UIDRange.Count)
		identity = sandbox.Finding{Name: "identities", Holds: true, Detail: fmt.Sprintf(
			"every running build has a host uid of its own from %s (build.uid_range); its workspace, home and cache are that uid's, mode 0700", b.UIDRange)}
	default:
		r.UID, r.GID = b.UID, b.GID
		logger.Warn("build.uid and build.gid are deprecated: every build runs as one uid, so builds running at once can read each other's folders; use build.uid_range", "uid", b.UID)
		identity = sandbox.Finding{Name: "identities", Detail: fmt.Sprintf(
			"every build runs as uid %d (build.uid, deprecated): builds running at once can read each other's folders; set build.uid_range instead", b.UID)}
	}
	// A copy of the /etc files builds may see, refreshed at every start,
	// mounted in one piece: it halves the cost of starting a sandbox.
	var skipped []string
	if ids != nil {
		skipped, err = sandbox.PrepareEtcFor(r.EtcDir, ids)
	} else {
		skipped, err = sandbox.PrepareEtcSkipped(r.EtcDir)
	}
	if err != nil {
		return r, ids, nil, err
	}
	if len(skipped) > 0 {
		logger.Info("sandbox /etc: left out what the daemon may not read, builds do not see it either", "paths", strings.Join(skipped, " "))
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	findings, err := r.SelfTest(cctx, sandbox.SelfTestOptions{
		Dir:              filepath.Join(buildDir, "work"),
		Limits:           limits,
		MaxArtifactBytes: b.MaxArtifactBytes,
		IDs:              ids,
	})
	if len(findings) > 0 {
		findings = append(findings, identity)
	}
	return r, ids, findings, err
}

// sandboxAdvice is the one line that says why builds cannot run and what
// to do about it, in the words of the config.
func sandboxAdvice(err error, cfg *configs.Config) string {
	var se *sandbox.SetupError
	if !errors.As(err, &se) {
		return "the sandbox does not work here: " + err.Error()
	}
	if errors.Is(err, sandbox.ErrFolderUnreachable) {
		who := fmt.Sprintf("uid %d", cfg.Build.UID)
		if cfg.Build.UIDRange.Count > 0 {
			who = "the uids of build.uid_range"
		}
		return fmt.Sprintf("%s; %s, or set build.work_dir to a folder %s may reach", se.Problem, se.Fix, who)
	}
	return se.Error()
}

// listenSSH opens the SSH listener. When the port is taken, the error says
// how to choose another.
func listenSSH(addr string, o serveOptions) (net.Listener, error) {
	return listen(addr, o, "", "--listen", "", "ssh")
}

// listenHTTP opens the web side's listener. When the port is taken, the
// error says how to choose another or turn it off.
func listenHTTP(addr string, o serveOptions) (net.Listener, error) {
	return listen(addr, o, " for the web side", "--http", ", turn it off with --http off", "http")
}

// listen opens a listener of the daemon; what its error says of a port
// in use names the flag and the config table that choose another.
func listen(addr string, o serveOptions, what, flag, off, table string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(addr)
		where := "[" + table + "] listen in the config"
		if o.configPath == "" {
			where = "[" + table + "] listen in a config file: slipway config default > slipway.toml"
		}
		return nil, fmt.Errorf("listen on %s%s: address already in use; choose another with %s %s%s (or %s)",
			addr, what, flag, net.JoinHostPort(host, "PORT"), off, where)
	}
	return nil, fmt.Errorf("listen on %s%s: %w", addr, what, err)
}

// absolutePaths makes the configuration's relative data paths absolute,
// because hooks run with the repository as working directory.
func absolutePaths(cfg *configs.Config) error {
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !filepath.IsAbs(cfg.SSH.HostKey) {
		if cfg.SSH.HostKey, err = filepath.Abs(cfg.SSH.HostKey); err != nil {
			return fmt.Errorf("host key: %w", err)
		}
	}
	cfg.DataDir = abs
	if cfg.Build.WorkDir != "" {
		if cfg.Build.WorkDir, err = filepath.Abs(cfg.Build.WorkDir); err != nil {
			return fmt.Errorf("build.work_dir: %w", err)
		}
	}
	return nil
}

// dashboardURL is where the banner sends people: public_url when set,
// else the address the web side listens on.
func dashboardURL(cfg *configs.Config, addr string) string {
	if cfg.HTTP.PublicURL != "" {
		return strings.TrimSuffix(cfg.HTTP.PublicURL, "/") + "/"
	}
	scheme := "http"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https"
	}
	host, _ := configs.DisplayAddr(cfg.HTTP.Listen)
	return fmt.Sprintf("%s://%s/", scheme, net.JoinHostPort(host, portOf(addr)))
}

// printBanner tells the person who started the daemon where it listens,
// who is admitted as admin with which key, and how to push. host is the
// name to reach it by (addr's host may be 0.0.0.0).
func printBanner(out io.Writer, addr, host, hostKeyFP, dashboard string, cfg *configs.Config, findings []sandbox.Finding, sandboxErr error) {
	// One write, so that whoever waits for the first line finds the
	// whole banner with it.
	var w bytes.Buffer
	defer func() { _, _ = out.Write(w.Bytes()) }()
	fmt.Fprintf(&w, "Slipway is listening on ssh://%s (host key %s)\n", addr, hostKeyFP)
	if dashboard != "" {
		fmt.Fprintf(&w, "Dashboard: %s\n", dashboard)
	}
	fmt.Fprintf(&w, "Data: %s\n", cfg.DataDir)
	header := false
	for _, u := range cfg.Users {
		if !u.Admin {
			continue
		}
		for _, k := range u.AuthorizedKeys() {
			if !header {
				fmt.Fprintln(&w, "Admitted as admin:")
				header = true
			}
			fmt.Fprintf(&w, "  %s  %s  (%s)\n", k.Fingerprint, u.Name, k.Source)
		}
	}
	reach := net.JoinHostPort(host, portOf(addr))
	fmt.Fprintf(&w, "Push a project:\n  git remote add slipway ssh://%s/myproject.git\n  git push slipway HEAD\n", reach)
	fmt.Fprintf(&w, "Commands: ssh -p %s %s help\n", portOf(addr), host)
	if len(findings) > 0 {
		fmt.Fprintln(&w, "Build sandbox:")
		for _, f := range findings {
			mark := "ok"
			if !f.Holds {
				mark = "--"
			}
			fmt.Fprintf(&w, "  %s %s\n", mark, f)
		}
	}
	if sandboxErr != nil {
		fmt.Fprintf(&w, "WARNING: builds will not run: %v\n", sandboxErr)
	}
}

// addrOf is the address ln listens on, or "" without one.
func addrOf(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "22"
	}
	return p
}
