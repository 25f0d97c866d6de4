package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"slipway/record"
)

// TestRefMovedWithoutARecordIsBuiltAtStart: a ref moved on the server's disk
// while the daemon was down, by a git whose hooks did not run (as a kill -9
// at the wrong moment of an older Slipway could leave it), is recorded at
// the next start as a push found at start, with no user, and built. With
// the hooks in place, git on the server's disk cannot move a ref while the daemon is
// down.
func TestRefMovedWithoutARecordIsBuiltAtStart(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "echo hello")})
	first, _ := btPushOne(t, d, alice, src, "main")
	db := d.store(t)
	btFinal(t, d, db, bob, "app", first)
	next := alice.commit(t, src, "two", "two\n")
	d.stop()

	repo := filepath.Join(d.dataDir(), "repos", "app.git")
	alice.mustGit(t, src, "push", "-q", "--receive-pack=git -c core.hooksPath=/dev/null receive-pack", repo, "main:refs/heads/side")
	// With the repository's own hooks, the daemon must answer first.
	cmd := exec.Command("git", "--git-dir", repo, "update-ref", "refs/heads/main", next)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "the ref update is refused, nothing changed") {
		t.Fatalf("update-ref with the daemon down: %v\n%s", err, out)
	}
	run(t, "", nil, "git", "--git-dir", repo, "-c", "core.hooksPath=/dev/null", "update-ref", "refs/heads/main", next)

	d.start()
	var found record.Push
	d.eventually(t, btBuildTimeout, "the push found at start", func() bool {
		last, err := db.LastPushes(t.Context())
		found = last["app"]
		return err == nil && found.Found()
	})
	if len(found.Refs) != 2 || found.Refs[0].Name != "refs/heads/main" || found.Refs[0].New != next ||
		found.Refs[1].Name != "refs/heads/side" || found.Refs[1].New != next {
		t.Fatalf("push found at start: %+v; want main and side at %s", found.Refs, next)
	}
	if logs, ok := d.logsContain("refs moved without a record"); !ok {
		t.Errorf("the daemon's log does not say what it found:\n%s", logs)
	}
	var built []btBuild
	d.eventually(t, btBuildTimeout, "the found refs to be built", func() bool {
		built = nil
		for _, b := range btBuilds(t, d, bob, "app") {
			if b.PushID == found.ID && b.State == "passed" {
				built = append(built, b)
			}
		}
		return len(built) == 2
	})
	// A restart finds nothing new.
	d.stop()
	d.start()
	if last, _ := db.LastPushes(t.Context()); last["app"].ID != found.ID {
		t.Errorf("a second start recorded push #%d, want none after #%d", last["app"].ID, found.ID)
	}
}
