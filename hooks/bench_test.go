package hooks

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Benchmarks are opt-in (go test -bench .) and best run without -race.

// BenchmarkHookClient measures one `slipway hook` call as git makes it: a
// process exec of the binary (here the test binary, which links the same
// store and configs packages as slipway) that talks to a live daemon. The
// baseline is an exec of the same binary that exits at once, so the
// difference is the client's own work: reading stdin, one round trip over
// the socket, the daemon's answer (for post-receive: a durable SQLite commit).
// With SLIPWAY_BIN set to a built slipway binary, that binary is measured
// too, against `slipway version` as its baseline.
func BenchmarkHookClient(b *testing.B) {
	e := newBenchEnv(b)
	repo := e.bareRepo("app")
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	line := zero + " " + strings.Repeat("1", 40) + " refs/heads/main\n"
	run := func(b *testing.B, bin string, args ...string) {
		for b.Loop() {
			cmd := exec.Command(bin, args...)
			cmd.Dir = repo
			cmd.Env = []string{EnvPushToken + "=" + e.token("app", "alice"), "GIT_DIR=."}
			cmd.Stdin = strings.NewReader(line)
			if out, err := cmd.CombinedOutput(); err != nil && args[0] == "hook" {
				b.Fatalf("%v: %s", err, out)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/call")
	}
	b.Run("test-binary/baseline-exec", func(b *testing.B) { run(b, exe, "-test.run=^$", "-test.count=0") })
	b.Run("test-binary/pre-receive", func(b *testing.B) { run(b, exe, "hook", "--socket", e.socket, PreReceive) })
	b.Run("test-binary/post-receive", func(b *testing.B) { run(b, exe, "hook", "--socket", e.socket, PostReceive) })
	if bin := os.Getenv("SLIPWAY_BIN"); bin != "" {
		b.Run("slipway/baseline-version", func(b *testing.B) { run(b, bin, "version") })
		b.Run("slipway/pre-receive", func(b *testing.B) { run(b, bin, "hook", "--socket", e.socket, PreReceive) })
		b.Run("slipway/post-receive", func(b *testing.B) { run(b, bin, "hook", "--socket", e.socket, PostReceive) })
	}
}

// BenchmarkPostReceive1500Refs is a mirror push's post-receive through the
// socket, in process: encode, send, decode and validate 1,500 refs, record
// them in one transaction, answer.
func BenchmarkPostReceive1500Refs(b *testing.B) {
	e := newBenchEnv(b)
	repo := e.bareRepo("app")
	var in strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&in, "%s %s refs/heads/b%04d\n", zero, strings.Repeat("1", 40), i)
	}
	input := in.String()
	env := []string{"GIT_DIR=" + repo, EnvPushToken + "=" + e.token("app", "admin")}
	for b.Loop() {
		if code := RunClient(b.Context(), PostReceive, e.socket, strings.NewReader(input), io.Discard, env); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/push")
}

// BenchmarkMirrorPush1500Refs is `git push --mirror` of 1,500 refs into an
// empty bare repository with Slipway's hooks (pre-receive policy and the
// post-receive record), side by side with the same push into a repository
// without hooks.
func BenchmarkMirrorPush1500Refs(b *testing.B) {
	e := newBenchEnv(b)
	work := e.workRepo()
	e.createRefs(work, 999, 500)
	n := 0
	var plain, hooked time.Duration
	for b.Loop() {
		n++
		for _, withHooks := range []bool{false, true} {
			name := fmt.Sprintf("r%d-%v", n, withHooks)
			repo := e.bareRepo(name)
			if !withHooks {
				e.git(repo, "config", "--unset", "core.hooksPath")
			}
			start := time.Now()
			out, err := e.push(work, e.token(name, "admin"), "--mirror", repo)
			d := time.Since(start)
			if err != nil {
				b.Fatalf("push: %v\n%s", err, out)
			}
			if withHooks {
				hooked += d
			} else {
				plain += d
			}
			os.RemoveAll(repo)
		}
	}
	b.ReportMetric(float64(plain.Microseconds())/1000/float64(n), "ms/plain")
	b.ReportMetric(float64(hooked.Microseconds())/1000/float64(n), "ms/slipway")
	b.ReportMetric(float64(hooked)/float64(plain), "ratio")
}

func newBenchEnv(b *testing.B) *testEnv { return newEnv(b) }
