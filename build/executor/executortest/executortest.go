// Package executortest is the conformance suite of executor.Executor: every
// implementation calls Run from a test of its own, so that the contract
// written on the interface holds for each of them, proved the same way.
//
// The suite runs real steps through /bin/sh, so the executor under test must
// run them; it reads the workspace, the artifacts and the host's /proc, so
// it runs on the host the jobs' folders live on.
package executortest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/build/executor"
	"slipway/internal/testutil"
)

// NewFunc makes the executor under test for one subtest. tmp is an empty
// folder of the test's own: the executor keeps whatever temporary folders it
// makes on this host there, and the suite checks that it is empty again
// after every Run.
type NewFunc func(t *testing.T, tmp string) executor.Executor

// Run runs the conformance suite against the executors newExecutor makes.
// The calling test must not be parallel (one subtest sets a variable of the
// test process, to see it does not reach the steps).
func Run(t *testing.T, newExecutor NewFunc) {
	t.Run("Environment", func(t *testing.T) { testEnvironment(t, newExecutor) })
	t.Run("StepsInOrder", func(t *testing.T) { t.Parallel(); testStepsInOrder(t, newExecutor) })
	t.Run("ExitCodes", func(t *testing.T) { t.Parallel(); testExitCodes(t, newExecutor) })
	t.Run("LogOrder", func(t *testing.T) { t.Parallel(); testLogOrder(t, newExecutor) })
	t.Run("Timeout", func(t *testing.T) { t.Parallel(); testTimeout(t, newExecutor) })
	t.Run("Cancel", func(t *testing.T) { t.Parallel(); testCancel(t, newExecutor) })
	t.Run("Artifacts", func(t *testing.T) { t.Parallel(); testArtifacts(t, newExecutor) })
	t.Run("ArtifactsRefused", func(t *testing.T) { t.Parallel(); testArtifactsRefused(t, newExecutor) })
	t.Run("ArtifactsOverCap", func(t *testing.T) { t.Parallel(); testArtifactsOverCap(t, newExecutor) })
	t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, newExecutor) })
	t.Run("WorkspaceLimit", func(t *testing.T) { t.Parallel(); testWorkspaceLimit(t, newExecutor) })
	t.Run("FailedStart", func(t *testing.T) { t.Parallel(); testFailedStart(t, newExecutor) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); testConcurrent(t, newExecutor) })
}

// fixture is one subtest's executor and folders: <base>/ws, the workspace,
// and <base>/out, where artifacts go; tmp is the executor's.
type fixture struct {
	t    *testing.T
	ex   executor.Executor
	base string
	ws   string
	tmp  string
	log  *recorder
}

func newFixture(t *testing.T, newExecutor NewFunc) *fixture {
	t.Helper()
	base, tmp := t.TempDir(), t.TempDir()
	// A sandbox may run steps as an unprivileged uid, which must reach
	// the workspace and the executor's folders.
	for _, d := range []string{base, tmp} {
		searchable(t, d)
	}
	ws := filepath.Join(base, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ex: newExecutor(t, tmp), base: base, ws: ws, tmp: tmp, log: &recorder{}}
	return f
}

// job is a job of steps in the fixture's workspace, logging to its recorder.
func (f *fixture) job(steps ...string) executor.Job {
	return executor.Job{
		Workspace:   f.ws,
		Steps:       steps,
		Env:         []string{"PATH=/usr/bin:/bin"},
		Timeout:     time.Minute,
		Log:         f.log,
		StepStarted: func(i int) { f.log.event(fmt.Sprintf("<start %d>", i)) },
		StepEnded:   func(i int, _ executor.StepResult) { f.log.event(fmt.Sprintf("<end %d>", i)) },
	}
}

// run runs job, fails the test on an error, and checks what must hold after
// every Run: no output after it returned, and nothing left in tmp.
func (f *fixture) run(ctx context.Context, job executor.Job) executor.Result {
	f.t.Helper()
	res, err := f.ex.Run(ctx, job)
	f.log.returned()
	if err != nil {
		f.t.Fatalf("Run: %v\nlog:\n%s", err, f.log.String())
	}
	f.checkClean()
	return res
}

// checkClean fails the test when tmp is not empty.
func (f *fixture) checkClean() {
	f.t.Helper()
	entries, err := os.ReadDir(f.tmp)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		f.t.Errorf("the executor left %s in its temporary folder", strings.Join(names, ", "))
	}
}

// recorder is a job's log: the output with the Step* calls marked in it. It
// fails the test on a write after Run returned, or one that overlaps
// another.
type recorder struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	done    bool
	late    []string
	writing bool
	overlap bool
	// seen, if set, is closed once the output contains want.
	want string
	seen chan struct{}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	if r.writing {
		r.overlap = true
	}
	r.writing = true
	if r.done {
		r.late = append(r.late, string(p))
	}
	r.buf.Write(p)
	if r.seen != nil && strings.Contains(r.buf.String(), r.want) {
		close(r.seen)
		r.seen = nil
	}
	r.writing = false
	r.mu.Unlock()
	return len(p), nil
}

func (r *recorder) event(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writing {
		r.overlap = true
	}
	r.buf.WriteString(s)
}

func (r *recorder) returned() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// check fails t when the log was written after Run returned or
// concurrently.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.late) > 0 {
		t.Errorf("output after Run returned: %q", r.late)
	}
	if r.overlap {
		t.Errorf("log writes overlapped")
	}
}

// waitFor returns a channel closed once the log contains want.
func (r *recorder) waitFor(want string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want, r.seen = want, make(chan struct{})
	return r.seen
}

func searchable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// marker returns a string unique to this test, for finding its processes.
func marker(t *testing.T) string {
	return "slipway-executortest-" + strings.ToLower(rand.Text()[:12])
}

// sleeper is a shell command that starts a sleeping shell carrying mark in
// its command line, in the background when bg, and for the foreground one
// prints ready first.
func sleeper(mark string, bg bool) string {
	if bg {
		return fmt.Sprintf("sh -c 'sleep 300; true' %s &", mark)
	}
	return fmt.Sprintf("echo ready; sh -c 'sleep 300; true' %s", mark)
}

func testEnvironment(t *testing.T, newExecutor NewFunc) {
	const daemonVar = "SLIPWAY_EXECUTORTEST_DAEMON_ONLY"
	t.Setenv(daemonVar, "the daemon's")
	f := newFixture(t, newExecutor)
	// The environment is read from the log, not from a file in the
	// workspace: an executor that runs the steps elsewhere brings back
	// only the artifacts.
	job := f.job(`env`)
	job.Env = []string{
		"PATH=/usr/bin:/bin",
		"PLAIN=value",
		"SPACES=a b  c",
		"EQUALS=x=y",
		"EMPTY=",
		"QUOTES='\"$HOME\"",
	}
	res := f.run(t.Context(), job)
	if len(res.Steps) != 1 || res.Steps[0].ExitCode != 0 {
		t.Fatalf("steps: %+v\n%s", res.Steps, f.log.String())
	}
	out := strings.TrimPrefix(f.log.String(), "<start 0>")
	out, ended := strings.CutSuffix(out, "<end 0>")
	if !ended {
		t.Fatalf("log %q: want the one step's output", f.log.String())
	}
	// The shell sets these of its own accord, whoever starts it.
	shells := map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
	var got []string
	for _, kv := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		name, _, _ := strings.Cut(kv, "=")
		if !shells[name] {
			got = append(got, kv)
		}
	}
	want := slices.Clone(job.Env)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the step's environment:\n%s\nwant exactly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func testStepsInOrder(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	job := f.job("echo one", "echo two; exit 3", "echo three > three.txt")
	job.Artifacts, job.ArtifactsDir = []string{"."}, filepath.Join(f.base, "out")
	res := f.run(t.Context(), job)
	f.log.check(t)
	if got, want := f.log.String(), "<start 0>one\n<end 0><start 1>two\n<end 1>"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if len(res.Steps) != 2 || res.Steps[0].ExitCode != 0 || res.Steps[1].ExitCode != 3 {
		t.Errorf("steps %+v, want exit 0 then 3 and no third", res.Steps)
	}
	if _, err := os.Stat(filepath.Join(f.ws, "three.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the step after the failure ran: %v", err)
	}
	if _, err := os.Stat(job.ArtifactsDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("artifacts of a failed job were kept: %v", err)
	}
	if res.Artifacts != 0 || res.ArtifactsErr != nil {
		t.Errorf("artifacts %d, %v of a failed job", res.Artifacts, res.ArtifactsErr)
	}
}

func testExitCodes(t *testing.T, newExecutor NewFunc) {
	for _, c := range []struct {
		step string
		code int
	}{
		{"true", 0}, {"exit 1", 1}, {"exit 42", 42}, {"exit 255", 255},
		{"kill -TERM $$", 128 + 15}, {"no-such-command-anywhere", 127},
	} {
		f := newFixture(t, newExecutor)
		res := f.run(t.Context(), f.job(c.step))
		if len(res.Steps) != 1 {
			t.Fatalf("%q: %d results", c.step, len(res.Steps))
		}
		r := res.Steps[0]
		if r.ExitCode != c.code || r.TimedOut || r.Cancelled {
			t.Errorf("%q: %+v, want exit %d", c.step, r, c.code)
		}
		if r.Duration <= 0 {
			t.Errorf("%q: duration %v", c.step, r.Duration)
		}
	}
}

func testLogOrder(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	mark := marker(t)
	var want strings.Builder
	want.WriteString("<start 0>")
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&want, "out%d\nerr%d\n", i, i)
	}
	want.WriteString("<end 0><start 1>partial line\n<end 1><start 2>last\n<end 2>")
	job := f.job(
		`i=1; while [ $i -le 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`,
		`printf 'partial '; printf 'line\n' >&2`,
		// A background child the step leaves behind goes with it.
		fmt.Sprintf(`(sh -c 'sleep 300; true' %s >/dev/null 2>&1 &) ; echo last`, mark),
	)
	res := f.run(t.Context(), job)
	f.log.check(t)
	if got := f.log.String(); got != want.String() {
		t.Errorf("log:\n%q\nwant:\n%q", got, want.String())
	}
	if len(res.Steps) != 3 {
		t.Errorf("steps %+v", res.Steps)
	}
	if ps := testutil.ProcessesWith(mark); len(ps) > 0 {
		t.Errorf("processes of the job left after Run returned:\n%s", strings.Join(ps, "\n"))
	}
}

func testTimeout(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	mark := marker(t)
	job := f.job(sleeper(mark, true)+sleeper(mark, false), "echo after-ran; echo after > after.txt")
	job.Timeout = time.Second
	f.runStopped(t.Context(), job, mark, true)
}

// runStopped runs job, whose first step (its processes marked with mark)
// is stopped by the job's timeout or, timedOut false, by ctx's
// cancellation, and checks what that leaves: one step, killed (exit -1)
// for that reason only, Run returned promptly, no process of the step left
// (background children too must go), and the step after it not run.
func (f *fixture) runStopped(ctx context.Context, job executor.Job, mark string, timedOut bool) {
	t := f.t
	t.Helper()
	how := "was cancelled"
	if timedOut {
		how = "timed out"
	}
	start := time.Now()
	res := f.run(ctx, job)
	took := time.Since(start)
	f.log.check(t)
	if len(res.Steps) != 1 || res.Steps[0].TimedOut != timedOut || res.Steps[0].Cancelled == timedOut || res.Steps[0].ExitCode != -1 {
		t.Fatalf("steps %+v, want one %s with exit -1\n%s", res.Steps, how, f.log.String())
	}
	if took > 30*time.Second {
		t.Errorf("Run returned %v after its step %s", took, how)
	}
	if ps := testutil.ProcessesWith(mark); len(ps) > 0 {
		t.Errorf("processes of the step that %s left (background children too must go):\n%s", how, strings.Join(ps, "\n"))
	}
	if _, err := os.Stat(filepath.Join(f.ws, "after.txt")); !errors.Is(err, os.ErrNotExist) || strings.Contains(f.log.String(), "after-ran") {
		t.Errorf("the step after the one that %s ran: %v\n%s", how, err, f.log.String())
	}
}

func testCancel(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	mark := marker(t)
	ready := f.log.waitFor("ready\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-ready:
			cancel()
		case <-ctx.Done():
		}
	}()
	job := f.job(sleeper(mark, true)+sleeper(mark, false), "echo after-ran; echo after > after.txt")
	f.runStopped(ctx, job, mark, false)
}

func testArtifacts(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	job := f.job(
		`mkdir -p bin/sub && printf app > bin/app && chmod 755 bin/app && printf x > bin/sub/x && ln -s app bin/current`,
		`printf report > report.txt && printf ignored > ignored.txt`,
	)
	job.Artifacts = []string{"bin", "report.txt"}
	job.ArtifactsDir = filepath.Join(f.base, "out", "1")
	res := f.run(t.Context(), job)
	if res.ArtifactsErr != nil || res.Artifacts != 4 {
		t.Fatalf("artifacts %d, %v; want 4 kept\n%s", res.Artifacts, res.ArtifactsErr, f.log.String())
	}
	for name, want := range map[string]string{"bin/app": "app", "bin/sub/x": "x", "report.txt": "report"} {
		b, err := os.ReadFile(filepath.Join(job.ArtifactsDir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(job.ArtifactsDir, "bin", "app")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/app lost its executable bit: %v", err)
	}
	if tgt, err := os.Readlink(filepath.Join(job.ArtifactsDir, "bin", "current")); err != nil || tgt != "app" {
		t.Errorf("bin/current: %q, %v; want a link to app", tgt, err)
	}
	if _, err := os.Lstat(filepath.Join(job.ArtifactsDir, "ignored.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file not asked for was kept: %v", err)
	}
}

func testArtifactsRefused(t *testing.T, newExecutor NewFunc) {
	const secret = "SLIPWAY-EXECUTORTEST-SECRET"
	for _, c := range []struct {
		name, step, artifact string
	}{
		{"escaping path", "true", "../secret"},
		{"absolute link", "ln -s " + "%s" + " leak", "leak"},
		{"relative link out", "mkdir -p d && ln -s ../../secret d/leak", "d"},
		{"missing", "true", "nothing-here"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, newExecutor)
			secretPath := filepath.Join(f.base, "secret")
			if err := os.WriteFile(secretPath, []byte(secret), 0o644); err != nil {
				t.Fatal(err)
			}
			step := c.step
			if strings.Contains(step, "%s") {
				step = fmt.Sprintf(step, secretPath)
			}
			job := f.job(step)
			job.Artifacts = []string{c.artifact}
			job.ArtifactsDir = filepath.Join(f.base, "out")
			res := f.run(t.Context(), job)
			if len(res.Steps) != 1 || res.Steps[0].ExitCode != 0 {
				t.Fatalf("steps %+v\n%s", res.Steps, f.log.String())
			}
			if res.ArtifactsErr == nil {
				t.Errorf("artifact %q was kept", c.artifact)
			}
			if _, err := os.Lstat(job.ArtifactsDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused artifacts left their folder: %v", err)
			}
		})
	}
}

// Artifacts over Job.MaxArtifactBytes are refused whole, with their size;
// at the cap they are kept.
func testArtifactsOverCap(t *testing.T, newExecutor NewFunc) {
	for _, c := range []struct {
		name string
		max  int64
		kept bool
	}{{"over", 4 << 20, false}, {"at", 6000000, true}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, newExecutor)
			job := f.job(`mkdir -p bin && head -c 3000000 /dev/zero > bin/a && head -c 3000000 /dev/zero > bin/b`)
			job.Artifacts = []string{"bin"}
			job.ArtifactsDir = filepath.Join(f.base, "out")
			job.MaxArtifactBytes = c.max
			res := f.run(t.Context(), job)
			if len(res.Steps) != 1 || res.Steps[0].ExitCode != 0 {
				t.Fatalf("steps %+v\n%s", res.Steps, f.log.String())
			}
			if c.kept {
				if res.ArtifactsErr != nil || res.Artifacts != 2 {
					t.Errorf("6,000,000 bytes at a cap of as many: %d kept, %v", res.Artifacts, res.ArtifactsErr)
				}
				return
			}
			var tooLarge *executor.ArtifactsTooLargeError
			if !errors.As(res.ArtifactsErr, &tooLarge) || tooLarge.Size != 6000000 || tooLarge.Max != 4<<20 || res.Artifacts != 0 {
				t.Errorf("6,000,000 bytes over a cap of 4 MiB: %d kept, %v", res.Artifacts, res.ArtifactsErr)
			}
			if _, err := os.Lstat(job.ArtifactsDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("artifacts over the cap left their folder: %v", err)
			}
		})
	}
}

// Every limit that Unenforced does not name holds, and each step's result
// repeats what Unenforced said: /tmp is full at Limits.Tmp, a process
// cannot open more than Limits.Files.
func testLimits(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	job := f.job(`head -c 20000000 /dev/zero > "$TMPDIR/big"; echo "tmp $(stat -c %s "$TMPDIR/big")"`,
		`bash -c 'n=0; while [ $n -lt 300 ]; do exec {fd}</dev/null || break; n=$((n+1)); done; echo "files $n"' 2>/dev/null`)
	job.Limits = executor.Limits{Tmp: 8 << 20, Files: 64}
	l := f.ex.Layout(job)
	if l.Tmp != "" {
		job.Env = append(job.Env, "TMPDIR="+l.Tmp)
	} else {
		job.Env = append(job.Env, "TMPDIR="+l.Workspace)
	}
	unenforced := f.ex.Unenforced(job)
	res := f.run(t.Context(), job)
	out := f.log.String()
	if len(res.Steps) != 2 {
		t.Fatalf("steps %+v\n%s", res.Steps, out)
	}
	for i, s := range res.Steps {
		if !slices.Equal(s.Unenforced, unenforced) {
			t.Errorf("step %d: Unenforced %q, but Unenforced(job) said %q", i+1, s.Unenforced, unenforced)
		}
	}
	held := func(name string) bool {
		return !slices.ContainsFunc(unenforced, func(u string) bool { return strings.HasPrefix(u, name+":") })
	}
	if held(executor.LimitTmp) && !strings.Contains(out, fmt.Sprintf("tmp %d\n", 8<<20)) {
		t.Errorf("/tmp is not full at 8 MiB, and Unenforced does not say so (%q):\n%s", unenforced, out)
	}
	// bash holds 0-2 and a few of its own: the step gets 60-odd of 64.
	m := regexp.MustCompile(`files (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no count of open files:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); held(executor.LimitOpenFiles) && (n >= 64 || n < 40) {
		t.Errorf("a process opened %d files under a limit of 64", n)
	}
}

// A step that fills the workspace is stopped at Limits.Workspace, and the
// steps after it do not run.
func testWorkspaceLimit(t *testing.T, newExecutor NewFunc) {
	f := newFixture(t, newExecutor)
	job := f.job(`i=0; while head -c 1048576 /dev/zero > f$i; do i=$((i+1)); done; echo write failed`, `echo second step ran`)
	job.Limits.Workspace = 16 << 20
	res := f.run(t.Context(), job)
	if len(res.Steps) != 1 || !res.Steps[0].WorkspaceFull || res.Steps[0].ExitCode != -1 || res.Steps[0].WorkspaceUsed < 16<<20 {
		t.Fatalf("steps %+v; want the first stopped at 16 MiB\n%s", res.Steps, f.log.String())
	}
	if out := f.log.String(); strings.Contains(out, "second step ran") || strings.Contains(out, "write failed") {
		t.Errorf("the step went on:\n%s", out)
	}
}

func testFailedStart(t *testing.T, newExecutor NewFunc) {
	for _, c := range []struct {
		name string
		ws   func(f *fixture) string
	}{
		{"missing workspace", func(f *fixture) string { return filepath.Join(f.base, "nowhere") }},
		{"workspace is a file", func(f *fixture) string {
			p := filepath.Join(f.base, "file")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"relative workspace", func(*fixture) string { return "ws" }},
		{"no workspace", func(*fixture) string { return "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, newExecutor)
			job := f.job("echo ran > " + filepath.Join(f.base, "ran.txt"))
			job.Workspace = c.ws(f)
			job.Artifacts = []string{"."}
			job.ArtifactsDir = filepath.Join(f.base, "out")
			res, err := f.ex.Run(t.Context(), job)
			f.log.returned()
			if err == nil {
				t.Fatalf("Run with workspace %q: no error, %+v", job.Workspace, res)
			}
			if len(res.Steps) != 0 || f.log.String() != "" {
				t.Errorf("a job that could not start ran: %+v, log %q", res.Steps, f.log.String())
			}
			for _, p := range []string{"ran.txt", "out"} {
				if _, err := os.Lstat(filepath.Join(f.base, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after a failed start: %v", p, err)
				}
			}
			f.checkClean()
		})
	}
}

func testConcurrent(t *testing.T, newExecutor NewFunc) {
	const n = 3
	fs := make([]*fixture, n)
	for i := range fs {
		fs[i] = newFixture(t, newExecutor)
	}
	var wg sync.WaitGroup
	results := make([]executor.Result, n)
	errs := make([]error, n)
	for i, f := range fs {
		wg.Go(func() {
			job := f.job(fmt.Sprintf("echo job%d; echo job%d > mine.txt", i, i))
			job.Artifacts, job.ArtifactsDir = []string{"mine.txt"}, filepath.Join(f.base, "out")
			results[i], errs[i] = f.ex.Run(t.Context(), job)
			f.log.returned()
		})
	}
	wg.Wait()
	for i, f := range fs {
		if errs[i] != nil {
			t.Errorf("job %d: %v", i, errs[i])
			continue
		}
		if got, want := f.log.String(), fmt.Sprintf("<start 0>job%d\n<end 0>", i); got != want {
			t.Errorf("job %d log %q, want %q", i, got, want)
		}
		b, err := os.ReadFile(filepath.Join(f.base, "out", "mine.txt"))
		if err != nil || string(b) != fmt.Sprintf("job%d\n", i) {
			t.Errorf("job %d artifact %q, %v", i, b, err)
		}
		f.checkClean()
	}
}
