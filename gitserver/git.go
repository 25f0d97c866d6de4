package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gliderlabs/ssh"

	"slipway/configs"
)

// serveGit checks the caller's rights on the repository named in cl and runs
// the git service on it.
func (s *Server) serveGit(ctx context.Context, sess ssh.Session, c Caller, cl CommandLine, rec *sessionRecord) int {
	stderr := sess.Stderr()
	name, err := configs.CleanRepoName(cl.Args[0])
	if err != nil {
		fmt.Fprintf(stderr, "slipway: %v\n", err)
		return 1
	}
	rec.repo = name
	path, err := RepoPath(s.reposDir, name)
	if err != nil {
		fmt.Fprintf(stderr, "slipway: %v\n", err)
		return 1
	}
	cfg := configs.Snapshot(ctx, s.cfg)
	access := cfg.Access(c.User, name)
	exists := isRepo(path)
	configured := cfg.Configured(name)
	// The same answer whether the repository is missing or hidden from this
	// user, so that names cannot be probed.
	if !access.Has(configs.Read) || !exists && !configured && !(cl.Name == ReceivePack && access.Has(configs.Create)) {
		fmt.Fprintf(stderr, "slipway: repository %q not found\n", name)
		return 1
	}
	if !exists && configured {
		// Made at start and at every reload (EnsureRepos); one the
		// configuration names is never missing for its users, even
		// while a reload is still making it.
		if err := s.createRepo(ctx, path); err != nil {
			s.log.Error("create configured repository", "repo", name, "err", err)
			fmt.Fprintf(stderr, "slipway: could not create repository %q\n", name)
			return 1
		}
		exists = true
	}
	env := append([]string{"PATH=" + s.path, "HOME=" + s.home}, s.gitEnv...)
	if v, ok := gitProtocol(sess.Environ()); ok {
		env = append(env, "GIT_PROTOCOL="+v)
	}
	if cl.Name == ReceivePack {
		if !access.Has(configs.Write) && !access.Has(configs.Release) {
			fmt.Fprintf(stderr, "slipway: user %s may read %q but not push to it\n", c.User, name)
			return 1
		}
		if !exists {
			if err := s.createRepo(ctx, path); err != nil {
				s.log.Error("create repository", "repo", name, "user", c.User, "err", err)
				fmt.Fprintf(stderr, "slipway: could not create repository %q\n", name)
				return 1
			}
			s.log.Info("created repository", "repo", name, "user", c.User)
		}
		token, end := s.tokens.Begin(name, c.User, c.KeyFingerprint, cfg)
		defer end()
		env = append(env, "SLIPWAY_PUSH_TOKEN="+token)
	}
	service := strings.TrimPrefix(cl.Name, "git-")
	start := time.Now()
	code := s.runGit(ctx, sess, env, service, path)
	s.metrics.GitOperation(gitKind(cl.Name), code == 0, time.Since(start))
	return code
}

// gitProtocol returns the client's GIT_PROTOCOL if it is one of the forms git
// sends to ask for a protocol version. Anything else is dropped: git parses
// this variable, so it is outside input.
func gitProtocol(environ []string) (string, bool) {
	v, found := "", false
	for _, kv := range environ {
		if val, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok {
			v, found = val, true // the last one wins, as in a shell
		}
	}
	switch v {
	case "version=0", "version=1", "version=2":
		return v, found
	}
	return "", false
}

// gitArgs are the options every git service runs with: the daemon's push
// hooks (there are no per-repository hook files to go stale or be planted), push
// options for `git push -o`, and partial clone.
func (s *Server) gitArgs(rest ...string) []string {
	return append([]string{
		"-c", "core.hooksPath=" + s.pushHooksDir,
		"-c", "receive.advertisePushOptions=true",
		"-c", "uploadpack.allowFilter=true",
	}, rest...)
}

// runGit runs `git <service> <path>` with the session as its standard streams
// and returns git's exit status.
func (s *Server) runGit(ctx context.Context, sess ssh.Session, env []string, service, path string) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.git, s.gitArgs(service, path)...)
	cmd.Env = env
	cmd.Dir = path
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return s.gitFailed(sess, service, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return s.gitFailed(sess, service, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return s.gitFailed(sess, service, err)
	}
	exited := make(chan struct{})
	stopGently(cmd, stdin, exited)
	if err := cmd.Start(); err != nil {
		return s.gitFailed(sess, service, err)
	}
	// Not waited for: the client may never send EOF after git is done (a
	// fetch), and Exit closes the channel, which ends this copy.
	go func() {
		_, _ = io.Copy(stdin, sess)
		stdin.Close()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	copyOut := func(dst io.Writer, src io.Reader) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			// The client is gone: stop git, and keep its pipe drained
			// meanwhile so that it never blocks on a full one.
			cancel()
			_, _ = io.Copy(io.Discard, src)
		}
	}
	go copyOut(sess, stdout)
	go copyOut(sess.Stderr(), stderr)
	// Both streams must be drained before Wait (which closes the pipes) and
	// before the exit status is sent, or the client loses git's last words.
	wg.Wait()
	err = cmd.Wait()
	close(exited)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	s.log.Error("wait for git", "service", service, "repo", path, "err", err)
	return 1
}

func (s *Server) gitFailed(sess ssh.Session, service string, err error) int {
	s.log.Error("start git", "service", service, "err", err)
	fmt.Fprintln(sess.Stderr(), "slipway: internal error starting git")
	return 1
}

// How long git gets at each step of being stopped.
const (
	eofGrace  = 2 * time.Second // after its stdin is closed
	termGrace = 5 * time.Second // after SIGTERM, before SIGKILL
)

// stopGently runs git in a process group of its own (with its children:
// pack-objects, index-pack, hooks) and arranges how it is stopped when its
// context ends (client gone, shutdown deadline passed). First its stdin is
// closed: receive-pack then fails the push and exits normally, which is the
// only way it removes its quarantine directory (git no longer cleans up on
// signals). A git still running eofGrace later (upload-pack packing for a
// client that left) gets SIGTERM, and the group SIGKILL after termGrace.
func stopGently(cmd *exec.Cmd, stdin io.Closer, exited <-chan struct{}) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		stdin.Close()
		pgid := cmd.Process.Pid
		go func() {
			for _, step := range []struct {
				wait time.Duration
				sig  syscall.Signal
			}{{eofGrace, syscall.SIGTERM}, {termGrace, syscall.SIGKILL}} {
				select {
				case <-exited:
					return
				case <-time.After(step.wait):
					_ = syscall.Kill(-pgid, step.sig)
				}
			}
		}()
		return nil
	}
	// Wait gives up on git (killing the leader itself) after both graces.
	cmd.WaitDelay = eofGrace + termGrace + time.Second
}

// EnsureRepos makes an empty bare repository (default branch main) for
// every repository cfg names that has none yet (the configuration
// repository too, when config_repo is on), so that its writers can push
// and its readers clone at once. It returns the names it made; it never
// removes one (a repository left out of the configuration keeps its data
// and becomes admin-only). The daemon calls it at start and after every
// reload.
func (s *Server) EnsureRepos(ctx context.Context, cfg *configs.Config) ([]string, error) {
	var made []string
	var errs []error
	names := make([]string, 0, len(cfg.Repos)+1)
	for _, r := range cfg.Repos {
		names = append(names, r.Name)
	}
	if cfg.ConfigRepo {
		names = append(names, configs.ConfigRepoName)
	}
	for _, name := range names {
		path, err := RepoPath(s.reposDir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if isRepo(path) {
			continue
		}
		if err := s.createRepo(ctx, path); err != nil {
			errs = append(errs, fmt.Errorf("repository %q: %w", name, err))
			continue
		}
		made = append(made, name)
	}
	if len(made) > 0 {
		s.log.Info("created the configured repositories that had none", "count", len(made), "repos", strings.Join(made, " "))
	}
	return made, errors.Join(errs...)
}

// writeTemplate writes the template folder new repositories are made
// from: only a config, which sets Slipway's hooks (no sample hooks, no
// description).
func writeTemplate(dir, hooksDir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the repository template: %w", err)
	}
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(hooksDir)
	config := fmt.Sprintf("[core]\n\thooksPath = \"%s\"\n", quoted)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o600); err != nil {
		return fmt.Errorf("write the repository template: %w", err)
	}
	return nil
}

// writeSeed makes the empty bare repository every new one is a copy of,
// with git itself (from the template, so its config sets the hooks), once
// per start.
func (s *Server) writeSeed() error {
	if err := os.RemoveAll(s.seed); err != nil {
		return fmt.Errorf("remove the old repository seed: %w", err)
	}
	cmd := exec.Command(s.git, "init", "--bare", "-q", "--initial-branch=main", "--template="+s.template, s.seed)
	cmd.Env = []string{"PATH=" + s.path, "HOME=" + s.home}
	cmd.Dir = s.home
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make the repository seed: git init: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// createRepo makes an empty bare repository at path, with Slipway's hooks
// set in its own config too, so that a push made on the server's disk
// directly (not through Slipway) still meets the hooks. It copies the seed
// git made at start into a folder beside path and renames it into place:
// no git process per repository (a configuration of a thousand
// repositories is made in a moment), and nobody ever sees half a
// repository, whatever stops the copy.
func (s *Server) createRepo(ctx context.Context, path string) error {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if isRepo(path) {
		return nil // created by a concurrent first push
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create parent of %q: %w", path, err)
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(path)+".new-")
	if err != nil {
		return fmt.Errorf("create %q: %w", path, err)
	}
	// MkdirTemp makes it 0700; git makes repositories 0755.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create %q: %w", path, err)
	}
	if err := copyTree(s.seed, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		// Only what this call made is removed, never a folder someone
		// left at path.
		os.RemoveAll(tmp)
		return fmt.Errorf("create %q: %w", path, err)
	}
	return nil
}

// copyTree copies the folders and regular files under src into dst, which
// exists, with their modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			return os.Mkdir(to, info.Mode().Perm())
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a file or folder", p)
		}
	})
}
