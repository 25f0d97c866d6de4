package logs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/metrics"
	"slipway/metrics/metricstest"
)

// TestMetricsCountTheBytesOnDisk: the bytes counted are the bytes in the
// log files, by kind of log, and the output a cap discarded is counted as
// the log's last line says.
func TestMetricsCountTheBytesOnDisk(t *testing.T) {
	t.Parallel()
	cfg, err := configs.Loader{}.Parse(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := NewStoreWith(dir, Options{Metrics: m})

	build, err := s.Create("12", 4096, []string{"hunter2"})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		mustWrite(t, build, "a line of output with hunter2 in it\n")
	}
	build.Printf("== failed")
	if err := build.Close(); err != nil {
		t.Fatal(err)
	}
	deploy, err := s.Create("deploy-3", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, deploy, "rsync ...\n")
	deploy.Printf("== deployment #3 succeeded")
	if err := deploy.Close(); err != nil {
		t.Fatal(err)
	}
	// A build that runs again continues its log: counted too.
	again, err := s.Append("12", 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	again.Printf("== running again")
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}

	size := func(name string) float64 {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return float64(st.Size())
	}
	f := metricstest.Gather(t, m.Gatherer())
	if got, want := value(t, f, "slipway_log_bytes_total", "kind", "build"), size("12.log"); got != want {
		t.Errorf("build log bytes counted %v, on disk %v", got, want)
	}
	if got, want := value(t, f, "slipway_log_bytes_total", "kind", "deployment"), size("deploy-3.log"); got != want {
		t.Errorf("deployment log bytes counted %v, on disk %v", got, want)
	}
	log := readLog(t, s, "12")
	said := regexp.MustCompile(`log truncated at 4 KiB; (\d+) more bytes discarded`).FindStringSubmatch(log)
	if said == nil {
		t.Fatalf("the log does not say what it discarded:\n%s", log[strings.LastIndex(log[:len(log)-1], "\n")+1:])
	}
	n, _ := strconv.ParseFloat(said[1], 64)
	if got := value(t, f, "slipway_log_discarded_bytes_total", "kind", "build"); got != n || n == 0 {
		t.Errorf("discarded bytes counted %v, the log says %v", got, n)
	}
	if _, ok := f.Value("slipway_log_discarded_bytes_total", "kind", "deployment"); ok {
		t.Error("a deployment log that was not cut has discarded bytes")
	}
}

func value(t *testing.T, f metricstest.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}
