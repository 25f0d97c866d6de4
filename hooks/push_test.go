package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/record"
)

const zero = "0000000000000000000000000000000000000000"

func TestPushAcceptedAndRecordedWithOptions(t *testing.T) {
	t.Parallel()
	var heard pushLog
	e := newEnv(t, func(o *ServerOptions) { o.Recorder.(*countingRecorder).listeners = []listener{&heard} })
	repo := e.bareRepo("app")
	work := e.workRepo()
	head := e.git(work, "rev-parse", "HEAD")

	out, err := e.push(work, e.token("app", "alice"), "-o", "wait", "-o", "note=two words", repo, "main")
	if err != nil {
		t.Fatalf("push refused: %v\n%s", err, out)
	}
	if !strings.Contains(out, "remote: slipway: recorded push #1 (1 ref)") {
		t.Errorf("pusher was not told the push was recorded:\n%s", out)
	}
	if !strings.Contains(out, "remote: listener saw push #1 by alice") {
		t.Errorf("listener output did not reach the pusher:\n%s", out)
	}
	p, ok := e.lastPush("app")
	if !ok {
		t.Fatal("push not recorded")
	}
	want := record.Push{ID: 1, Repo: "app", User: "alice", KeyFingerprint: e.fps["alice"],
		Refs:    []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: head}},
		Options: []string{"wait", "note=two words"}}
	if p.ID != want.ID || p.Repo != want.Repo || p.User != want.User || p.KeyFingerprint != want.KeyFingerprint ||
		!slices.Equal(p.Refs, want.Refs) || !slices.Equal(p.Options, want.Options) {
		t.Errorf("recorded %+v\nwant     %+v", p, want)
	}
	if age := time.Since(p.Time); age < 0 || age > time.Minute {
		t.Errorf("push time %v is not now", p.Time)
	}
	if got := heard.ids(); !slices.Equal(got, []int64{1}) {
		t.Errorf("listener heard pushes %v, want [1]", got)
	}

	// A second push updates the ref: old and new ids are both recorded.
	e.git(work, "commit", "-q", "--allow-empty", "-m", "second")
	next := e.git(work, "rev-parse", "HEAD")
	e.mustPush("second push refused", work, e.token("app", "bob"), repo, "main")
	p, _ = e.lastPush("app")
	if p.ID != 2 || p.User != "bob" || !slices.Equal(p.Refs, []record.RefUpdate{{Name: "refs/heads/main", Old: head, New: next}}) || p.Options != nil {
		t.Errorf("second push recorded as %+v", p)
	}
}

func TestReaderCannotPush(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	e.git(work, "tag", "v1")

	out, err := e.push(work, e.token("app", "carol"), repo, "main", "v1")
	if err == nil {
		t.Fatalf("read-only user's push was accepted:\n%s", out)
	}
	for _, line := range []string{
		"remote: refs/heads/main: user carol has no write access to repository app",
		"remote: refs/tags/v1: user carol has no write access to repository app",
		"remote: slipway: push refused (2 of 2 ref updates not allowed)",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("pusher was not told %q:\n%s", line, out)
		}
	}
	if e.refExists(repo, "refs/heads/main") || e.refExists(repo, "refs/tags/v1") {
		t.Error("refused push updated refs")
	}
	if _, ok := e.lastPush("app"); ok {
		t.Error("refused push was recorded")
	}
}

func TestReleaseRefNeedsReleaseRight(t *testing.T) {
	t.Parallel()
	gate := &fakeGate{refuse: map[string]string{"broken": "commit has no passed build"}}
	e := newEnv(t, func(o *ServerOptions) { o.ReleaseGate = gate })
	repo := e.bareRepo("app")
	work := e.workRepo()
	head := e.git(work, "rev-parse", "HEAD")

	// alice may write but not release: the whole push is refused, the
	// branch included, and only the release ref is named.
	out, err := e.push(work, e.token("app", "alice"), repo, "main", "main:refs/release/prod")
	if err == nil {
		t.Fatalf("writer without release right pushed a release ref:\n%s", out)
	}
	if !strings.Contains(out, "remote: refs/release/prod: user alice may not release repository app (needs the release right)") {
		t.Errorf("refusal does not name the release ref and reason:\n%s", out)
	}
	if strings.Contains(out, "remote: refs/heads/main:") {
		t.Errorf("allowed ref was reported as refused:\n%s", out)
	}
	if e.refExists(repo, "refs/heads/main") || e.refExists(repo, "refs/release/prod") {
		t.Error("refused push updated refs")
	}
	if len(gate.asked()) != 0 {
		t.Errorf("gate asked about a push the rights already refused: %v", gate.asked())
	}

	// bob has release: accepted, after asking the gate.
	out, err = e.push(work, e.token("app", "bob"), repo, "main", "main:refs/release/prod")
	if err != nil {
		t.Fatalf("releaser refused: %v\n%s", err, out)
	}
	if got, want := gate.asked(), []string{"app prod " + head + " bob"}; !slices.Equal(got, want) {
		t.Errorf("gate asked %q, want %q", got, want)
	}
	p, _ := e.lastPush("app")
	if len(p.Refs) != 2 || p.User != "bob" {
		t.Errorf("release push recorded as %+v", p)
	}

	// The gate's refusal reaches the pusher with the ref named.
	out, err = e.push(work, e.token("app", "bob"), repo, "main:refs/release/broken")
	if err == nil || !strings.Contains(out, "remote: refs/release/broken: commit has no passed build") {
		t.Errorf("gate refusal not shown (err %v):\n%s", err, out)
	}
	if e.refExists(repo, "refs/release/broken") {
		t.Error("gated ref was created")
	}
}

func TestReleaseRefCannotBeDeleted(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	e.mustPush("admin release refused", work, e.token("app", "admin"), repo, "main:refs/release/prod")
	for _, user := range []string{"admin", "bob"} {
		out, err := e.push(work, e.token("app", user), repo, ":refs/release/prod")
		if err == nil {
			t.Fatalf("%s deleted a release ref:\n%s", user, out)
		}
		if !strings.Contains(out, "remote: refs/release/prod: release refs cannot be deleted") {
			t.Errorf("%s was not told why:\n%s", user, out)
		}
	}
	if !e.refExists(repo, "refs/release/prod") {
		t.Error("release ref is gone")
	}
}

func TestLocalPushWithoutToken(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	head := e.git(work, "rev-parse", "HEAD")

	out, err := e.push(work, "", repo, "main:refs/release/prod")
	if err == nil {
		t.Fatalf("release ref pushed without a token:\n%s", out)
	}
	if !strings.Contains(out, "remote: refs/release/prod: release refs can only be pushed through Slipway's SSH server") {
		t.Errorf("no clear message:\n%s", out)
	}
	if e.refExists(repo, "refs/release/prod") {
		t.Error("release ref created without a token")
	}

	out, err = e.push(work, "", repo, "main")
	if err != nil {
		t.Fatalf("local branch push refused: %v\n%s", err, out)
	}
	p, ok := e.lastPush("app")
	if !ok || p.User != LocalUser || p.KeyFingerprint != "" ||
		!slices.Equal(p.Refs, []record.RefUpdate{{Name: "refs/heads/main", Old: zero, New: head}}) {
		t.Errorf("local push recorded as %+v (found %v)", p, ok)
	}
}

func TestTokenOfAnotherRepoOrUnknownRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := e.bareRepo("app")
	e.bareRepo("other")
	work := e.workRepo()

	out, err := e.push(work, e.token("other", "admin"), repo, "main")
	if err == nil || !strings.Contains(out, `remote: slipway: the push was opened on repository "other" but its hook runs in "app"; push refused`) {
		t.Errorf("token of another repo not refused clearly (err %v):\n%s", err, out)
	}
	tok, end := e.reg.Begin("app", "admin", e.fps["admin"], nil)
	end()
	out, err = e.push(work, tok, repo, "main")
	if err == nil || !strings.Contains(out, "remote: slipway: this push's token is not known to the Slipway daemon") {
		t.Errorf("expired token not refused clearly (err %v):\n%s", err, out)
	}
	if e.refExists(repo, "refs/heads/main") {
		t.Error("refused push updated refs")
	}
}

func TestNestedRepoCreatedByAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := e.bareRepo("team/lib")
	work := e.workRepo()
	e.mustPush("admin push refused", work, e.token("team/lib", "admin"), repo, "main")
	if p, ok := e.lastPush("team/lib"); !ok || p.User != "admin" {
		t.Errorf("nested repo push recorded as %+v (found %v)", p, ok)
	}
	// alice has no rights on a repository the config does not list.
	e.git(work, "commit", "-q", "--allow-empty", "-m", "x")
	if out, err := e.push(work, e.token("team/lib", "alice"), repo, "main"); err == nil ||
		!strings.Contains(out, "refs/heads/main: user alice has no write access to repository team/lib") {
		t.Errorf("alice pushed to an unlisted repo (err %v):\n%s", err, out)
	}
}

func TestDaemonDown(t *testing.T) {
	t.Parallel()
	e := prepareEnv(t) // scripts written, nothing listening
	repo := e.bareRepo("app")
	work := e.workRepo()

	out, err := e.push(work, "", repo, "main")
	if err == nil {
		t.Fatalf("push accepted with the daemon down:\n%s", out)
	}
	want := "remote: slipway: cannot reach the Slipway daemon at " + e.socket + ": connect: no such file or directory; push refused"
	if !strings.Contains(out, want) {
		t.Errorf("pusher not told clearly; want %q in:\n%s", want, out)
	}
	if e.refExists(repo, "refs/heads/main") {
		t.Error("ref updated with the daemon down")
	}

	// Post-receive cannot refuse (git has updated the refs); it must say the
	// push was not recorded, and not fail the push.
	var stderr strings.Builder
	code := RunClient(t.Context(), PostReceive, e.socket,
		strings.NewReader(zero+" "+strings.Repeat("a", 40)+" refs/heads/main\n"), &stderr, []string{"GIT_DIR=" + repo})
	if code != 0 {
		t.Errorf("post-receive exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "cannot reach the Slipway daemon at "+e.socket) ||
		!strings.Contains(stderr.String(), "this push was NOT recorded") {
		t.Errorf("post-receive warning unclear: %q", stderr.String())
	}
}

// TestMirrorPush1500Refs pushes a mirror of 1,500 refs through real git and
// the real client and checks it is one push record made by one call to the
// store (one transaction). The timings are logged, not asserted; the
// benchmarks give race-free figures.
func TestMirrorPush1500Refs(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	e.createRefs(work, 999, 500)

	start := time.Now()
	out, err := e.push(work, e.token("app", "admin"), "--mirror", repo)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("mirror push refused: %v\n%s", err, out)
	}
	if !strings.Contains(out, "remote: slipway: recorded push #1 (1500 refs)") {
		t.Errorf("pusher not told of the record:\n%s", out)
	}
	calls, recTime := e.rec.stats()
	if calls != 1 {
		t.Errorf("%d calls to record the push, want 1", calls)
	}
	p, ok := e.lastPush("app")
	if !ok || p.ID != 1 || len(p.Refs) != 1500 {
		t.Fatalf("mirror push recorded as push #%d with %d refs (found %v)", p.ID, len(p.Refs), ok)
	}
	t.Logf("git push --mirror of 1,500 refs: %v in all, RecordPush %v", took, recTime)
}

// pushLog is a listener that writes to the pusher and remembers the ids.
type pushLog struct {
	mu   sync.Mutex
	seen []int64
}

func (l *pushLog) PushRecorded(ctx context.Context, p record.Push, out io.Writer) {
	l.mu.Lock()
	l.seen = append(l.seen, p.ID)
	l.mu.Unlock()
	fmt.Fprintf(out, "listener saw push #%d by %s\n", p.ID, p.User)
}

func (l *pushLog) ids() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// fakeGate stands in for the deploy package's gate, which does not exist
// yet; it refuses the environments in refuse.
type fakeGate struct {
	refuse map[string]string
	mu     sync.Mutex
	calls  []string
}

func (g *fakeGate) CheckRelease(ctx context.Context, repo, env, commit, user string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, strings.Join([]string{repo, env, commit, user}, " "))
	if why, ok := g.refuse[env]; ok {
		return errors.New(why)
	}
	return nil
}

func (g *fakeGate) asked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

// A writer cannot create a branch or tag whose name git would confuse with
// a release ref; the releaser's release push then works as usual.
func TestConfusingRefNamesRefused(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	for _, dst := range []string{"refs/heads/refs/release/prod", "refs/tags/refs/release/prod",
		"refs/heads/refs/heads/main", "refs/heads/release/prod", "refs/tags/release/prod", "refs/heads/HEAD"} {
		out, err := e.push(work, e.token("app", "alice"), repo, "main:"+dst)
		if err == nil {
			t.Errorf("push to %s was accepted:\n%s", dst, out)
			continue
		}
		if !strings.Contains(out, "remote: "+dst+": a ") || !strings.Contains(out, "may not be called") {
			t.Errorf("push to %s: refusal does not say why:\n%s", dst, out)
		}
		if e.refExists("app", dst) {
			t.Errorf("%s was created", dst)
		}
	}
	// Names that merely look alike stay allowed: release/1.0 is no
	// environment, and refs inside a branch name are fine.
	for _, dst := range []string{"refs/heads/release/1.0", "refs/heads/feature/refs", "refs/tags/v1.0"} {
		if out, err := e.push(work, e.token("app", "alice"), repo, "main:"+dst); err != nil {
			t.Errorf("push to %s refused: %v\n%s", dst, err, out)
		}
	}
	// The releaser's push to the real release ref is unaffected.
	if out, err := e.push(work, e.token("app", "bob"), repo, "main:refs/release/prod"); err != nil {
		t.Errorf("release push refused: %v\n%s", err, out)
	}
}

// Nobody pushes to the notes ref, the daemon's own: not a writer, not an
// admin, not a git on the server's disk; creating, moving and deleting it
// are all refused with the reason, and the ref stays as the daemon left
// it. Other notes refs are refs like any other, for writers.
func TestNotesRefRefused(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	head := e.git(work, "rev-parse", "HEAD")
	e.git(work, "notes", "--ref=slipway", "add", "-m", "build 1 passed (not really)", head)
	e.git(work, "notes", "--ref=commits", "add", "-m", "a reviewer's note", head)
	e.mustPush("push refused", work, e.token("app", "alice"), repo, "main")
	const want = "refs/notes/slipway: Slipway alone writes this ref (its build and deployment results); fetch it, do not push it"
	for _, user := range []string{"alice", "admin", ""} {
		token := "" // a push on the server's disk
		if user != "" {
			token = e.token("app", user)
		}
		out, err := e.push(work, token, repo, "refs/notes/slipway")
		if err == nil || !strings.Contains(out, "remote: "+want) {
			t.Errorf("%q created the notes ref (err %v):\n%s", user, err, out)
		}
	}
	if e.refExists(repo, "refs/notes/slipway") {
		t.Fatal("the notes ref was created by a push")
	}
	// The daemon's notes, written with hooks off; then a move and a
	// deletion by an admin.
	e.git(repo, "-c", "core.hooksPath=/dev/null", "notes", "--ref=slipway", "add", "-m", "build 1 passed", head)
	daemons := e.git(repo, "rev-parse", "refs/notes/slipway")
	for _, spec := range []string{"+refs/notes/slipway", ":refs/notes/slipway"} {
		out, err := e.push(work, e.token("app", "admin"), repo, spec)
		if err == nil || !strings.Contains(out, "remote: "+want) {
			t.Errorf("admin's push %s accepted (err %v):\n%s", spec, err, out)
		}
	}
	if got := e.git(repo, "rev-parse", "refs/notes/slipway"); got != daemons {
		t.Errorf("the notes ref moved from %s to %s", daemons, got)
	}
	// A writer's own notes are fine.
	if out, err := e.push(work, e.token("app", "alice"), repo, "refs/notes/commits"); err != nil {
		t.Errorf("push of refs/notes/commits refused: %v\n%s", err, out)
	}
	if out, err := e.push(work, e.token("app", "carol"), repo, "+refs/notes/commits:refs/notes/other"); err == nil {
		t.Errorf("a reader pushed a notes ref:\n%s", out)
	}
}
