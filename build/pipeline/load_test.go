package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/internal/gitobj"
	"slipway/internal/testutil"
)

// repo is a bare repository fed by pushes from a scratch clone, the way
// Slipway's repositories are.
type repo struct {
	t          *testing.T
	bare, work string
}

func newRepo(t *testing.T) *repo {
	dir := t.TempDir()
	r := &repo{t: t, bare: filepath.Join(dir, "app.git"), work: filepath.Join(dir, "work")}
	testutil.Git(t, dir, "init", "--bare", "-q", "--initial-branch=main", r.bare)
	testutil.Git(t, dir, "init", "-q", "--initial-branch=main", r.work)
	return r
}

// commit replaces the work tree's files (nil content deletes), commits and
// pushes to branch, returning the commit id.
func (r *repo) commit(branch string, files map[string]*string) string {
	r.t.Helper()
	r.write(files)
	testutil.Git(r.t, r.work, "add", "-A")
	testutil.Git(r.t, r.work, "commit", "-q", "--allow-empty", "-m", "change")
	testutil.Git(r.t, r.work, "push", "-q", r.bare, "HEAD:refs/heads/"+branch)
	return testutil.Git(r.t, r.work, "rev-parse", "HEAD")
}

// write replaces files in the work tree: a nil content deletes the file,
// and .slipway.toml is always removed first (it may be a link or a folder).
// Deletions go first, so a map can turn a file into a folder or back.
func (r *repo) write(files map[string]*string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == nil || name == FileName {
			if err := os.RemoveAll(p); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	for name, content := range files {
		if content == nil {
			continue
		}
		testutil.WriteFile(r.t, filepath.Join(r.work, name), *content)
	}
}

// oddEntries commits, on branches of their names, a .slipway.toml that is
// no file to read: a symbolic link to a valid file (following it would be
// reading another path), a folder, and a file over MaxFileSize.
func (r *repo) oddEntries() (link, dir, big string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.work, FileName)); err != nil {
		r.t.Fatal(err)
	}
	testutil.WriteFile(r.t, filepath.Join(r.work, "real.toml"), "[build]\nsteps = [\"make\"]\n")
	if err := os.Symlink("real.toml", filepath.Join(r.work, FileName)); err != nil {
		r.t.Fatal(err)
	}
	link = r.commit("link", nil)
	dir = r.commit("dir", map[string]*string{FileName: nil, FileName + "/x": ptr("y")})
	big = r.commit("big", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\n#" + strings.Repeat("x", MaxFileSize))})
	return link, dir, big
}

func ptr(s string) *string { return &s }

// testPool is a pool as the daemon has one: objects up to the pipeline
// file's limit, four reads at once.
func testPool() *gitobj.Pool { return gitobj.NewPool(MaxFileSize, 4) }

func TestLoadReadsTheFileOfTheCommit(t *testing.T) {
	r := newRepo(t)
	first := r.commit("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\n"), "Makefile": ptr("all:\n")})
	second := r.commit("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make test\"]\n")})

	for commit, want := range map[string]string{first: "make", second: "make test"} {
		f, err := Load(t.Context(), testPool(), r.bare, commit)
		if err != nil {
			t.Fatalf("Load(%q): %v", commit, err)
		}
		if p, _, ok := f.Section("build", ""); !ok || p.Steps[0] != want {
			t.Errorf("Load(%q) build = %+v, %v; want step %q", commit, p, ok, want)
		}
	}
	// Reading must not leave anything in the bare repository (no index).
	if _, err := os.Stat(filepath.Join(r.bare, "index")); !os.IsNotExist(err) {
		t.Errorf("bare repo has an index after Load: %v", err)
	}
}

func TestLoadWithoutFile(t *testing.T) {
	r := newRepo(t)
	c := r.commit("main", map[string]*string{"sub/" + FileName: ptr("[build]\nsteps = [\"make\"]\n")})
	_, err := Load(t.Context(), testPool(), r.bare, c)
	if !errors.Is(err, ErrNoFile) {
		t.Errorf("Load of a commit with the file only in a subfolder: %v, want ErrNoFile", err)
	}
}

func TestLoadBrokenFileCarriesPosition(t *testing.T) {
	r := newRepo(t)
	c := r.commit("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\ntimeout = \"soon\"\n")})
	_, err := Load(t.Context(), testPool(), r.bare, c)
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 3 || pe.Col != 1 {
		t.Fatalf("Load: %v, want an *Error at 3:1", err)
	}
	if errors.Is(err, ErrNoFile) {
		t.Error("a broken file is reported as missing")
	}
}

func TestLoadRefusesOddEntries(t *testing.T) {
	r := newRepo(t)
	link, dir, big := r.oddEntries()

	for commit, want := range map[string]string{link: "symbolic link", dir: "not a regular file", big: "the limit is"} {
		_, err := Load(t.Context(), testPool(), r.bare, commit)
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, ErrNoFile) {
			t.Errorf("Load(%s): %v, want an error saying %q", commit, err, want)
		}
	}
}

func TestLoadBadInputs(t *testing.T) {
	r := newRepo(t)
	r.commit("main", map[string]*string{FileName: ptr("[build]\nsteps = [\"make\"]\n")})
	for name, tc := range map[string]struct{ dir, commit string }{
		"unknown commit": {r.bare, strings.Repeat("ab", 20)},
		"a branch name":  {r.bare, "main"},
		"a short id":     {r.bare, r.commit("main", nil)[:10]},
		"not a repo":     {t.TempDir(), strings.Repeat("ab", 20)},
	} {
		if _, err := Load(t.Context(), testPool(), tc.dir, tc.commit); err == nil || errors.Is(err, ErrNoFile) {
			t.Errorf("%s: Load = %v, want a read error", name, err)
		}
	}
}
