package executor

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		0: "0 bytes", 1000: "1000 bytes", 4096: "4 KiB", 64 << 20: "64 MiB", 2 << 30: "2 GiB",
		9039 << 20: "9039 MiB", 83886093: "80.0 MiB (83886093 bytes)", 3221225473: "3.0 GiB (3221225473 bytes)",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDescribeLimits(t *testing.T) {
	t.Parallel()
	l := Limits{Procs: 512, FileSize: 1 << 30, Files: 4096, Memory: 9 << 30, Tmp: 2 << 30}
	got := DescribeLimits(l, 1<<30, []string{"memory: no memory cgroup the daemon may use on this host"})
	want := "in force: processes 512, file size 1 GiB, open files 4096, /tmp 2 GiB, artifacts 1 GiB; " +
		"NOT in force: memory 9 GiB (no memory cgroup the daemon may use on this host); not set: workspace"
	if got != want {
		t.Errorf("DescribeLimits:\n got %q\nwant %q", got, want)
	}
}

// Over the cap, CopyArtifacts copies no more than the cap allows, and says
// the whole size.
func TestCopyArtifactsOverCap(t *testing.T) {
	t.Parallel()
	ws, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	for _, f := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(ws, f), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := CopyArtifacts(ws, dst, []string{"."}, 2<<20+1)
	var e *ArtifactsTooLargeError
	if !errors.As(err, &e) || e.Size != 3<<20 || e.Max != 2<<20+1 || !IsArtifactsTooLarge(err) {
		t.Fatalf("3 MiB over a cap of 2 MiB + 1: %v", err)
	}
	if err.Error() != "the artifacts are 3 MiB, over the cap of 2097153 bytes" {
		t.Errorf("message %q", err)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 2 {
		t.Errorf("%d files copied before the cap was reached; want 2", len(entries))
	}
}
