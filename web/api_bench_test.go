package web

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"slipway/build/logs"
	"slipway/build/schedule"
	"slipway/configs"
	"slipway/console"
	"slipway/gitserver"
	"slipway/store"
	"slipway/views"
)

// benchRepos and benchBuilds are the scale: 100,000 builds across
// 100 repositories.
const (
	benchRepos  = 100
	benchBuilds = 100_000
)

// benchWorld is a store of benchBuilds builds, filled with one INSERT (a
// daemon would need 100,000 pushes), and the read model over it.
func benchWorld(b *testing.B) (*views.Service, configs.Source) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "slipway.db")
	st, err := store.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	// Five branches per repository, every state, three steps each; ids
	// in time order, the repositories interleaved as pushes come.
	_, err = db.Exec(`
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO builds (id, repo, ref, commit_id, trigger, schedule, pipeline, state, reason,
			created_at, started_at, finished_at, attempt, steps, worker)
		SELECT i, printf('app%02d', i % ?), 'refs/heads/' || (CASE (i / ?) % 5 WHEN 0 THEN 'main' ELSE 'feature-' || ((i / ?) % 5) END),
			printf('%040x', i), CASE WHEN i % 10 = 0 THEN 'schedule' ELSE 'manual' END, CASE WHEN i % 10 = 0 THEN 'nightly' ELSE '' END,
			'build', CASE i % 7 WHEN 0 THEN 'failed' WHEN 1 THEN 'superseded' WHEN 2 THEN 'cancelled' ELSE 'passed' END,
			CASE i % 7 WHEN 0 THEN 'step 2 (go test ./...) exited 1' ELSE '' END,
			1764000000000000000 + i * 60000000000, 1764000000000000000 + i * 60000000000 + 1000000000,
			1764000000000000000 + i * 60000000000 + 31000000000, 1,
			'[{"name":"go vet ./...","exit_code":0,"duration_ns":1200000000},{"name":"go test ./...","exit_code":0,"duration_ns":25000000000},{"name":"go build ./...","exit_code":0,"duration_ns":4000000000}]',
			'w1'
		FROM n`, benchBuilds, benchRepos, benchRepos, benchRepos)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d builds across %d repositories recorded in %v", benchBuilds, benchRepos, time.Since(start).Round(time.Millisecond))
	var toml strings.Builder
	toml.WriteString("[[user]]\nname = \"reader\"\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHVGCVEtr5qxn1dYi/5xpqoXWVgHqsmnZ0Dwt0eBXYT a\"]\n")
	for i := range benchRepos {
		fmt.Fprintf(&toml, "[[repo]]\nname = \"app%02d\"\nread = [\"reader\"]\n", i)
	}
	cfg, err := configs.Parse([]byte(toml.String()), "bench.toml")
	if err != nil {
		b.Fatal(err)
	}
	// The real scheduler (no schedule is configured) and log store, so
	// that the pages do all they do in the daemon.
	sched, err := schedule.New(schedule.Options{Config: cfg, Store: st, ReposDir: filepath.Join(dir, "repos")})
	if err != nil {
		b.Fatal(err)
	}
	v, err := views.New(views.Options{Config: cfg, Records: st, Repos: gitserver.Disk{ReposDir: filepath.Join(dir, "repos")},
		Schedules: sched, Logs: logs.NewStore(filepath.Join(dir, "logs"))})
	if err != nil {
		b.Fatal(err)
	}
	return v, cfg
}

// BenchmarkAPIBuildList measures, with 100,000 builds across 100
// repositories, the JSON API's answers (one repository's builds, one
// branch of them, a build by id; over HTTP on loopback, and the
// repository's builds also in the handler alone) and the dashboard's
// repository and build pages, side by side with the
// SSH command `builds REPO --limit 50 --json` run by the console into
// memory (the server's side of it: the baseline), taking turns, and
// reports each one's p50 and p90 and its ratio to SSH:
//
//	go test -run '^$' -bench APIBuildList -benchtime 300x ./web
func BenchmarkAPIBuildList(b *testing.B) {
	v, cfg := benchWorld(b)
	s, err := New(Options{Config: cfg, Views: v})
	if err != nil {
		b.Fatal(err)
	}
	s.viewerFor = func(*http.Request) viewer { return viewer{User: "reader", Scope: configs.Admin} }
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	client := srv.Client()
	ssh := console.Commands(console.Options{Views: v})["builds"]

	get := func(path string) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < 100 {
			b.Fatalf("GET %s: %d, %d bytes", path, resp.StatusCode, n)
		}
	}
	handler := func(path string) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || rec.Body.Len() < 100 {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
	}
	var out, errb bytes.Buffer
	runSSH := func(repo string) {
		out.Reset()
		if code := ssh.Run(context.Background(), gitserver.Caller{User: "reader"}, []string{repo, "--limit", "50", "--json"}, &out, &errb); code != 0 || out.Len() < 100 {
			b.Fatalf("builds %s --json: exit %d: %s", repo, code, errb.String())
		}
	}
	kinds := []string{"API builds?repo, over HTTP", "API builds?repo&branch, over HTTP", "API builds/{id}, over HTTP",
		"API builds?repo, handler only", "SSH builds REPO --json, console only",
		"repository page /REPO, over HTTP", "build page /builds/{id}, over HTTP"}
	const base = 4
	b.Run("turns", func(b *testing.B) {
		samples := make([][]time.Duration, len(kinds))
		rng := rand.New(rand.NewPCG(1, 2))
		for range b.N {
			repo := fmt.Sprintf("app%02d", rng.IntN(benchRepos))
			id := 1 + rng.IntN(benchBuilds)
			ops := []func(){
				func() { get("/api/v1/builds?limit=50&repo=" + repo) },
				func() { get("/api/v1/builds?limit=50&branch=main&repo=" + repo) },
				func() { get(fmt.Sprintf("/api/v1/builds/%d", id)) },
				func() { handler("/api/v1/builds?limit=50&repo=" + repo) },
				func() { runSSH(repo) },
				func() { get("/" + repo) },
				func() { get(fmt.Sprintf("/builds/%d", id)) },
			}
			for k, op := range ops {
				t0 := time.Now()
				op()
				samples[k] = append(samples[k], time.Since(t0))
			}
		}
		b.StopTimer()
		p := func(k int, q float64) time.Duration {
			s := slices.Clone(samples[k])
			slices.Sort(s)
			return s[int(q*float64(len(s)-1))]
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		for k, name := range kinds {
			b.Logf("%-38s p50 %6.2f ms  p90 %6.2f ms  (p50 %.2fx SSH's)", name, ms(p(k, .5)), ms(p(k, .9)), float64(p(k, .5))/float64(p(base, .5)))
		}
		b.ReportMetric(ms(p(0, .5)), "api-repo-p50-ms")
		b.ReportMetric(ms(p(1, .5)), "api-branch-p50-ms")
		b.ReportMetric(ms(p(2, .5)), "api-id-p50-ms")
		b.ReportMetric(ms(p(base, .5)), "ssh-repo-p50-ms")
		b.ReportMetric(float64(p(3, .5))/float64(p(base, .5)), "handler/ssh")
		b.ReportMetric(ms(p(5, .5)), "repo-page-p50-ms")
		b.ReportMetric(ms(p(6, .5)), "build-page-p50-ms")
	})
}
