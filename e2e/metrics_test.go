package e2e

// End-to-end tests of /metrics (issue 14) against the real binary: a real
// push, build and deployment, then what a Prometheus scraper reads.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"slipway/metrics/metricstest"
)

// mtGet fetches url with the given Authorization header ("" for none).
func mtGet(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	var hdr []string
	if auth != "" {
		hdr = []string{"Authorization", auth}
	}
	return httpGet(t, &http.Client{Timeout: 30 * time.Second}, url, hdr...)
}

// mtScrape reads /metrics as Prometheus does, with the token.
func mtScrape(t *testing.T, base, token string) metricstest.Families {
	t.Helper()
	code, h, body := mtGet(t, base+"/metrics", "Bearer "+token)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics with the token: %d %s\n%s", code, h.Get("Content-Type"), body)
	}
	return metricstest.Parse(t, strings.NewReader(body))
}

// TestMetricsAfterAPushBuildAndDeployment: after a real push, clone,
// passing build and automatic deployment, /metrics (with the token of
// [http] metrics_token_file) shows each with its labels, the build log's
// bytes as they are on disk, and passes Prometheus' lint; without the
// token or with another it is 401; a reload reads the token file again.
func TestMetricsAfterAPushBuildAndDeployment(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	dir := t.TempDir()
	const token, rotated = "7f3e9a1c5b2d8e4f6a0c7e1b3d5f9a2c", "0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a"
	tokenFile := filepath.Join(dir, "metrics-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "staging")
	d := btStartDaemon(t, configFor(btRepoConfig+fmt.Sprintf(`
  [[repo.environment]]
  name = "staging"
  target = %q
  auto = "main"

[http]
listen = "127.0.0.1:0"
metrics_token_file = %q
`, staging, tokenFile), []*user{alice}, bob))
	base := waDashboard(t, d)
	db := d.store(t)

	for _, c := range []struct{ name, auth, why string }{
		{"no token", "", "/metrics needs the bearer token of [http] metrics_token_file"},
		{"another token", "Bearer " + rotated, "the bearer token is not the one in [http] metrics_token_file"},
	} {
		code, h, body := mtGet(t, base+"/metrics", c.auth)
		if code != http.StatusUnauthorized || !strings.Contains(body, c.why) || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET /metrics, %s: %d %v\n%s", c.name, code, h, body)
		}
	}

	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("artifacts = [\"dist/\"]\n", "mkdir dist && echo mt-built > dist/index.html"),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	btPassed(t, d, db, alice, "app", id, "the build")
	bob.mustGit(t, t.TempDir(), "clone", "-q", d.url("app"), "clone")
	// The auto deployment follows the build: wait for it as a scraper
	// would see it.
	d.eventually(t, btBuildTimeout, "the deployment to staging to show in /metrics", func() bool {
		_, ok := mtScrape(t, base, token).Value("slipway_deployments_total", "repo", "app", "env", "staging", "state", "succeeded")
		return ok
	})

	began := time.Now()
	f := mtScrape(t, base, token)
	scrapeTook := time.Since(began)
	logFile, err := os.Stat(filepath.Join(d.dataDir(), "logs", fmt.Sprint(id)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"slipway_pushes_total", []string{"repo", "app"}, 1},
		{"slipway_git_operation_duration_seconds", []string{"kind", "push", "result", "ok"}, 1},
		{"slipway_git_operation_duration_seconds", []string{"kind", "fetch", "result", "ok"}, 1},
		{"slipway_builds_total", []string{"repo", "app", "state", "passed"}, 1},
		{"slipway_build_duration_seconds", []string{"state", "passed"}, 1},
		{"slipway_build_queue_wait_seconds", []string{"trigger", "push"}, 1},
		{"slipway_builds_queued", nil, 0},
		{"slipway_builds_running", nil, 0},
		{"slipway_deployments_total", []string{"repo", "app", "env", "staging", "state", "succeeded"}, 1},
		{"slipway_deployment_duration_seconds", []string{"env", "staging", "state", "succeeded"}, 1},
		{"slipway_log_bytes_total", []string{"kind", "build"}, float64(logFile.Size())},
	} {
		if got, ok := f.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Every ssh of the test: the push, the clone, and the builds and log
	// commands btFinal ran.
	accepted, _ := f.Value("slipway_ssh_connections_total", "stage", "accepted")
	authed, _ := f.Value("slipway_ssh_connections_total", "stage", "authenticated")
	if authed < 4 || accepted < authed {
		t.Errorf("ssh connections: %v accepted, %v authenticated; want at least 4 authenticated, and no more than accepted", accepted, authed)
	}
	if _, ok := f.Value("slipway_ssh_connections", "state", "preauth"); !ok {
		t.Error("no gauge of pre-auth connections")
	}
	if n, ok := f.Value("slipway_log_bytes_total", "kind", "deployment"); !ok || n == 0 {
		t.Errorf("deployment log bytes: %v %v", n, ok)
	}
	if mem, _ := f.Value("process_resident_memory_bytes"); mem <= 0 {
		t.Errorf("process_resident_memory_bytes = %v", mem)
	}
	sum := func(name string, labels ...string) float64 { v, _ := f.Sum(name, labels...); return v }
	t.Logf("one scrape: %d families in %v; build ran %.3f s after waiting %.3f s in the queue; deployment %.3f s; push %.3f s, clone %.3f s; build log %d bytes",
		len(f), scrapeTook.Round(time.Millisecond), sum("slipway_build_duration_seconds", "state", "passed"),
		sum("slipway_build_queue_wait_seconds", "trigger", "push"),
		sum("slipway_deployment_duration_seconds", "env", "staging", "state", "succeeded"),
		sum("slipway_git_operation_duration_seconds", "kind", "push", "result", "ok"),
		sum("slipway_git_operation_duration_seconds", "kind", "fetch", "result", "ok"), logFile.Size())
	var fams []*dto.MetricFamily
	for _, fam := range f {
		fams = append(fams, fam)
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint of what the daemon serves: %s: %s", p.Metric, p.Text)
	}

	// A reload reads the token file again.
	if err := os.WriteFile(tokenFile, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSSH(t, d, alice, "reload")
	if code, _, _ := mtGet(t, base+"/metrics", "Bearer "+token); code != http.StatusUnauthorized {
		t.Errorf("the old token after a reload: %d", code)
	}
	if n, _ := mtScrape(t, base, rotated).Value("slipway_pushes_total", "repo", "app"); n != 1 {
		t.Errorf("with the rotated token: pushes %v", n)
	}
}

// TestMetricsOffWithoutTokenFile: with the web side on and no
// metrics_token_file there is no /metrics, token or not.
func TestMetricsOffWithoutTokenFile(t *testing.T) {
	t.Parallel()
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor(btRepoConfig+"\n[http]\nlisten = \"127.0.0.1:0\"\n", []*user{alice}))
	base := waDashboard(t, d)
	for _, auth := range []string{"", "Bearer 7f3e9a1c5b2d8e4f6a0c7e1b3d5f9a2c"} {
		code, h, body := mtGet(t, base+"/metrics", auth)
		if code != http.StatusNotFound || strings.Contains(body, "slipway_") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("GET /metrics (auth %q) without metrics_token_file: %d %v\n%s", auth, code, h, body)
		}
	}
	if code, _, _ := mtGet(t, base+"/", ""); code != http.StatusOK {
		t.Errorf("the dashboard itself: %d", code)
	}
}
