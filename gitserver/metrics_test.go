package gitserver

import (
	"testing"
	"time"

	"slipway/configs"
	"slipway/internal/testutil"
	"slipway/metrics"
	"slipway/metrics/metricstest"
)

// TestMetricsCountConnectionsAndGitOperations: real ssh and git clients
// against the server, and what /metrics would show of them: connections
// by stage, refusals, git operations by kind and result with their
// durations, and the open connections read at scrape time.
func TestMetricsCountConnectionsAndGitOperations(t *testing.T) {
	t.Parallel()
	cfg, err := configs.Loader{}.Parse([]byte("[[repo]]\nname = \"app\""), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, serverOpt{sshTOML: "max_sessions = 2", metrics: m})
	if err := m.WatchSSH(ts.srv.Connections); err != nil {
		t.Fatal(err)
	}
	gather := func() metricstest.Families { return metricstest.Gather(t, m.Gatherer()) }

	// A push, a clone and an archive of a ref that does not exist: three
	// git operations, the last one failed by git itself.
	alice := ts.gitEnv("alice")
	work := newWork(t, alice, "one")
	start := time.Now()
	must(t, work, alice, "git", "push", "-q", ts.url("app"), "main")
	must(t, t.TempDir(), ts.gitEnv("bob"), "git", "clone", "-q", ts.url("app"), "clone")
	took := time.Since(start)
	if r := run(t, work, ts.gitEnv("bob"), "", "git", "archive", "--remote="+ts.url("app"), "no-such-ref"); r.code == 0 {
		t.Fatal("archive of a ref that does not exist succeeded")
	}
	// Refused before any git runs: not a git operation.
	if r := run(t, "", ts.gitEnv("bob"), "", "git", "ls-remote", ts.url("secret")); r.code == 0 {
		t.Fatal("bob listed secret")
	}
	f := gather()
	for _, c := range []struct {
		kind, result string
	}{{"push", "ok"}, {"fetch", "ok"}, {"archive", "failed"}} {
		if n, ok := f.Value("slipway_git_operation_duration_seconds", "kind", c.kind, "result", c.result); !ok || n != 1 {
			t.Errorf("git operations %s %s: %v (present %v), want 1", c.kind, c.result, n, ok)
		}
	}
	if n := f.Series("slipway_git_operation_duration_seconds"); n != 3 {
		t.Errorf("%d git operation series, want 3", n)
	}
	push, _ := f.Sum("slipway_git_operation_duration_seconds", "kind", "push", "result", "ok")
	fetch, _ := f.Sum("slipway_git_operation_duration_seconds", "kind", "fetch", "result", "ok")
	if push <= 0 || fetch <= 0 || push+fetch > took.Seconds() {
		t.Errorf("git durations push %.3fs + fetch %.3fs, measured around them %.3fs", push, fetch, took.Seconds())
	}

	// An unknown key: let in, then closed by the client before it
	// authenticated.
	ts.keys["mallory"] = keygen(t, t.TempDir(), "mallory")
	if r := ts.ssh("mallory", "", "whoami"); r.code != 255 {
		t.Fatalf("mallory: exit %d", r.code)
	}
	testutil.Eventually(t, 10*time.Second, "mallory's connection counted as failed", func() bool {
		n, _ := gather().Value("slipway_ssh_connections_refused_total", "reason", "failed")
		return n == 1
	})

	// Two connections held open fill max_sessions; a third is let in to
	// read why; a silent TCP connection is still authenticating.
	for _, u := range []string{"alice", "bob"} {
		c, err := ts.dial(u)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if r := ts.ssh("carol", "", "whoami"); r.code != 1 {
		t.Fatalf("carol over max_sessions: exit %d %q", r.code, r.stderr)
	}
	raw := ts.connect(t, "", false)
	if !raw.admitted {
		t.Fatal("the silent connection was refused")
	}
	testutil.Eventually(t, 10*time.Second, "the gauges to show 1 pre-auth and 2 authenticated connections", func() bool {
		f := gather()
		pre, _ := f.Value("slipway_ssh_connections", "state", "preauth")
		authed, _ := f.Value("slipway_ssh_connections", "state", "authenticated")
		return pre == 1 && authed == 2
	})
	f = gather()
	for _, c := range []struct {
		stage string
		want  float64
	}{
		// push, clone, archive, ls-remote, mallory, alice, bob, carol, raw
		{"accepted", 9},
		// push, clone, archive, ls-remote, alice, bob
		{"authenticated", 6},
		{"over_limit", 1},
	} {
		if n, _ := f.Value("slipway_ssh_connections_total", "stage", c.stage); n != c.want {
			t.Errorf("connections %s: %v, want %v", c.stage, n, c.want)
		}
	}

	// Closed by its client, the silent connection leaves the count.
	raw.Close()
	testutil.Eventually(t, 10*time.Second, "no pre-auth connection left", func() bool {
		pre, _ := gather().Value("slipway_ssh_connections", "state", "preauth")
		return pre == 0
	})
}
