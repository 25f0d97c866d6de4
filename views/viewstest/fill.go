package viewstest

import (
	"context"
	"database/sql"

	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"slipway/build/logs"
	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/record"
	"slipway/store"
	"slipway/views"
)

// World is a filled store, the repositories on disk and the services
// around them.
type World struct {
	Dir       string // the data dir: slipway.db, repos/, logs/
	Store     *store.Store
	Logs      *logs.Store
	Builds    *BuildSvc
	Deploys   *DeploySvc
	Schedules *ScheduleSvc
}

// Open makes an empty world in a temporary folder: the store, the log
// store, bare repositories app, old (not configured), secret and
// team/tools, and the services.
func Open(t testing.TB) *World {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, n := range []string{"app", "old", "secret", "team/tools"} {
		if out, err := exec.Command("git", "init", "-q", "--bare", filepath.Join(dir, "repos", n+".git")).CombinedOutput(); err != nil {
			t.Fatalf("git init %s: %v: %s", n, err, out)
		}
	}
	w := &World{Dir: dir, Store: st, Logs: logs.NewStore(filepath.Join(dir, "logs"))}
	w.Builds = &BuildSvc{st: st, logs: w.Logs}
	w.Deploys = &DeploySvc{st: st}
	w.Schedules = &ScheduleSvc{st: st}
	return w
}

// Views are the read model over the world, answering with cfg.
func (w *World) Views(t testing.TB, cfg configs.Source) *views.Service {
	t.Helper()
	v, err := views.New(views.Options{
		Config:    cfg,
		Repos:     gitserver.Disk{ReposDir: filepath.Join(w.Dir, "repos")},
		Records:   w.Store,
		Builds:    w.Builds,
		Deploys:   w.Deploys,
		Schedules: w.Schedules,
		Logs:      w.Logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Log1 is the stored log of build 1 as Fill writes it, minus the header
// and stamps the log store adds.
const Log1 = "go vet ./...\n<script>alert(1)</script>\n\x1b[32mok\x1b[0m\n"

// Fill records the fixture's pushes, builds and deployments through the
// store's own operations, in the order a daemon would, then sets their
// times to the fixture's; and writes the log of build 1.
func Fill(t testing.TB, w *World) {
	t.Helper()
	ctx := t.Context()
	st := w.Store
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	bs, ds, ps := Builds(), Deployments(), Pushes()
	for i := range ps {
		ps[i].ID = 0 // recorded as new pushes, not as open ones
	}
	newBuild := func(b record.Build) record.Build {
		return record.Build{Repo: b.Repo, Ref: b.Ref, Commit: b.Commit, Pipeline: b.Pipeline}
	}
	claim := func(want int64) {
		t.Helper()
		b, ok, err := st.ClaimBuild(ctx, "w1")
		must(err)
		if !ok || b.ID != want {
			t.Fatalf("claimed build %d (%v), want %d", b.ID, ok, want)
		}
	}
	_, err := st.RecordPushAndEnqueue(ctx, ps[0], []record.Build{newBuild(bs[0])}, nil)
	must(err)
	claim(1)
	lw, err := w.Logs.Create("1", 0, nil)
	must(err)
	io.WriteString(lw, Log1)
	must(lw.Close())
	must(st.SetArtifactsDigest(ctx, 1, Digest))
	must(st.FinishBuild(ctx, 1, record.StatePassed, "", bs[0].Steps))

	_, err = st.RecordPushAndEnqueue(ctx, ps[1], []record.Build{newBuild(bs[1])}, nil)
	must(err)
	claim(2)
	must(st.FinishBuild(ctx, 2, record.StateFailed, bs[1].Reason, bs[1].Steps))

	_, err = st.RetryBuild(ctx, 1)
	must(err)
	b4 := newBuild(bs[3])
	b4.Trigger, b4.Schedule, b4.State, b4.Reason = record.TriggerSchedule, bs[3].Schedule, record.StateSkipped, bs[3].Reason
	_, err = st.EnqueueBuilds(ctx, []record.Build{b4})
	must(err)

	_, err = st.EnqueueDeployment(ctx, record.Deployment{Repo: "app", Env: "staging", BuildID: 1, Trigger: record.DeployAuto})
	must(err)
	d, ok, err := st.ClaimDeployment(ctx)
	must(err)
	if !ok || d.ID != 1 {
		t.Fatalf("claimed deployment %d (%v), want 1", d.ID, ok)
	}
	must(st.SetDeploymentRelease(ctx, 1, ds[0].ReleaseID))
	must(st.FinishDeployment(ctx, 1, record.DeploySucceeded, ""))
	_, err = st.RecordPushAndEnqueue(ctx, ps[2], nil, []record.Deployment{{Env: "prod", BuildID: 1, Repo: "app",
		Trigger: record.DeployRelease, User: "bob"}})
	must(err)
	_, err = st.RecordPushAndEnqueue(ctx, ps[3], nil, nil)
	must(err)

	// The times a daemon would have written, fixed.
	db, err := sql.Open("sqlite", filepath.Join(w.Dir, "slipway.db"))
	must(err)
	defer db.Close()
	for _, b := range bs {
		_, err := db.ExecContext(ctx, `UPDATE builds SET created_at = ?, started_at = ?, finished_at = ? WHERE id = ?`,
			nanos(b.CreatedAt), nullNanos(b.StartedAt), nullNanos(b.FinishedAt), b.ID)
		must(err)
	}
	for _, d := range ds {
		_, err := db.ExecContext(ctx, `UPDATE deployments SET created_at = ?, started_at = ?, finished_at = ? WHERE id = ?`,
			nanos(d.CreatedAt), nullNanos(d.StartedAt), nullNanos(d.FinishedAt), d.ID)
		must(err)
	}
	// What was recorded is the fixture.
	for _, want := range bs {
		got, err := st.GetBuild(ctx, want.ID)
		must(err)
		got.Worker = ""
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("build %d recorded as\n%+v\nwant\n%+v", want.ID, got, want)
		}
	}
	for _, want := range ds {
		got, err := st.GetDeployment(ctx, want.ID)
		must(err)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("deployment %d recorded as\n%+v\nwant\n%+v", want.ID, got, want)
		}
	}
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func nullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: nanos(t), Valid: true}
}

// BuildSvc is the build service's part the views act through, over the real
// store and log store; it records who cancelled what.
type BuildSvc struct {
	st   *store.Store
	logs *logs.Store

	mu        sync.Mutex
	Cancelled []string // "id by user"
}

// Follow copies the stored log of build id (it never waits: the fixture's
// logs are finished).
func (b *BuildSvc) Follow(ctx context.Context, id int64, w io.Writer, _ bool) error {
	return b.logs.Follow(ctx, fmt.Sprint(id), 0, w, false)
}

// CancelBy cancels a queued build in the store, or finishes a running one
// as cancelled (no process runs in the fixture).
func (b *BuildSvc) CancelBy(ctx context.Context, id int64, user string) error {
	prev, err := b.st.CancelBuild(ctx, id, "cancelled by "+user)
	if err != nil {
		return err
	}
	if prev == record.StateRunning {
		if err := b.st.FinishBuild(ctx, id, record.StateCancelled, "cancelled by "+user, nil); err != nil {
			return err
		}
	}
	b.mu.Lock()
	b.Cancelled = append(b.Cancelled, fmt.Sprintf("%d by %s", id, user))
	b.mu.Unlock()
	return nil
}

// Retry queues a retry in the store.
func (b *BuildSvc) Retry(ctx context.Context, id int64) (record.Build, error) {
	return b.st.RetryBuild(ctx, id)
}

// DeploySvc is the deployment service's part the views act through: the
// staging target holds Listing(""), prod could not be reached; retries go
// to the store.
type DeploySvc struct {
	st *store.Store

	mu      sync.Mutex
	Retried []string // "id by user"
}

// ProdNote is the note of prod's listing: its target cannot be reached.
const ProdNote = "target unreachable: ssh: connect to host prod.example port 22: Connection refused"

// Releases lists the fixture's targets.
func (d *DeploySvc) Releases(_ context.Context, repo, env string) (deploy.Listing, error) {
	if env == "prod" {
		return deploy.Listing{Listed: At(10 * time.Minute), Note: ProdNote}, nil
	}
	return Listing(""), nil
}

// Follow writes one line: the fixture keeps no deployment logs.
func (d *DeploySvc) Follow(_ context.Context, id int64, w io.Writer, _ bool) error {
	_, err := fmt.Fprintf(w, "log of deployment %d\n", id)
	return err
}

// Retry queues a retry in the store.
func (d *DeploySvc) Retry(ctx context.Context, id int64, user string) (record.Deployment, error) {
	nd, err := d.st.RetryDeployment(ctx, id, user)
	if err == nil {
		d.mu.Lock()
		d.Retried = append(d.Retried, fmt.Sprintf("%d by %s", id, user))
		d.mu.Unlock()
	}
	return nd, err
}

// ScheduleSvc is the scheduler's part the views act through: the fixture's
// schedules, whose last runs are read from the store; a run by hand
// records a manual build of C1 on main.
type ScheduleSvc struct {
	st *store.Store

	mu  sync.Mutex
	Ran []string // "repo/name by user"
}

// List lists the fixture's schedules of repo, or all.
func (s *ScheduleSvc) List(ctx context.Context, repo string) ([]schedule.Status, error) {
	last, err := s.st.GetBuild(ctx, 4)
	if err != nil {
		return nil, err
	}
	all := Schedules(last)
	return slices.DeleteFunc(all, func(st schedule.Status) bool { return repo != "" && st.Repo != repo }), nil
}

// RunNow records a manual build of the schedule.
func (s *ScheduleSvc) RunNow(ctx context.Context, repo, name, user string) ([]record.Build, error) {
	all, err := s.List(ctx, repo)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(all, func(st schedule.Status) bool { return st.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("run schedule %q of %q: %w", name, repo, schedule.ErrUnknownSchedule)
	}
	out, err := s.st.EnqueueBuilds(ctx, []record.Build{{Repo: repo, Ref: "refs/heads/main", Commit: C1,
		Trigger: record.TriggerManual, Schedule: name, Pipeline: all[i].Pipeline}})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.Ran = append(s.Ran, repo+"/"+name+" by "+user)
	s.mu.Unlock()
	return out.Builds, nil
}
