package hooks

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"slipway/record"
)

// fakeConfigRepo is a ConfigRepo that refuses what refuse says and
// records what it was asked.
type fakeConfigRepo struct {
	refuse []string

	mu      sync.Mutex
	checked []string // "user fingerprint ref..." per Check
	quar    []string
	applied []string // "user ref..." per Apply
}

func (f *fakeConfigRepo) Owns(repo string) bool { return repo == "slipway-config" }

func (f *fakeConfigRepo) Check(_ context.Context, user, fp string, refs []record.RefUpdate, quarantine string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, user+" "+fp+" "+refList(refs))
	f.quar = append(f.quar, quarantine)
	return f.refuse
}

func (f *fakeConfigRepo) Apply(ctx context.Context, user string, refs []record.RefUpdate, out io.Writer) {
	f.mu.Lock()
	f.applied = append(f.applied, user+" "+refList(refs))
	f.mu.Unlock()
	fmt.Fprintf(out, "applied; the pusher gone: %v\n", ctx.Err() != nil)
}

func refList(refs []record.RefUpdate) string {
	var names []string
	for _, u := range refs {
		names = append(names, u.Name)
	}
	return strings.Join(names, ",")
}

// A push to the configuration repository is checked before it lands, its
// quarantine given, and refused with the check's lines; an accepted one is
// applied after it is recorded. Other repositories are never asked about.
func TestConfigRepoPushes(t *testing.T) {
	t.Parallel()
	fake := &fakeConfigRepo{refuse: []string{"slipway.toml:3: bad", "main: slipway.toml has 1 problem"}}
	e := newEnv(t, func(o *ServerOptions) { o.ConfigRepo = fake })
	repo := e.bareRepo("slipway-config")
	app := e.bareRepo("app")
	work := e.workRepo()

	out, err := e.push(work, e.token("slipway-config", "admin"), repo, "main")
	if err == nil {
		t.Fatalf("a push the check refused landed:\n%s", out)
	}
	for _, want := range []string{"remote: slipway.toml:3: bad", "remote: main: slipway.toml has 1 problem",
		"remote: slipway: push refused; no ref was updated and the configuration in force is unchanged"} {
		if !strings.Contains(out, want) {
			t.Errorf("the pusher was not told %q:\n%s", want, out)
		}
	}
	if e.refExists(repo, "refs/heads/main") || len(fake.applied) != 0 {
		t.Errorf("refused push: main exists %v, applied %q", e.refExists(repo, "refs/heads/main"), fake.applied)
	}
	if want := "admin " + e.fps["admin"] + " refs/heads/main"; len(fake.checked) != 1 || fake.checked[0] != want {
		t.Errorf("checked %q, want %q", fake.checked, want)
	}
	objects, _ := filepath.EvalSymlinks(filepath.Join(repo, "objects"))
	if q := fake.quar[0]; filepath.Dir(q) != objects || !strings.Contains(filepath.Base(q), "incoming-") {
		t.Errorf("the check was given %q as the quarantine, not one of %s", q, objects)
	}

	fake.mu.Lock()
	fake.refuse = nil
	fake.mu.Unlock()
	out, err = e.push(work, e.token("slipway-config", "admin"), repo, "main", "main:review")
	if err != nil {
		t.Fatalf("a push the check accepted was refused: %v\n%s", err, out)
	}
	rec, apply := strings.Index(out, "remote: slipway: recorded push"), strings.Index(out, "remote: applied; the pusher gone: false")
	if rec < 0 || apply < rec {
		t.Errorf("the push was not recorded, then applied:\n%s", out)
	}
	if want := "admin refs/heads/main,refs/heads/review"; len(fake.applied) != 1 || fake.applied[0] != want {
		t.Errorf("applied %q, want %q", fake.applied, want)
	}

	// Another repository: neither checked nor applied.
	e.mustPush("push to app", work, e.token("app", "alice"), app, "main")
	if len(fake.checked) != 2 || len(fake.applied) != 1 {
		t.Errorf("a push to app reached the configuration repository: checked %q, applied %q", fake.checked, fake.applied)
	}
}

// -o verify asks for a build, but slipway-config never builds: its push is
// checked as a configuration and lands without one.
func TestConfigRepoIsNotVerified(t *testing.T) {
	t.Parallel()
	fake := &fakeConfigRepo{}
	e := newEnv(t, func(o *ServerOptions) { o.ConfigRepo = fake })
	repo := e.bareRepo("slipway-config")
	work := e.workRepo()
	out, err := e.push(work, e.token("slipway-config", "admin"), repo, "-o", "verify", "main")
	if err != nil {
		t.Fatalf("push -o verify to slipway-config: %v\n%s", err, out)
	}
	if !strings.Contains(out, "remote: slipway: -o verify: slipway-config is never built; its pushes are checked as configurations instead") {
		t.Errorf("the pusher was not told why nothing was built:\n%s", out)
	}
}
