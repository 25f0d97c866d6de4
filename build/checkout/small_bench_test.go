package checkout

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkCheckoutSmall times Checkout of a small project (a handful of
// files: what most pushes build), which is written in-process, against the
// git path it takes for large trees, side by side.
func BenchmarkCheckoutSmall(b *testing.B) {
	src := b.TempDir()
	run(b, src, "git", "init", "-q", "-b", "main")
	for i, name := range []string{"README", "main.go", "go.mod", "lib/a.go", "lib/b.go", ".slipway.toml"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat("x", 100*(i+1))), 0o644)
	}
	run(b, src, "git", "add", "-A")
	run(b, src, "git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "x")
	head := strings.TrimSpace(run(b, src, "git", "rev-parse", "HEAD"))
	gitDir := filepath.Join(src, ".git")
	var git, small time.Duration
	for i := 0; b.Loop(); i++ {
		d1, d2 := filepath.Join(b.TempDir(), "a"), filepath.Join(b.TempDir(), "b")
		os.Mkdir(d1, 0o755)
		os.Mkdir(d2, 0o755)
		t0 := time.Now()
		if _, err := checkoutGit(context.Background(), gitDir, head, d1, benchOptions.MaxFileBytes); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := Checkout(context.Background(), gitDir, head, d2, benchOptions); err != nil {
			b.Fatal(err)
		}
		git += t1.Sub(t0)
		small += time.Since(t1)
	}
	b.ReportMetric(float64(git.Microseconds())/float64(b.N)/1000, "git-ms")
	b.ReportMetric(float64(small.Microseconds())/float64(b.N)/1000, "checkout-ms")
}
