package sandbox

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkSandboxStart times the `true` step in bubblewrap (without and
// with rlimits) side by side with the same step as a plain process (None),
// taking turns, and reports the medians and the sandbox's overhead. Run with
// at least -benchtime=20x so each median has 20 samples.
func BenchmarkSandboxStart(b *testing.B) {
	ws := b.TempDir()
	searchable(b, ws)
	ctx := context.Background()
	bw := &Bwrap{UID: buildUID, GID: buildUID}
	etc := filepath.Join(b.TempDir(), "etc")
	searchable(b, filepath.Dir(etc))
	if err := PrepareEtc(etc); err != nil {
		b.Fatal(err)
	}
	bwEtc := &Bwrap{UID: buildUID, GID: buildUID, EtcDir: etc}
	env := []string{"PATH=/usr/bin:/bin"}
	runners := []struct {
		name string
		r    Runner
		l    Limits
	}{
		{"plain", None{}, Limits{}},
		{"bwrap", bw, Limits{}},
		{"bwrap-rlimits", bw, Limits{Procs: 256, FileSize: 1 << 30, Files: 1024}},
		// What the daemon runs: one /etc mount (PrepareEtc), rlimits and
		// a sized /tmp.
		{"bwrap-etcdir-rlimits", bwEtc, Limits{Procs: 256, FileSize: 1 << 30, Files: 1024, Tmp: 2 << 30}},
	}
	samples := make([][]time.Duration, len(runners))
	for i := 0; b.Loop(); i++ {
		for k := range runners {
			k := (k + i) % len(runners)
			start := time.Now()
			res, err := runners[k].r.Run(ctx, Spec{Workspace: ws, Env: env, Limits: runners[k].l}, "true")
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("%s: %v, exit %d", runners[k].name, err, res.ExitCode)
			}
			samples[k] = append(samples[k], time.Since(start))
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	plain := median(samples[0])
	b.ReportMetric(ms(plain), "plain-median-ms")
	for k := 1; k < len(runners); k++ {
		m := median(samples[k])
		b.ReportMetric(ms(m), runners[k].name+"-median-ms")
		b.ReportMetric(ms(m-plain), runners[k].name+"-overhead-ms")
	}
	b.ReportMetric(float64(len(samples[0])), "samples")
}

// BenchmarkPrepareEtc times the copy of the host's /etc that every daemon
// start makes (both copies: with and without network), and reports how
// many symlinks it holds, which is what costs.
func BenchmarkPrepareEtc(b *testing.B) {
	etc := filepath.Join(b.TempDir(), "etc")
	for b.Loop() {
		if err := PrepareEtc(etc); err != nil {
			b.Fatal(err)
		}
	}
	links := 0
	_ = filepath.WalkDir(filepath.Dir(etc), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink != 0 {
			links++
		}
		return nil
	})
	b.ReportMetric(float64(links), "links")
}
