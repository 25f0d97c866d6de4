package push_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/gitserver"
	"slipway/internal/testutil"
	"slipway/push"
	"slipway/record"
	"slipway/store"
)

// repos makes a repositories folder with bare repository app holding main
// at a first commit, and returns the folder, the repository and the commits
// c1 (on main) and c2 (a child of c1, on no ref yet).
func repos(t *testing.T) (dir, repo, c1, c2 string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "repos")
	repo = filepath.Join(dir, "app.git")
	testutil.Git(t, "", "init", "-q", "--bare", "--initial-branch=main", repo)
	work := t.TempDir()
	testutil.Git(t, work, "init", "-q", "--initial-branch=main")
	testutil.Git(t, work, "commit", "-q", "--allow-empty", "-m", "one")
	c1 = testutil.Git(t, work, "rev-parse", "HEAD")
	testutil.Git(t, work, "commit", "-q", "--allow-empty", "-m", "two")
	c2 = testutil.Git(t, work, "rev-parse", "HEAD")
	testutil.Git(t, work, "push", "-q", repo, c2+":refs/heads/tmp", c1+":refs/heads/main")
	testutil.Git(t, repo, "update-ref", "-d", "refs/heads/tmp")
	return dir, repo, c1, c2
}

func reconciler(t *testing.T, st *store.Store) (*push.Handler, *part, *bytes.Buffer) {
	t.Helper()
	builds := &part{name: "builds"}
	var log bytes.Buffer
	h, err := push.New(push.Options{Store: st, Ledger: st, Parts: []push.Part{builds},
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return h, builds, &log
}

// reconcileEnv is the set-up every reconciliation test starts from: repos,
// a store and a reconciler on it.
type reconcileEnv struct {
	t         *testing.T
	dir, repo string
	c1, c2    string
	st        *store.Store
	h         *push.Handler
	builds    *part
	log       *bytes.Buffer
	disk      gitserver.Disk
}

func newReconcileEnv(t *testing.T) *reconcileEnv {
	t.Helper()
	e := &reconcileEnv{t: t}
	e.dir, e.repo, e.c1, e.c2 = repos(t)
	e.disk = gitserver.Disk{ReposDir: e.dir}
	e.st = open(t)
	e.h, e.builds, e.log = reconciler(t, e.st)
	return e
}

// record records alice's push of refs as complete.
func (e *reconcileEnv) record(refs ...record.RefUpdate) {
	e.t.Helper()
	if _, err := e.st.RecordPush(e.t.Context(), record.Push{Repo: "app", User: "alice", Refs: refs}); err != nil {
		e.t.Fatal(err)
	}
}

// reconcile runs the reconciliation of a start.
func (e *reconcileEnv) reconcile() {
	e.t.Helper()
	if err := e.h.Reconcile(e.t.Context(), e.disk); err != nil {
		e.t.Fatal(err)
	}
}

// reconcileAgain checks that a second start finds nothing more to build.
func (e *reconcileEnv) reconcileAgain() {
	e.t.Helper()
	if err := e.h.Reconcile(e.t.Context(), e.disk); err != nil || len(e.builds.settled) != 1 {
		e.t.Errorf("second reconciliation: %v, settled %v", err, e.builds.settled)
	}
}

// A daemon that died between a push's record and its post-receive left the
// push open: at start, the update git made is recorded with its build, the
// one it did not make is withdrawn, and a push git made nothing of is gone.
func TestReconcileFinishesOpenPushes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newReconcileEnv(t)
	repo, c1, c2, st, builds, log := e.repo, e.c1, e.c2, e.st, e.builds, e.log
	e.record(record.RefUpdate{Name: "refs/heads/main", Old: zero, New: c1})
	// Push A moved main to c2 (git made it); push B was about to create
	// refs/heads/dev, and git never did.
	a, err := st.PreparePush(ctx, record.Push{Repo: "app", User: "alice", Refs: []record.RefUpdate{
		{Name: "refs/heads/main", Old: c1, New: c2}, {Name: "refs/heads/gone", Old: zero, New: c2}}}, "push:a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.PreparePush(ctx, record.Push{Repo: "app", User: "bob", Refs: []record.RefUpdate{{Name: "refs/heads/dev", Old: zero, New: c1}}}, "push:b")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, repo, "update-ref", "refs/heads/main", c2, c1)

	e.reconcile()
	pa, err := st.GetPush(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if pa.User != "alice" || len(pa.Refs) != 1 || pa.Refs[0].Name != "refs/heads/main" || pa.Refs[0].New != c2 {
		t.Errorf("push A after reconciliation: %+v, want alice's update of main to %s only", pa, c2)
	}
	if _, err := st.GetPush(ctx, b); err == nil {
		t.Errorf("push B, which git never made, is still recorded")
	}
	if len(builds.settled) != 1 || !strings.HasPrefix(builds.settled[0], "push ") || !strings.Contains(builds.settled[0], "1 builds") {
		t.Errorf("builds planned at start: %v, want one for push A", builds.settled)
	}
	if open, _ := st.OpenPushes(ctx); len(open) != 0 {
		t.Errorf("open pushes left: %+v", open)
	}
	refs, _ := st.RecordedRefs(ctx, "app")
	if len(refs) != 1 || refs["refs/heads/main"] != c2 {
		t.Errorf("recorded refs %v, want main at %s", refs, c2)
	}
	// Nothing moved without a record, so there is no push found at start.
	if strings.Contains(log.String(), "found at start") {
		t.Errorf("drift reported:\n%s", log)
	}
	// A second start finds nothing to do.
	e.reconcileAgain()
}

// Refs that moved without a record (by hand, by a git whose hooks did not
// run) are recorded at start as one push with no user, and built; a
// release ref found so is recorded but not deployed (see deploy).
func TestReconcileRecordsRefsThatMovedWithoutARecord(t *testing.T) {
	t.Parallel()
	e := newReconcileEnv(t)
	repo, c1, c2, st, builds, log := e.repo, e.c1, e.c2, e.st, e.builds, e.log
	e.record(record.RefUpdate{Name: "refs/heads/main", Old: zero, New: c1}, record.RefUpdate{Name: "refs/heads/old", Old: zero, New: c1})
	// main moves, old is deleted, a tag appears: none through Slipway.
	testutil.Git(t, repo, "update-ref", "refs/heads/main", c2)
	testutil.Git(t, repo, "update-ref", "refs/tags/v1", c2)

	e.reconcile()
	p := mustLastPush(t, st, "app")
	if !p.Found() || p.ID == 0 {
		t.Fatalf("no push found at start: %+v", p)
	}
	want := []record.RefUpdate{
		{Name: "refs/heads/main", Old: c1, New: c2},
		{Name: "refs/heads/old", Old: c1, New: zero},
		{Name: "refs/tags/v1", Old: zero, New: c2},
	}
	if len(p.Refs) != len(want) {
		t.Fatalf("found push %+v, want %+v", p.Refs, want)
	}
	for i := range want {
		if p.Refs[i] != want[i] {
			t.Errorf("found push ref %d = %+v, want %+v", i, p.Refs[i], want[i])
		}
	}
	if len(builds.settled) != 1 || !strings.Contains(builds.settled[0], "2 builds") {
		t.Errorf("builds of the found push: %v", builds.settled)
	}
	if !strings.Contains(log.String(), "found at start") || !strings.Contains(log.String(), "refs/heads/main") {
		t.Errorf("the log does not say what was found:\n%s", log)
	}
	e.reconcileAgain()
}

// The notes ref, which the daemon writes with hooks off, is no push: a
// start that finds it moved (or gone) records nothing and builds nothing.
func TestReconcileIgnoresTheNotesRef(t *testing.T) {
	t.Parallel()
	e := newReconcileEnv(t)
	repo, c1, c2, st, builds, log := e.repo, e.c1, e.c2, e.st, e.builds, e.log
	e.record(record.RefUpdate{Name: "refs/heads/main", Old: zero, New: c1})
	testutil.Git(t, repo, "-c", "core.hooksPath=/dev/null", "notes", "--ref=slipway", "add", "-m", "build 1 passed", c1)
	e.reconcile()
	if len(builds.settled) != 0 || strings.Contains(log.String(), "found at start") {
		t.Fatalf("the notes ref was taken for a push: settled %v\n%s", builds.settled, log)
	}
	// A notes ref in the record (from a daemon that recorded it) and gone
	// from the disk is no deletion to record either; a branch beside it is.
	testutil.Git(t, repo, "update-ref", "-d", "refs/notes/slipway")
	testutil.Git(t, repo, "update-ref", "refs/heads/main", c2)
	e.record(record.RefUpdate{Name: "refs/notes/slipway", Old: zero, New: c1})
	e.reconcile()
	p := mustLastPush(t, st, "app")
	if !p.Found() || len(p.Refs) != 1 || p.Refs[0].Name != "refs/heads/main" {
		t.Errorf("push found at start: %+v, want main's move only", p.Refs)
	}
}

func mustLastPush(t *testing.T, st *store.Store, repo string) record.Push {
	t.Helper()
	last, err := st.LastPushes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return last[repo]
}

// The watch finishes an open push whose work could not be recorded in
// post-receive once it is old enough, without a restart; a younger one (a
// push in flight) is left to its post-receive.
func TestWatchFinishesOldOpenPushesOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newReconcileEnv(t)
	repo, c1, c2, st, builds := e.repo, e.c1, e.c2, e.st, e.builds
	e.record(record.RefUpdate{Name: "refs/heads/main", Old: zero, New: c1})
	old, err := st.PreparePush(ctx, record.Push{Repo: "app", User: "alice", Time: time.Now().Add(-time.Hour),
		Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: c1, New: c2}}}, "push:old")
	if err != nil {
		t.Fatal(err)
	}
	young, err := st.PreparePush(ctx, record.Push{Repo: "app", User: "bob", Refs: []record.RefUpdate{{Name: "refs/heads/dev", Old: zero, New: c1}}}, "push:young")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, repo, "update-ref", "refs/heads/main", c2, c1)
	n, err := e.h.FinishOpen(ctx, e.disk, time.Now().Add(-time.Minute))
	if err != nil || n != 1 || len(builds.settled) != 1 {
		t.Fatalf("FinishOpen = %d, %v; settled %v", n, err, builds.settled)
	}
	if p, err := st.GetPush(ctx, old); err != nil || len(p.Refs) != 1 {
		t.Errorf("old open push: %+v, %v", p, err)
	}
	open, _ := st.OpenPushes(ctx)
	if len(open) != 1 || open[0].ID != young {
		t.Errorf("open pushes after the watch: %+v, want only the young one (%d)", open, young)
	}
}
