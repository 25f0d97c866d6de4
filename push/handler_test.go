package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/metrics"
	"slipway/metrics/metricstest"
	"slipway/push"
	"slipway/record"
	"slipway/store"
)

const zero = "0000000000000000000000000000000000000000"

// part plans one build per pushed ref, or fails to plan, and remembers how
// its plan was settled.
type part struct {
	name    string
	fail    bool
	settled []string
}

func (p *part) Plan(_ context.Context, ps record.Push) (push.Plan, error) {
	if p.fail {
		return push.Plan{}, errors.New(p.name + " cannot plan")
	}
	var bs []record.Build
	for _, u := range ps.Refs {
		if record.ZeroID(u.New) {
			continue // deleted: nothing to build
		}
		bs = append(bs, record.Build{Repo: ps.Repo, Ref: u.Name, Commit: u.New, Trigger: record.TriggerPush, Pipeline: record.DefaultPipeline})
	}
	return push.Plan{Builds: bs, Notes: []string{p.name + " planned"}, Settle: func(_ context.Context, rec record.Enqueued, err error) {
		p.settled = append(p.settled, fmt.Sprintf("push %d, %d builds, err %v", rec.PushID, len(rec.Builds), err))
	}}, nil
}

func (p *part) Report(_ context.Context, ps record.Push, plan push.Plan, rec record.Enqueued, out io.Writer) {
	fmt.Fprintf(out, "%s: push #%d by %s, %d builds recorded, notes %v\n", p.name, ps.ID, ps.User, len(rec.Builds), plan.Notes)
}

func open(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The parts' plans are recorded with the push in one transaction, settled,
// and reported in order; a part that cannot plan does not stop the record,
// and the pusher is told.
func TestRecordPushRecordsEveryPlanThenReports(t *testing.T) {
	t.Parallel()
	st := open(t)
	builds, broken, deploys := &part{name: "builds"}, &part{name: "broken", fail: true}, &part{name: "deploys"}
	h, err := push.New(push.Options{Store: st, Parts: []push.Part{builds, broken, deploys}})
	if err != nil {
		t.Fatal(err)
	}
	p := record.Push{Repo: "app", User: "alice", Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: strings.Repeat("a", 40)}}}
	id, report, err := h.RecordPush(t.Context(), p)
	if err != nil || id != 1 {
		t.Fatalf("RecordPush = %d, %v", id, err)
	}
	bs, err := st.ListBuilds(t.Context(), "app", 0)
	if err != nil || len(bs) != 2 || bs[0].PushID != id || bs[1].PushID != id {
		t.Fatalf("builds recorded with the push: %+v, %v", bs, err)
	}
	if want := "push 1, 2 builds, err <nil>"; len(builds.settled) != 1 || builds.settled[0] != want || deploys.settled[0] != want {
		t.Errorf("settled: %v / %v; want %q once each", builds.settled, deploys.settled, want)
	}
	var out bytes.Buffer
	report(t.Context(), &out)
	want := "builds: push #1 by alice, 2 builds recorded, notes [builds planned]\n" +
		"broken: push #1 by alice, 2 builds recorded, notes [slipway: could not queue all the work of this push: broken cannot plan]\n" +
		"deploys: push #1 by alice, 2 builds recorded, notes [deploys planned]\n"
	if out.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", out.String(), want)
	}
}

// A record that fails settles every plan with the error (so that what a
// part claimed is given back) and reports nothing.
func TestRecordPushFailureSettlesWithTheError(t *testing.T) {
	t.Parallel()
	st := open(t)
	builds := &part{name: "builds"}
	h, err := push.New(push.Options{Store: st, Parts: []push.Part{builds}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close() // every write fails now
	id, report, err := h.RecordPush(t.Context(), record.Push{Repo: "app", Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: strings.Repeat("b", 40)}}})
	if err == nil || id != 0 || report != nil {
		t.Fatalf("RecordPush on a closed store = %d, %v, report %v", id, err, report != nil)
	}
	if len(builds.settled) != 1 || !strings.Contains(builds.settled[0], "err ") || strings.HasSuffix(builds.settled[0], "<nil>") {
		t.Errorf("settled: %v; want the error once", builds.settled)
	}
}

// A recorded push is counted under its repository; one that could not be
// recorded is not.
func TestRecordPushCountsRecordedPushes(t *testing.T) {
	t.Parallel()
	st := open(t)
	cfg, err := configs.Loader{}.Parse([]byte("[[repo]]\nname = \"app\""), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(metrics.Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	h, err := push.New(push.Options{Store: st, Parts: []push.Part{&part{name: "builds"}}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for i, repo := range []string{"app", "app", "made-by-admin"} {
		p := record.Push{Repo: repo, User: "alice", Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: strings.Repeat(string(rune('a'+i)), 40)}}}
		if _, _, err := h.RecordPush(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if _, _, err := h.RecordPush(t.Context(), record.Push{Repo: "app", Refs: []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: strings.Repeat("f", 40)}}}); err == nil {
		t.Fatal("a push was recorded on a closed store")
	}
	f := metricstest.Gather(t, m.Gatherer())
	if n, _ := f.Value("slipway_pushes_total", "repo", "app"); n != 2 {
		t.Errorf("pushes to app: %v, want 2 (the failed record not counted)", n)
	}
	if n, _ := f.Value("slipway_pushes_total", "repo", metrics.OtherRepo); n != 1 {
		t.Errorf("pushes to an unconfigured repository: %v, want 1 under %s", n, metrics.OtherRepo)
	}
}
