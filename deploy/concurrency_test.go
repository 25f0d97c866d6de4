package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slipway/internal/testutil"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// TestBuildsFinishingTogetherNeverLeaveTheOlderCommitLive finishes two
// passed builds of the auto branch at the same moment, as two build
// workers do (AutoDeployments, then the transaction that records the
// result), 20 times against real SQLite and a real target: once their
// deployments have run, the newer build's commit is live every time.
func TestBuildsFinishingTogetherNeverLeaveTheOlderCommitLive(t *testing.T) {
	t.Parallel()
	staging := filepath.Join(t.TempDir(), "staging")
	h := newHarness(t, 2, localEnv("staging", staging, `  auto = "main"`))
	h.start()
	ctx := t.Context()
	for i := range 20 {
		older := h.running("refs/heads/main", record.DefaultPipeline, map[string]string{"v": fmt.Sprint("older ", i)})
		newer := h.running("refs/heads/main", record.DefaultPipeline, map[string]string{"v": fmt.Sprint("newer ", i)})
		start := make(chan struct{})
		var wg sync.WaitGroup
		queued := make(chan record.Deployment, 2)
		for _, b := range []record.Build{newer, older} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				b.State = record.StatePassed
				ds, err := h.st.FinishBuildAndDeploy(ctx, b.ID, record.StatePassed, "", nil, h.svc.AutoDeployments(ctx, b))
				if err != nil {
					t.Error(err)
				}
				for _, d := range ds {
					queued <- d
				}
				h.svc.Wake()
			}()
		}
		close(start)
		wg.Wait()
		close(queued)
		for d := range queued {
			h.waitState(d.ID, record.DeploySucceeded)
		}
		if got, _ := os.ReadFile(filepath.Join(staging, "current", "v")); string(got) != fmt.Sprint("newer ", i) {
			t.Fatalf("iteration %d: staging serves %q, want the newer build's %q", i, got, fmt.Sprint("newer ", i))
		}
		if live, ok, err := h.st.LiveDeployment(ctx, "app", "staging"); err != nil || !ok || live.BuildID != newer.ID {
			t.Fatalf("iteration %d: recorded live %+v (%v), want build %d", i, live, err, newer.ID)
		}
	}
}

// TestRetriesAtOnceQueueOneDeployment retries one failed deployment twice
// at the same moment, 20 times: one retry is queued, the other is told
// that one came after it.
func TestRetriesAtOnceQueueOneDeployment(t *testing.T) {
	t.Parallel()
	h, _ := localHarness(t, "prod", "")
	ctx := t.Context()
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	d := h.enqueueRelease(b.ID, "prod")
	for i := range 20 {
		// A worker ran it and it failed (the workers are not started: the
		// point is what Retry records).
		if c, ok, err := h.st.ClaimDeployment(ctx); err != nil || !ok || c.ID != d.ID {
			t.Fatalf("claim: %+v %v %v", c, ok, err)
		}
		if err := h.st.FinishDeployment(ctx, d.ID, record.DeployFailed, "target unreachable"); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ok []record.Deployment
		var refused []error
		for _, u := range []string{"bob", "carol"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				nd, err := h.svc.Retry(ctx, d.ID, u)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					refused = append(refused, err)
				} else {
					ok = append(ok, nd)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(ok) != 1 || len(refused) != 1 {
			t.Fatalf("iteration %d: %d retries queued, refused %v; want exactly one queued", i, len(ok), refused)
		}
		want := fmt.Sprintf("deployment #%d is not the latest to prod (#%d came after it); push the revision to refs/release/prod instead", d.ID, ok[0].ID)
		if refused[0].Error() != want {
			t.Fatalf("iteration %d: the second retry was told %q, want %q", i, refused[0], want)
		}
		if all, _ := h.st.ListDeployments(ctx, "app", "prod", 0); len(all) != i+2 {
			t.Fatalf("iteration %d: %d deployments recorded, want %d", i, len(all), i+2)
		}
		d = ok[0]
	}
}

// TestReleasesReadersNeverFloodTheTarget lists an environment's releases
// 50 times at once while the target is idle, and 50 times at once while a
// deployment to it runs, over a real sshd that records its sessions: the
// idle readers share one connection, the target never sees more than one
// connection at a time, the deployment succeeds, and once it has ended the
// listing shows its release live.
func TestReleasesReadersNeverFloodTheTarget(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	sessions := srv.RecordSessions()
	path := filepath.Join(t.TempDir(), "staging")
	// activate waits for the readers to have asked, so that they ask while
	// the deployment holds the target.
	asked := filepath.Join(t.TempDir(), "asked")
	h := newHarness(t, 2, remoteEnv("staging", srv, path,
		"  auto = \"main\"\n  activate = 'while [ ! -e "+asked+" ]; do sleep 0.05; done'"))
	if err := os.WriteFile(asked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	ctx := t.Context()
	_, ds := h.passedBuild("refs/heads/main", map[string]string{"app": "1"})
	first := h.waitState(ds[0].ID, record.DeploySucceeded)
	// 50 readers at once while the target is idle: one listing for all.
	before, _, err := sessions.Connections()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l, err := h.svc.Releases(ctx, "app", "staging"); err != nil || len(l.Releases) != 1 || l.Note != "" {
				t.Errorf("releases of an idle target: %+v, %v", l, err)
			}
		}()
	}
	wg.Wait()
	if after, most, _ := sessions.Connections(); after != before+1 || most != 1 {
		t.Errorf("50 readers of an idle target made %d connections (%d at once), want 1", after-before, most)
	}
	if err := os.Remove(asked); err != nil {
		t.Fatal(err)
	}

	_, ds = h.passedBuild("refs/heads/main", map[string]string{"app": "2"})
	testutil.Eventually(t, 30*time.Second, "the second deployment to run", func() bool { return h.get(ds[0].ID).State == record.DeployRunning })
	errs := make(chan error, 50)
	notes := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := h.svc.Releases(ctx, "app", "staging")
			if err != nil {
				errs <- err
				return
			}
			if len(l.Releases) == 0 {
				errs <- fmt.Errorf("no releases listed: %+v", l)
			}
			notes <- l.Note
		}()
	}
	wg.Wait()
	if err := os.WriteFile(asked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	close(errs)
	close(notes)
	for err := range errs {
		t.Errorf("releases while deploying: %v", err)
	}
	second := h.waitState(ds[0].ID, record.DeploySucceeded)
	total, most, err := sessions.Connections()
	if err != nil {
		t.Fatal(err)
	}
	if most != 1 {
		t.Errorf("the target saw %d connections at once, want 1 (%d in all)", most, total)
	}
	// Each deployment is at most one listing and one shipping connection;
	// the readers add one listing each time the target was idle.
	if total > 6 {
		t.Errorf("%d connections in all for two deployments and 100 listings, want at most 6", total)
	}
	for n := range notes {
		if n != "" && !strings.Contains(n, "deployment to staging is under way") {
			t.Errorf("note %q", n)
		}
	}

	l, err := h.svc.Releases(ctx, "app", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Releases) != 2 || l.Releases[0].ID != second.ReleaseID || !l.Releases[0].Live || l.Releases[1].ID != first.ReleaseID || l.Note != "" {
		t.Errorf("after the deployment the listing is %+v, want %s live then %s", l, second.ReleaseID, first.ReleaseID)
	}
	// Asked again at once, the listing is answered without a connection.
	before, _, _ = sessions.Connections()
	for range 10 {
		if _, err := h.svc.Releases(ctx, "app", "staging"); err != nil {
			t.Fatal(err)
		}
	}
	if after, _, _ := sessions.Connections(); after != before {
		t.Errorf("10 listings within a few seconds made %d connections, want none", after-before)
	}
}
