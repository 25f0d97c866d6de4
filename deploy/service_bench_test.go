package deploy

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// BenchmarkReleaseSmallArtifact measures a release of a small artifact set
// (20 files, 1 changed per release) to a real sshd on loopback, the way a
// push to refs/release/prod goes once git has accepted it: the gate, the
// push recorded with its deployment, a worker woken, the transfer with
// --link-dest, the switch, prune, and the outcome recorded (Wait returns).
// The target for the whole push, git included, is 1.5 s.
//
// The baseline, "ship", is Shipper.Ship of the same artifacts to the same
// kind of target alone: the difference is the service's own cost.
//
//	go test -run '^$' -bench ReleaseSmallArtifact -benchtime 20x ./deploy/
func BenchmarkReleaseSmallArtifact(b *testing.B) {
	files := func(i int) map[string]string {
		m := map[string]string{}
		for f := range 20 {
			m["bin/f"+strconv.Itoa(f)] = "content of file " + strconv.Itoa(f)
		}
		m["bin/f0"] = "changed in " + strconv.Itoa(i)
		return m
	}

	b.Run("service", func(b *testing.B) {
		srv := sshdtest.New(b)
		dir := b.TempDir()
		h := newHarness(b, 1,
			localEnv("staging", filepath.Join(dir, "staging"), ""),
			remoteEnv("prod", srv, filepath.Join(dir, "prod"), ""))
		if err := h.svc.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = h.svc.Shutdown(ctx)
		})
		i := 0
		var running, total time.Duration
		for b.Loop() {
			b.StopTimer()
			i++
			bd, _ := h.passedBuild("refs/heads/main", files(i))
			b.StartTimer()
			start := time.Now()
			d, err := h.release("bob", "prod", bd.Commit)
			if err != nil {
				b.Fatal(err)
			}
			got, err := h.svc.Wait(b.Context(), d.ID)
			if err != nil || got.State != record.DeploySucceeded {
				b.Fatalf("deployment %d: %s %s %v", d.ID, got.State, got.Reason, err)
			}
			total += time.Since(start)
			running += got.FinishedAt.Sub(got.StartedAt)
		}
		// What the service adds around the worker's run: gate, recording,
		// queue latency, Wait noticing the end.
		b.ReportMetric(float64((total-running).Microseconds())/1000/float64(i), "overhead-ms/op")
	})

	b.Run("ship", func(b *testing.B) {
		srv := sshdtest.New(b)
		tg := Target{User: srv.User, Host: srv.Host, Port: srv.Port, Path: filepath.Join(b.TempDir(), "prod"),
			KeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile}
		src := b.TempDir()
		s := &Shipper{}
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			writeFiles(b, src, files(i))
			b.StartTimer()
			if _, err := s.Ship(b.Context(), Request{Target: tg, Source: src, Release: "r" + strconv.Itoa(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
