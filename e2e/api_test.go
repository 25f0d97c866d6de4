package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiConfig is the web side on, on a port of its own, and two
// repositories: app public, secret not.
const apiConfig = `
[http]
listen = "127.0.0.1:0"

[[repo]]
name = "app"
public = true
read = ["*"]
write = ["alice"]

[[repo]]
name = "secret"
`

// apiGet fetches base+path without signing in and returns the status, the
// body and the headers.
func apiGet(t testing.TB, base, path string) (int, []byte, http.Header) {
	t.Helper()
	code, h, body := httpGet(t, http.DefaultClient, base+path)
	return code, []byte(body), h
}

// TestAPIServesWhatSSHShows: against the real daemon, the JSON API gives
// nobody the builds of a public repository exactly as `builds --json`
// gives them over SSH, the log byte for byte as `log --raw`, the push
// with who pushed it and the build it caused; a private repository's
// builds stay hidden; and no POST acts without signing in.
func TestAPIServesWhatSSHShows(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	d := btStartDaemon(t, configFor(apiConfig, []*user{alice}, bob))
	db := d.store(t)
	base := waDashboard(t, d)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("", `echo '<script>alert(1)</script>'`, `printf '\033[31mred\033[0m\n'`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	alice.mustGit(t, src, "push", d.url("secret"), "main")
	btFinal(t, d, db, bob, "app", id)

	ssh := mustSSH(t, d, bob, "builds", "app", "--json")
	status, body, h := apiGet(t, base, "/api/v1/builds?repo=app")
	var page struct {
		Builds     []any `json:"builds"`
		NextCursor int64 `json:"next_cursor"`
	}
	if status != 200 || h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &page) != nil {
		t.Fatalf("GET /api/v1/builds?repo=app: %d %v\n%s", status, h, body)
	}
	var viaSSH []any
	if err := json.Unmarshal([]byte(ssh), &viaSSH); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(page.Builds, viaSSH) || len(viaSSH) != 1 || page.NextCursor != 0 {
		t.Errorf("the API's builds of app:\n%s\nSSH's:\n%s", body, ssh)
	}

	raw, _, _ := d.ssh(bob, "log", strconv.FormatInt(id, 10), "--raw")
	status, body, h = apiGet(t, base, fmt.Sprintf("/api/v1/builds/%d/log", id))
	if status != 200 || string(body) != raw || !strings.Contains(raw, "<script>alert(1)</script>") ||
		h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Slipway-State") != "passed" {
		t.Errorf("GET the log: %d %v\n%q\nlog --raw:\n%q", status, h, body, raw)
	}

	var pushes struct {
		Pushes []struct {
			ID             int64  `json:"id"`
			User           string `json:"user"`
			KeyFingerprint string `json:"key_fingerprint"`
		} `json:"pushes"`
	}
	status, body, _ = apiGet(t, base, "/api/v1/pushes?repo=app")
	if json.Unmarshal(body, &pushes) != nil || status != 200 || len(pushes.Pushes) != 1 || pushes.Pushes[0].User != "alice" ||
		!strings.HasPrefix(pushes.Pushes[0].KeyFingerprint, "SHA256:") {
		t.Fatalf("GET /api/v1/pushes?repo=app: %d %s", status, body)
	}
	var push struct {
		Builds []struct{ ID int64 } `json:"builds"`
	}
	status, body, _ = apiGet(t, base, fmt.Sprintf("/api/v1/pushes/%d", pushes.Pushes[0].ID))
	if json.Unmarshal(body, &push) != nil || status != 200 || len(push.Builds) != 1 || push.Builds[0].ID != id {
		t.Errorf("GET the push: %d %s", status, body)
	}

	// secret's builds exist, and nobody sees them.
	if bs, _ := db.ListBuilds(t.Context(), "secret", 0); len(bs) != 1 {
		t.Fatalf("secret has %d builds, want 1", len(bs))
	}
	if status, body, _ := apiGet(t, base, "/api/v1/builds?repo=secret"); status != 404 || !strings.Contains(string(body), `repository \"secret\" not found`) {
		t.Errorf("GET secret's builds: %d %s", status, body)
	}
	if status, body, _ := apiGet(t, base, "/api/v1/builds"); status != 200 || strings.Contains(string(body), "secret") {
		t.Errorf("GET every build: %d %s", status, body)
	}

	// Without signing in, no POST acts.
	resp, err := http.Post(base+fmt.Sprintf("/api/v1/builds/%d/retry", id), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("POST retry without signing in: %d", resp.StatusCode)
	}
	if bs, _ := db.ListBuilds(t.Context(), "app", 0); len(bs) != 1 {
		t.Errorf("app has %d builds after a refused retry", len(bs))
	}
}

// BenchmarkAPIBuildListVsSSH measures, against the real daemon (built
// without the race detector) holding 100,000 builds across 100 public
// repositories, one repository's 50 newest builds as a user's shell gets
// them: `curl` of the JSON API beside `ssh HOST builds REPO --limit 50
// --json`, one process and one connection each, taking turns; and the
// API from a client that keeps its connection (Go's). It reports p50 and
// p90 and the ratio of curl to ssh:
//
//	go test -run '^$' -bench APIBuildListVsSSH -benchtime 100x ./e2e
func BenchmarkAPIBuildListVsSSH(b *testing.B) {
	bin := mustReleaseBin(b)
	u := newUser(b, "bench")
	var repos strings.Builder
	repos.WriteString("[http]\nlisten = \"127.0.0.1:0\"\n")
	for i := range 100 {
		fmt.Fprintf(&repos, "[[repo]]\nname = \"app%02d\"\npublic = true\nread = [\"*\"]\n", i)
	}
	d := startDaemonBin(b, bin, configFor(repos.String(), nil, u))
	base := waDashboard(b, d)

	// 100,000 builds in one INSERT, into the database the daemon has open.
	db, err := sql.Open("sqlite", filepath.Join(d.dataDir(), "slipway.db"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := db.Exec(`
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
		INSERT INTO builds (id, repo, ref, commit_id, trigger, pipeline, state, created_at, started_at, finished_at, attempt, steps)
		SELECT i, printf('app%02d', i % 100), 'refs/heads/' || (CASE (i / 100) % 5 WHEN 0 THEN 'main' ELSE 'feature-' || ((i / 100) % 5) END),
			printf('%040x', i), 'manual', 'build', CASE i % 7 WHEN 0 THEN 'failed' ELSE 'passed' END,
			1764000000000000000 + i * 60000000000, 1764000000000000000 + i * 60000000000 + 1000000000,
			1764000000000000000 + i * 60000000000 + 31000000000, 1,
			'[{"name":"go vet ./...","exit_code":0,"duration_ns":1200000000},{"name":"go test ./...","exit_code":0,"duration_ns":25000000000}]'
		FROM n`); err != nil {
		b.Fatal(err)
	}
	db.Close()
	b.Logf("100,000 builds recorded in %v", time.Since(start).Round(time.Millisecond))

	host, port, _ := strings.Cut(d.addr, ":")
	sshArgs := append(u.sshArgs(), "-p", port, "git@"+host)
	timed := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = u.env()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		took := time.Since(t0)
		if err != nil || !json.Valid(out.Bytes()) || out.Len() < 1000 {
			b.Fatalf("%s %v: %v (%d bytes) %s", name, args, err, out.Len(), errb.String())
		}
		return took
	}
	client := &http.Client{}
	keepAlive := func(path string) time.Duration {
		t0 := time.Now()
		resp, err := client.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		if resp.StatusCode != 200 || n < 100 {
			b.Fatalf("GET %s: %d, %d bytes", path, resp.StatusCode, n)
		}
		return took
	}
	kinds := []string{"ssh builds REPO --limit 50 --json", "curl /api/v1/builds?repo=REPO&limit=50",
		"curl ...&branch=main", "Go client, kept connection, ?repo", "Go client, kept connection, builds/{id}"}
	b.Run("turns", func(b *testing.B) {
		samples := make([][]time.Duration, len(kinds))
		for i := range b.N {
			repo := fmt.Sprintf("app%02d", (i*37)%100)
			q := "/api/v1/builds?limit=50&repo=" + repo
			samples[0] = append(samples[0], timed("ssh", append(slices.Clone(sshArgs), "builds", repo, "--limit", "50", "--json")...))
			samples[1] = append(samples[1], timed("curl", "-sf", base+q))
			samples[2] = append(samples[2], timed("curl", "-sf", base+q+"&branch=main"))
			samples[3] = append(samples[3], keepAlive(q))
			samples[4] = append(samples[4], keepAlive(fmt.Sprintf("/api/v1/builds/%d", 1+(i*7919)%100000)))
		}
		b.StopTimer()
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		for k, name := range kinds {
			p50, p90 := percentile(samples[k], 50), percentile(samples[k], 90)
			b.Logf("%-42s p50 %7.2f ms  p90 %7.2f ms  (p50 %.2fx ssh's)", name, ms(p50), ms(p90), float64(p50)/float64(percentile(samples[0], 50)))
		}
		b.ReportMetric(ms(percentile(samples[0], 50)), "ssh-p50-ms")
		b.ReportMetric(ms(percentile(samples[1], 50)), "curl-p50-ms")
		b.ReportMetric(ms(percentile(samples[3], 50)), "api-p50-ms")
		b.ReportMetric(float64(percentile(samples[1], 50))/float64(percentile(samples[0], 50)), "curl/ssh")
	})
}
