package build

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"slipway/record"
)

// The benchmarks are opt-in (go test -run '^$' -bench . ./build/). Each
// iteration is one push through the way of a push (package push), on the real
// store, git repository and bubblewrap, with one worker. They report the
// median (p50) and, as the baseline run side by side, the median time of a
// plain fork/exec of `sh -c true` on this machine.

// BenchmarkPushToStepStart measures from the call of RecordPush (git's
// receive has finished) to the first step's process running: the step
// opens a FIFO in the per-repo cache folder for writing, and the benchmark
// notes when its blocking open for reading returns.
func BenchmarkPushToStepStart(b *testing.B) {
	e := newEnv(b, "concurrency = 1", appRepo)
	e.start()
	r := e.newRepo("app")
	sha := r.pipelineCommit("refs/heads/main", "[build]\ncache = true\nsteps = [\"echo > /cache/ready\"]\n")
	cache := filepath.Join(e.data, "cache", "app", url.PathEscape("refs/heads/main"))
	if err := os.MkdirAll(cache, 0o700); err != nil {
		b.Fatal(err)
	}
	fifo := filepath.Join(cache, "ready")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var out io.Writer = io.Discard
		// Always main: every ref has its own cache, and main's holds the
		// FIFO (a new branch's first build would copy it).
		if _, err := e.handlePush(b.Context(), record.Push{Repo: "app", Refs: []record.RefUpdate{update("refs/heads/main", sha)}}, out); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(fifo) // blocks until the step opens it
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		_, _ = io.Copy(io.Discard, f)
		f.Close()
		b.StopTimer()
		if bd := e.waitFinal(int64(i + 1)); bd.State != record.StatePassed {
			b.Fatalf("build %d: %s %s", bd.ID, bd.State, bd.Reason)
		}
		b.StartTimer()
	}
	b.StopTimer()
	report(b, ds)
}

// BenchmarkNoopPushToPass measures from the call of RecordPush to the
// database recording the pass of a `steps = ["true"]` pipeline (the build's
// FinishedAt).
func BenchmarkNoopPushToPass(b *testing.B) {
	e := newEnv(b, "concurrency = 1", appRepo)
	e.start()
	r := e.newRepo("app")
	sha := r.pipelineCommit("refs/heads/main", "[build]\nsteps = [\"true\"]\n")
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := e.handlePush(b.Context(), record.Push{Repo: "app", Refs: []record.RefUpdate{update(fmt.Sprintf("refs/heads/b%d", i), sha)}}, io.Discard); err != nil {
			b.Fatal(err)
		}
		bd := e.waitFinal(int64(i + 1))
		if bd.State != record.StatePassed {
			b.Fatalf("build %d: %s %s", bd.ID, bd.State, bd.Reason)
		}
		ds = append(ds, bd.FinishedAt.Sub(t0))
	}
	b.StopTimer()
	report(b, ds)
}

// report adds the p50 of ds and of a plain fork/exec baseline measured now.
func report(b *testing.B, ds []time.Duration) {
	var base []time.Duration
	for range max(20, len(ds)) {
		t0 := time.Now()
		if err := exec.Command("/bin/sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(t0))
	}
	p50, bp50 := median(ds), median(base)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(slices.Max(ds).Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(bp50.Microseconds())/1000, "forkexec-p50-ms")
	b.ReportMetric(float64(p50)/float64(bp50), "x-forkexec")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
