package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"slipway/record"
)

func mustSetHost(t *testing.T, s *Store, h record.DeploymentHost) {
	t.Helper()
	if err := s.SetDeploymentHost(t.Context(), h); err != nil {
		t.Fatalf("SetDeploymentHost(%+v): %v", h, err)
	}
}

func mustHosts(t *testing.T, s *Store, id int64) []record.DeploymentHost {
	t.Helper()
	hs, err := s.DeploymentHosts(t.Context(), id)
	if err != nil {
		t.Fatalf("DeploymentHosts(%d): %v", id, err)
	}
	return hs
}

// hostKey is what a test compares of a row: all but UpdatedAt.
type hostKey struct {
	id                      int64
	pos                     int
	host, release, previous string
	state                   record.HostState
	detail                  string
}

func hostKeys(hs []record.DeploymentHost) []hostKey {
	var out []hostKey
	for _, h := range hs {
		out = append(out, hostKey{h.DeploymentID, h.Pos, h.Host, h.Release, h.Previous, h.State, h.Detail})
	}
	return out
}

func TestSetDeploymentHostReplacesAndOrders(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d := deployed(t, s, passedBuild(t, s, "app", 1), "prod", "r1", DeployRunning)
	other := deployed(t, s, passedBuild(t, s, "app", 2), "staging", "r2", DeployRunning)
	before := now()
	for _, pos := range []int{2, 0, 1} {
		mustSetHost(t, s, record.DeploymentHost{DeploymentID: d.ID, Pos: pos, Host: fmt.Sprintf("deploy@web%d:/srv/app", pos),
			Release: "r1", Previous: "r0", State: record.HostPending})
	}
	mustSetHost(t, s, record.DeploymentHost{DeploymentID: other.ID, Pos: 0, Host: "deploy@web0:/srv/app", Release: "r2", State: record.HostLive})
	mustSetHost(t, s, record.DeploymentHost{DeploymentID: d.ID, Pos: 1, Host: "deploy@web1:/srv/app",
		Release: "r1", Previous: "r0", State: record.HostFailed, Detail: "health: 503 from /healthz"})

	hs := mustHosts(t, s, d.ID)
	want := []hostKey{
		{d.ID, 0, "deploy@web0:/srv/app", "r1", "r0", record.HostPending, ""},
		{d.ID, 1, "deploy@web1:/srv/app", "r1", "r0", record.HostFailed, "health: 503 from /healthz"},
		{d.ID, 2, "deploy@web2:/srv/app", "r1", "r0", record.HostPending, ""},
	}
	if got := hostKeys(hs); !slices.Equal(got, want) {
		t.Errorf("hosts of deployment %d:\n got %+v\nwant %+v", d.ID, got, want)
	}
	for _, h := range hs {
		if h.UpdatedAt.Before(before) || h.UpdatedAt.Location().String() != "UTC" {
			t.Errorf("UpdatedAt of host %d = %v, want UTC and not before %v", h.Pos, h.UpdatedAt, before)
		}
	}
	if hs := mustHosts(t, s, other.ID); len(hs) != 1 || hs[0].State != record.HostLive {
		t.Errorf("hosts of the other deployment = %+v", hs)
	}
	if hs := mustHosts(t, s, 999); len(hs) != 0 {
		t.Errorf("hosts of a missing deployment = %+v", hs)
	}

	ok := record.DeploymentHost{DeploymentID: d.ID, Pos: 3, Host: "deploy@web3:/srv/app", State: record.HostPending}
	for _, c := range []struct {
		name   string
		change func(*record.DeploymentHost)
		want   error
	}{
		{"unknown state", func(h *record.DeploymentHost) { h.State = "done" }, ErrInvalid},
		{"empty state", func(h *record.DeploymentHost) { h.State = "" }, ErrInvalid},
		{"negative position", func(h *record.DeploymentHost) { h.Pos = -1 }, ErrInvalid},
		{"empty host", func(h *record.DeploymentHost) { h.Host = "" }, ErrInvalid},
		{"missing deployment", func(h *record.DeploymentHost) { h.DeploymentID = 999 }, ErrNotFound},
	} {
		h := ok
		c.change(&h)
		if err := s.SetDeploymentHost(ctx, h); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if hs := mustHosts(t, s, d.ID); len(hs) != 3 {
		t.Errorf("a refused row was written: %+v", hs)
	}
}

// TestSetDeploymentHostConcurrently: the transfer phase writes every
// host's state from its own goroutine; none is lost.
func TestSetDeploymentHostConcurrently(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	d := deployed(t, s, passedBuild(t, s, "app", 1), "prod", "r1", DeployRunning)
	const n = 20
	start := make(chan struct{})
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			h := record.DeploymentHost{DeploymentID: d.ID, Pos: i, Host: fmt.Sprintf("deploy@web%02d:/srv/app", i),
				Release: "r1", State: record.HostPending}
			errs <- s.SetDeploymentHost(ctx, h)
			h.State, h.Detail = record.HostPrepared, fmt.Sprintf("verified on web%02d", i)
			errs <- s.SetDeploymentHost(ctx, h)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	hs := mustHosts(t, s, d.ID)
	if len(hs) != n {
		t.Fatalf("%d hosts recorded, want %d", len(hs), n)
	}
	for i, h := range hs {
		if h.Pos != i || h.State != record.HostPrepared || h.Detail != fmt.Sprintf("verified on web%02d", i) {
			t.Errorf("host %d = %+v", i, h)
		}
	}
}

// TestLatestHostResults: per host, the newest deployment of that
// environment that recorded it; other environments and repositories, and
// deployments without host rows, do not count.
func TestLatestHostResults(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	const web1, web2, web3 = "deploy@web1:/srv/app", "deploy@web2:/srv/app", "deploy@web3:/srv/app"
	set := func(d Deployment, pos int, host string, state record.HostState) {
		t.Helper()
		mustSetHost(t, s, record.DeploymentHost{DeploymentID: d.ID, Pos: pos, Host: host, Release: d.ReleaseID, State: state})
	}
	if hs, err := s.LatestHostResults(ctx, "app", "staging"); err != nil || len(hs) != 0 {
		t.Errorf("LatestHostResults before any deployment = %+v, %v", hs, err)
	}

	d1 := deployed(t, s, passedBuild(t, s, "app", 1), "staging", "r1", DeploySucceeded)
	d1.ReleaseID = "r1"
	set(d1, 0, web3, record.HostLive)
	set(d1, 1, web1, record.HostLive)
	set(d1, 2, web2, record.HostLive)

	// The same hosts in another environment, and in another repository.
	p := deployed(t, s, passedBuild(t, s, "app", 2), "prod", "p1", DeployFailed)
	p.ReleaseID = "p1"
	set(p, 0, web1, record.HostFailed)
	set(p, 1, web2, record.HostSkipped)
	o := deployed(t, s, passedBuild(t, s, "other", 3), "staging", "o1", DeploySucceeded)
	o.ReleaseID = "o1"
	set(o, 0, web1, record.HostLive)

	// web3 left the environment; web2 moved to the front.
	d3 := deployed(t, s, passedBuild(t, s, "app", 4), "staging", "r3", DeployRolledBack)
	d3.ReleaseID = "r3"
	set(d3, 0, web2, record.HostRolledBack)
	set(d3, 1, web1, record.HostFailed)

	// A deployment that recorded no hosts (queued, or of one host the old
	// way) hides nothing.
	deployed(t, s, passedBuild(t, s, "app", 5), "staging", "", DeployQueued)

	hs, err := s.LatestHostResults(ctx, "app", "staging")
	if err != nil {
		t.Fatal(err)
	}
	want := []hostKey{
		{d3.ID, 0, web2, "r3", "", record.HostRolledBack, ""},
		{d1.ID, 0, web3, "r1", "", record.HostLive, ""},
		{d3.ID, 1, web1, "r3", "", record.HostFailed, ""},
	}
	if got := hostKeys(hs); !slices.Equal(got, want) {
		t.Errorf("LatestHostResults(app, staging):\n got %+v\nwant %+v", got, want)
	}
	for _, h := range hs {
		if h.UpdatedAt.IsZero() {
			t.Errorf("row without UpdatedAt: %+v", h)
		}
	}
	if hs, err := s.LatestHostResults(ctx, "app", "prod"); err != nil ||
		!slices.Equal(hostKeys(hs), []hostKey{{p.ID, 0, web1, "p1", "", record.HostFailed, ""}, {p.ID, 1, web2, "p1", "", record.HostSkipped, ""}}) {
		t.Errorf("LatestHostResults(app, prod) = %+v, %v", hs, err)
	}
	if hs, err := s.LatestHostResults(ctx, "other", "staging"); err != nil || len(hs) != 1 || hs[0].DeploymentID != o.ID {
		t.Errorf("LatestHostResults(other, staging) = %+v, %v", hs, err)
	}
	if hs, err := s.LatestHostResults(ctx, "app", "dev"); err != nil || len(hs) != 0 {
		t.Errorf("LatestHostResults of an environment never deployed = %+v, %v", hs, err)
	}
}

// TestHostQueriesUseIndexes: both reads go by index, the environment's
// deployments by deployments_by_env_id and their hosts by the primary key,
// never by a scan of every deployment's hosts.
func TestHostQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	for _, c := range []struct {
		query string
		args  []any
		want  []string
	}{
		{`SELECT ` + hostCols + ` FROM deployment_hosts WHERE deployment_id = ? ORDER BY pos`, []any{1},
			[]string{"SEARCH deployment_hosts USING PRIMARY KEY (deployment_id=?)"}},
		{latestHostsQuery, []any{"app", "staging"},
			[]string{"deployments_by_env_id (repo=? AND env=?)", "SEARCH h USING PRIMARY KEY (deployment_id=?)"}},
	} {
		plan := explain(t, s, c.query, c.args...)
		for _, w := range c.want {
			if !strings.Contains(plan, w) {
				t.Errorf("plan of %s:\n%s\nwant %q", c.query, plan, w)
			}
		}
		if strings.Contains(plan, "SCAN deployment_hosts") || strings.Contains(plan, "SCAN h") {
			t.Errorf("plan of %s scans the hosts table: %s", c.query, plan)
		}
	}
}

// TestPruneRemovesDeploymentHosts: the hosts of a pruned deployment go in
// the transaction that removes it; those of kept deployments stay; and no
// deployment can be deleted leaving its hosts behind.
func TestPruneRemovesDeploymentHosts(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	var ds []Deployment
	for i := range 3 { // the oldest is neither live nor the release before it
		d := deployed(t, s, passedBuild(t, s, "app", i), "prod", fmt.Sprintf("r%d", i), DeploySucceeded)
		for pos := range 2 {
			mustSetHost(t, s, record.DeploymentHost{DeploymentID: d.ID, Pos: pos, Host: fmt.Sprintf("web%d", pos),
				Release: d.ReleaseID, State: record.HostLive})
		}
		ds = append(ds, d)
	}
	var fk int
	if err := s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d (%v) on the writer, want 1", fk, err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM deployments WHERE id = ?`, ds[0].ID); err == nil {
		t.Fatal("a deployment with hosts was deleted, leaving its hosts behind")
	}

	p := mustPrune(t, s, "app", 0)
	if !slices.Equal(p.Deployments, []int64{ds[0].ID}) {
		t.Fatalf("pruned deployments %v, want [%d]", p.Deployments, ds[0].ID)
	}
	if hs := mustHosts(t, s, ds[0].ID); len(hs) != 0 {
		t.Errorf("hosts of the pruned deployment stayed: %+v", hs)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM deployment_hosts WHERE deployment_id NOT IN (SELECT id FROM deployments)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d host rows (%v) of deployments that are gone", n, err)
	}
	for _, d := range ds[1:] {
		if hs := mustHosts(t, s, d.ID); len(hs) != 2 {
			t.Errorf("hosts of kept deployment %d = %+v", d.ID, hs)
		}
	}
	hs, err := s.LatestHostResults(ctx, "app", "prod")
	if err != nil || len(hs) != 2 || hs[0].DeploymentID != ds[2].ID || hs[1].DeploymentID != ds[2].ID {
		t.Errorf("LatestHostResults after prune = %+v, %v", hs, err)
	}
}

// TestUpgradeToDeploymentHosts: a database of the version before hosts
// (deployments and all) opens, gains the table, and its deployments take
// hosts and are pruned with them.
func TestUpgradeToDeploymentHosts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v11.db")
	old, err := openWith(ctx, path, migrations[:11])
	if err != nil {
		t.Fatal(err)
	}
	// Written by the code of today through tables that version 11 already
	// had in this shape.
	var ds []Deployment
	for i := range 3 {
		ds = append(ds, deployed(t, old, passedBuild(t, old, "app", i), "prod", fmt.Sprintf("r%d", i), DeploySucceeded))
	}
	s := upgrade(t, old, path)
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version after upgrade = %d (%v), want %d", v, err, len(migrations))
	}
	if hs, err := s.LatestHostResults(ctx, "app", "prod"); err != nil || len(hs) != 0 {
		t.Errorf("LatestHostResults of deployments from before hosts = %+v, %v", hs, err)
	}
	for _, d := range ds {
		mustSetHost(t, s, record.DeploymentHost{DeploymentID: d.ID, Pos: 0, Host: "deploy@web1:/srv/app", Release: d.ReleaseID, State: record.HostLive})
	}
	if hs := mustHosts(t, s, ds[2].ID); len(hs) != 1 || hs[0].Host != "deploy@web1:/srv/app" {
		t.Errorf("hosts after upgrade = %+v", hs)
	}
	if p := mustPrune(t, s, "app", 0); !slices.Equal(p.Deployments, []int64{ds[0].ID}) {
		t.Errorf("pruned deployments %v after upgrade, want [%d]", p.Deployments, ds[0].ID)
	}
	if hs := mustHosts(t, s, ds[0].ID); len(hs) != 0 {
		t.Errorf("hosts of the pruned deployment stayed: %+v", hs)
	}
}
