package hooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"slipway/record"
)

// failingLedger is the real store whose prepared records fail, as they do
// on a full disk.
type failingLedger struct {
	Ledger
	err error
}

func (f failingLedger) PreparePush(context.Context, record.Push, string) (int64, error) {
	return 0, f.err
}

// A push whose record cannot be written is refused with the reason, and no
// ref moves: the pusher is never told "ok" for something unrecorded.
func TestPushWhoseRecordFailsIsRefused(t *testing.T) {
	t.Parallel()
	full := errors.New("database or disk is full (13)")
	var e *testEnv
	e = newEnv(t, func(o *ServerOptions) { o.Ledger = failingLedger{Ledger: o.Ledger, err: full} })
	repo := e.bareRepo("app")
	work := e.workRepo()

	for _, token := range []string{e.token("app", "alice"), ""} {
		out, err := e.push(work, token, repo, "main")
		if err == nil {
			t.Fatalf("push (token %q) succeeded although its record failed:\n%s", token, out)
		}
		if !strings.Contains(out, "could not record the update of refs/heads/main, so it is refused and nothing changed: database or disk is full") {
			t.Errorf("the pusher is not told why (token %q):\n%s", token, out)
		}
		if e.refExists(repo, "refs/heads/main") {
			t.Fatalf("main exists although its record failed")
		}
	}
	if _, ok := e.lastPush("app"); ok {
		t.Error("a push is recorded")
	}
}

// git run by hand on the server's disk goes through the repository's
// reference-transaction hook: the update is recorded before it is made
// (an open push of user "local", which reconciliation finishes), and
// refused while the daemon cannot record it.
func TestUpdateOnDiskIsRecordedFirst(t *testing.T) {
	t.Parallel()
	e, repo, work := newAppEnv(t)
	head := e.git(work, "rev-parse", "HEAD")
	e.mustPush("push", work, e.token("app", "alice"), repo, "main")

	e.git(repo, "update-ref", "refs/heads/by-hand", head)
	open, err := e.store.OpenPushes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].User != LocalUser || len(open[0].Refs) != 1 || open[0].Refs[0].Name != "refs/heads/by-hand" {
		t.Fatalf("open pushes after update-ref by hand: %+v, want one of user local with refs/heads/by-hand committed", open)
	}
	if refs, _ := e.store.RecordedRefs(t.Context(), "app"); refs["refs/heads/by-hand"] != head {
		t.Errorf("recorded refs %v: by-hand is not at %s", refs, head)
	}
	// A ref update git gives up (the old value is wrong) is withdrawn.
	if out, err := e.gitErr(repo, nil, "update-ref", "refs/heads/by-hand", head, zero); err == nil {
		t.Fatalf("update-ref with a wrong old value succeeded:\n%s", out)
	}
	open, _ = e.store.OpenPushes(t.Context())
	if len(open) != 1 || len(open[0].Prepared) != 0 {
		t.Errorf("after an aborted update: %+v, want nothing prepared", open)
	}

	// Daemon down: nothing can be recorded, so nothing moves.
	e.stop()
	out, err := e.gitErr(repo, nil, "update-ref", "refs/heads/while-down", head)
	if err == nil {
		t.Fatalf("update-ref succeeded with the daemon down:\n%s", out)
	}
	if !strings.Contains(out, "cannot reach the Slipway daemon") || !strings.Contains(out, "the ref update is refused, nothing changed") {
		t.Errorf("unclear refusal:\n%s", out)
	}
	if e.refExists(repo, "refs/heads/while-down") {
		t.Error("the ref moved with the daemon down")
	}
}
