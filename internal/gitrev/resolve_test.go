package gitrev

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bare := filepath.Join(dir, "app.git")
	git(t, "", nil, "init", "-q", "--bare", "--initial-branch=main", bare)
	work := filepath.Join(dir, "work")
	git(t, "", nil, "init", "-q", "--initial-branch=main", work)
	git(t, work, nil, "commit", "-q", "--allow-empty", "-m", "one")
	one := git(t, work, nil, "rev-parse", "HEAD")
	git(t, work, nil, "commit", "-q", "--allow-empty", "-m", "two")
	two := git(t, work, nil, "rev-parse", "HEAD")
	git(t, work, nil, "tag", "-a", "-m", "v1", "v1", one)
	git(t, work, nil, "push", "-q", bare, "main", "v1")
	for rev, want := range map[string]string{"main": two, "refs/heads/main": two, "v1": one, "main~1": one, two[:7]: two, two: two} {
		if got, err := Resolve(t.Context(), bare, rev); err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", rev, got, err, want)
		}
	}
	for _, rev := range []string{"nope", "", "--all", "main:README", "main@{1}", "-n", "a b", "HEAD\n"} {
		if got, err := Resolve(t.Context(), bare, rev); !errors.Is(err, ErrUnknownRev) {
			t.Errorf("Resolve(%q) = %q, %v; want ErrUnknownRev", rev, got, err)
		}
	}
}
