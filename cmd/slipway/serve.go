package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"slipway/build"
	"slipway/build/logs"
	"slipway/build/sandbox"
	"slipway/build/schedule"
	"slipway/configs"
	"slipway/console"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/hooks"
	"slipway/store"
)

// shutdownGrace bounds how long running git processes and hooks may take to
// finish after SIGINT/SIGTERM before they are killed.
const shutdownGrace = 30 * time.Second

func serve(ctx context.Context, configPath string, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, admitted, err := loadServeConfig(configPath, os.Getenv("SLIPWAY_ADMIN_KEYS"))
	if err != nil {
		return err
	}
	if err := makeDataDirs(cfg); err != nil {
		return err
	}

	db, err := store.Open(ctx, cfg.DatabasePath())
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the slipway binary for the hooks: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return fmt.Errorf("find the slipway binary for the hooks: %w", err)
	}
	if err := hooks.WriteScripts(cfg.HooksDir(), self, cfg.HookSocket()); err != nil {
		return fmt.Errorf("write hooks: %w", err)
	}

	buildDir, err := buildRoot(cfg, logger)
	if err != nil {
		return err
	}
	if err := makeBuildRoot(buildDir); err != nil {
		return err
	}
	runner, sandboxErr := newRunner(ctx, cfg, buildDir, logger)
	if sandboxErr != nil {
		logger.Error("builds will not run: the sandbox does not work here (is bubblewrap installed, and may build.uid reach the build folder?); or set build.sandbox = \"none\" to run builds unsandboxed", "err", sandboxErr, "build_dir", buildDir)
	}
	// Listen before the services are built: the commands they show people
	// ("ssh -p PORT host log 12 -f") need the port actually bound, which
	// differs from the configured one when that is 0. Nothing is accepted
	// until Serve, below; gitSrv.Shutdown closes the listener.
	sshLn, err := net.Listen("tcp", cfg.SSH.Listen)
	if err != nil {
		return fmt.Errorf("listen for ssh: %w", err)
	}
	defer sshLn.Close()
	host, _ := displayAddr(cfg.SSH.Listen)
	_, port := displayAddr(sshLn.Addr().String())
	buildLogs := logs.NewStore(filepath.Join(cfg.DataDir, "logs"))
	deploys, err := deploy.NewService(deploy.ServiceOptions{
		Config:     cfg,
		Store:      db,
		Logs:       buildLogs,
		DataDir:    cfg.DataDir,
		Logger:     logger.With("component", "deploy"),
		SSHCommand: fmt.Sprintf("ssh -p %d %s", port, host),
	})
	if err != nil {
		return err
	}
	builds, err := build.New(build.Options{
		Config:     cfg,
		Store:      db,
		Logs:       buildLogs,
		Runner:     runner,
		SandboxErr: sandboxErr,
		WorkDir:    filepath.Join(buildDir, "work"),
		CacheDir:   filepath.Join(buildDir, "cache"),
		SSHHost:    host,
		SSHPort:    port,
		Logger:     logger.With("component", "build"),
		Deployer:   deploys,
	})
	if err != nil {
		return err
	}
	scheduler, err := schedule.New(schedule.Options{
		Config:   cfg,
		Store:    db,
		ReposDir: cfg.ReposDir(),
		Waker:    builds,
		Logger:   logger.With("component", "schedule"),
	})
	if err != nil {
		return err
	}

	registry := hooks.NewRegistry()
	hookSrv := hooks.NewServer(hooks.ServerOptions{
		Config:      cfg,
		Registry:    registry,
		Recorder:    builds,
		Listeners:   []hooks.PushListener{builds},
		ReleaseGate: deploys,
		Verifier:    builds,
		Logger:      logger.With("component", "hooks"),
		ReposDir:    cfg.ReposDir(),
	})
	gitSrv, err := gitserver.New(gitserver.Options{
		Config: cfg,
		Logger: logger.With("component", "ssh"),
		Tokens: registry,
		Pushes: db,
		Commands: console.Commands(console.Options{
			Config:    cfg,
			Builds:    builds,
			Deploys:   deploys,
			Schedules: scheduler,
		}),
	})
	if err != nil {
		return err
	}

	// Recover and start the workers before anything can push. They run
	// until their Shutdown, not until the signal: that ends them gently.
	runCtx := context.WithoutCancel(ctx)
	if err := deploys.Start(runCtx); err != nil {
		return fmt.Errorf("start deployments: %w", err)
	}
	// The scheduler first: it cancels the queued runs of schedules removed
	// from the config, which no worker must start meanwhile.
	if err := scheduler.Start(runCtx); err != nil {
		return fmt.Errorf("start schedules: %w", err)
	}
	if err := builds.Start(runCtx); err != nil {
		return fmt.Errorf("start builds: %w", err)
	}
	hookLn, err := hooks.Listen(cfg.HookSocket())
	if err != nil {
		return fmt.Errorf("listen for hooks: %w", err)
	}

	errc := make(chan error, 2)
	go func() { errc <- hookSrv.Serve(hookLn) }()
	go func() { errc <- gitSrv.Serve(sshLn) }()
	printBanner(stdout, sshLn.Addr().String(), gitSrv.HostKeyFingerprint(), admitted, cfg.DataDir, sandboxErr)
	logger.Info("slipway started", "ssh", sshLn.Addr().String(), "data_dir", cfg.DataDir, "sandbox", cfg.Build.Sandbox)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "grace", shutdownGrace)
	case serveErr = <-errc:
		logger.Error("server stopped", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Outside in: no new pushes, then no new work, then the workers, then
	// the hooks that running pushes still needed.
	for _, stop := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"ssh", gitSrv.Shutdown},
		{"schedules", scheduler.Shutdown},
		{"builds", builds.Shutdown},
		{"deployments", deploys.Shutdown},
		{"hooks", hookSrv.Shutdown},
	} {
		if err := stop.fn(sctx); err != nil {
			logger.Warn("shutdown", "part", stop.name, "err", err)
		}
	}
	logger.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, net.ErrClosed) && !errors.Is(serveErr, gitserver.ErrServerClosed) {
		return serveErr
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

// newRunner returns the sandbox builds run in, and why builds cannot run when
// the configured sandbox does not work on this host.
func newRunner(ctx context.Context, cfg *configs.Config, buildDir string, logger *slog.Logger) (build.Runner, error) {
	if cfg.Build.Sandbox == "none" {
		return sandbox.None{}, nil
	}
	r := &sandbox.Bwrap{EtcDir: filepath.Join(buildDir, "sandbox-etc")}
	if cfg.Build.MaxMemoryBytes > 0 {
		cg, err := sandbox.DetectCgroups()
		if err != nil {
			// Builds still run; each log says the memory limit does not hold.
			logger.Warn("build.max_memory_bytes cannot be held on this host", "err", err)
		}
		r.Cgroups = cg
	}
	if os.Geteuid() == 0 {
		r.UID, r.GID = cfg.Build.UID, cfg.Build.GID
	}
	// A copy of the /etc files builds may see, refreshed at every start,
	// mounted in one piece: it halves the cost of starting a sandbox.
	if err := sandbox.PrepareEtc(r.EtcDir); err != nil {
		return r, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.Check(cctx); err != nil {
		return r, err
	}
	return r, nil
}

// displayAddr is the host and port people use to reach the SSH server, for
// the commands the daemon prints.
func displayAddr(listen string) (string, int) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen, 22
	}
	port, _ := strconv.Atoi(p)
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return host, port
}

// admittedKey is a key that the embedded default admitted as admin, and
// where it came from.
type admittedKey struct {
	fingerprint, source string
}

// loadServeConfig loads the file at path, or the embedded default with the
// running user as admin when path is empty. Relative data paths are made
// absolute, because hooks run with the repository as working directory.
func loadServeConfig(path, envKeys string) (*configs.Config, []admittedKey, error) {
	var (
		cfg      *configs.Config
		admitted []admittedKey
		err      error
	)
	if path != "" {
		if cfg, err = configs.Load(path); err != nil {
			return nil, nil, err
		}
	} else {
		if cfg, err = configs.Parse(configs.DefaultTOML(), "embedded default"); err != nil {
			return nil, nil, err
		}
		var keys []string
		keys, admitted = defaultAdminKeys(envKeys)
		if len(keys) == 0 {
			return nil, nil, errors.New("no admin key found: the embedded default admits the public keys in ~/.ssh/*.pub and in $SLIPWAY_ADMIN_KEYS; create one with `ssh-keygen -t ed25519` or write a config (see configs/example.toml)")
		}
		if cfg, err = cfg.WithAdmin(adminName(), keys); err != nil {
			return nil, nil, err
		}
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("data dir: %w", err)
	}
	if !filepath.IsAbs(cfg.SSH.HostKey) {
		if cfg.SSH.HostKey, err = filepath.Abs(cfg.SSH.HostKey); err != nil {
			return nil, nil, fmt.Errorf("host key: %w", err)
		}
	}
	cfg.DataDir = abs
	if cfg.Build.WorkDir != "" {
		if cfg.Build.WorkDir, err = filepath.Abs(cfg.Build.WorkDir); err != nil {
			return nil, nil, fmt.Errorf("build.work_dir: %w", err)
		}
	}
	return cfg, admitted, nil
}

// defaultAdminKeys collects authorized_keys lines from ~/.ssh/*.pub and from
// the SLIPWAY_ADMIN_KEYS value (one key per line). Lines that are not keys
// are skipped: a stray file in ~/.ssh must not stop the quick start.
func defaultAdminKeys(envKeys string) ([]string, []admittedKey) {
	var (
		keys     []string
		admitted []admittedKey
		seen     = map[string]bool{}
	)
	add := func(text, source string) {
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				continue
			}
			fp := gossh.FingerprintSHA256(pk)
			if seen[fp] {
				continue
			}
			seen[fp] = true
			keys = append(keys, line)
			admitted = append(admitted, admittedKey{fp, source})
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
		for _, f := range files {
			if data, err := os.ReadFile(f); err == nil {
				add(string(data), f)
			}
		}
	}
	add(envKeys, "$SLIPWAY_ADMIN_KEYS")
	return keys, admitted
}

// adminName is the running user's login name, made into a valid Slipway user
// name, for the embedded default's admin.
func adminName() string {
	name := "admin"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	s := strings.TrimLeft(b.String(), "._-")
	if s == "" {
		return "admin"
	}
	return s
}

func printBanner(w io.Writer, addr, hostKeyFP string, admitted []admittedKey, dataDir string, sandboxErr error) {
	fmt.Fprintf(w, "Slipway is listening on ssh://%s (host key %s)\n", addr, hostKeyFP)
	fmt.Fprintf(w, "Data: %s\n", dataDir)
	if len(admitted) > 0 {
		fmt.Fprintln(w, "Admitted as admin:")
		for _, k := range admitted {
			fmt.Fprintf(w, "  %s  (%s)\n", k.fingerprint, k.source)
		}
	}
	fmt.Fprintf(w, "Push a project:\n  git remote add slipway ssh://%s/myproject.git\n  git push slipway HEAD\n", addr)
	fmt.Fprintf(w, "Commands: ssh -p %s %s help\n", portOf(addr), hostOf(addr))
	if sandboxErr != nil {
		fmt.Fprintf(w, "WARNING: builds will not run: %v\n", sandboxErr)
	}
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "22"
	}
	return p
}
