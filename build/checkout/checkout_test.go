package checkout

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"slipway/internal/gitobj"
	"slipway/internal/testutil"
)

// git runs git in dir with a fixed identity and no user or system config.
func gitT(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitIn(t, dir, "", args...)
}

func gitIn(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := testutil.GitCmd(dir, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return testutil.RunGit(t, cmd)
}

// snapshot lists every path of dir with its mode, size and modification
// time, to show that the bare repository was not changed in any way.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel+" "+fi.Mode().String()+" "+fi.ModTime().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newRepo makes a bare repository whose main branch holds a small tree with
// an executable, symlinks (one pointing out of the tree), nested folders, an
// empty folder (which git does not record) and a submodule entry.
//
// With viaGit the tree also holds a .gitattributes, which sends it through
// git rather than the in-process writer for small trees.
func newRepo(t *testing.T, viaGit bool) (bare, commit string) {
	t.Helper()
	base := t.TempDir()
	bare = filepath.Join(base, "repo.git")
	work := filepath.Join(base, "work")
	gitT(t, base, "init", "-q", "--bare", bare)
	gitT(t, base, "init", "-q", "-b", "main", work)
	write := func(name, data string, perm os.FileMode) {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), perm); err != nil {
			t.Fatal(err)
		}
	}
	write("README", "hello\n", 0o644)
	write("build.sh", "#!/bin/sh\necho built\n", 0o755)
	write("a/b/c/deep.txt", "deep\n", 0o644)
	must(t, os.Symlink("a/b", filepath.Join(work, "to-b")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(work, "passwd-link")))
	must(t, os.Symlink("../../outside", filepath.Join(work, "escape-link")))
	must(t, os.MkdirAll(filepath.Join(work, "empty"), 0o755))
	if viaGit {
		write(".gitattributes", "# no conversions\n", 0o644)
	}
	gitT(t, work, "add", "-A")
	// A gitlink needs no real submodule: any commit id will do.
	gitT(t, work, "update-index", "--add", "--cacheinfo", "160000,1111111111111111111111111111111111111111,vendor/lib")
	gitT(t, work, "commit", "-q", "-m", "tree")
	gitT(t, work, "push", "-q", bare, "main")
	return bare, gitT(t, work, "rev-parse", "HEAD")
}

// testOptions are the daemon's: small trees in-process, no file limit.
func testOptions() Options { return Options{Objects: gitobj.NewPool(1<<20, 4)} }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutWritesTheTree(t *testing.T) {
	t.Parallel()
	t.Run("in-process", func(t *testing.T) { testCheckoutWritesTheTree(t, false) })
	t.Run("git", func(t *testing.T) { testCheckoutWritesTheTree(t, true) })
}

func testCheckoutWritesTheTree(t *testing.T, viaGit bool) {
	bare, commit := newRepo(t, viaGit)
	before := snapshot(t, bare)
	// A bare repository has no status; its refs and config are its state.
	stateCmd := []string{"for-each-ref", "--format=%(refname) %(objectname)"}
	refsBefore := gitT(t, bare, stateCmd...)
	configBefore := gitT(t, bare, "config", "--local", "--list")
	dst := t.TempDir()

	res, err := Checkout(t.Context(), bare, commit, dst, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := 6
	if viaGit {
		want++ // .gitattributes
	}
	if res.Files != want {
		t.Errorf("Files = %d, want %d (README, build.sh, deep.txt, three symlinks, .gitattributes if any)", res.Files, want)
	}
	if !slices.Equal(res.Submodules, []string{"vendor/lib"}) {
		t.Errorf("Submodules = %q, want [vendor/lib]", res.Submodules)
	}

	mode := func(name string) fs.FileMode {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode()
	}
	if m := mode("build.sh"); m.Perm()&0o111 == 0 {
		t.Errorf("build.sh mode %v, want executable", m)
	}
	if m := mode("README"); m.Perm()&0o111 != 0 {
		t.Errorf("README mode %v, want not executable", m)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a/b/c/deep.txt")); err != nil || string(b) != "deep\n" {
		t.Errorf("deep.txt = %q, %v", b, err)
	}
	for name, target := range map[string]string{"to-b": "a/b", "passwd-link": "/etc/passwd", "escape-link": "../../outside"} {
		if m := mode(name); m&fs.ModeSymlink == 0 {
			t.Errorf("%s mode %v, want a symlink", name, m)
		}
		if got, _ := os.Readlink(filepath.Join(dst, name)); got != target {
			t.Errorf("%s -> %q, want %q", name, got, target)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "empty")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty folder, which git does not record, exists: %v", err)
	}
	if entries, err := os.ReadDir(filepath.Join(dst, "vendor/lib")); err != nil || len(entries) != 0 {
		t.Errorf("submodule folder: entries %v, err %v; want an empty folder", entries, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, ".git")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("workspace has .git: %v", err)
	}

	if after := snapshot(t, bare); !slices.Equal(before, after) {
		t.Errorf("bare repository changed:\nbefore %q\nafter  %q", before, after)
	}
	if s := gitT(t, bare, stateCmd...); s != refsBefore {
		t.Errorf("refs of bare repo changed: %q -> %q", refsBefore, s)
	}
	if s := gitT(t, bare, "config", "--local", "--list"); s != configBefore {
		t.Errorf("config of bare repo changed: %q -> %q", configBefore, s)
	}
	for _, p := range []string{"index", "worktrees", "logs/HEAD"} {
		if _, err := os.Lstat(filepath.Join(bare, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s appeared in bare repository: %v", p, err)
		}
	}
}

// A tree made by hand (git fsck would refuse it, but a server may have
// accepted it) holds a symlink "link" to a folder outside the workspace and
// a tree of the same name with a file in it. Writing link/evil must not land
// in the outside folder.
func TestCheckoutNeverWritesThroughSymlink(t *testing.T) {
	t.Parallel()
	t.Run("in-process", func(t *testing.T) { testNeverWritesThroughSymlink(t, false) })
	t.Run("git", func(t *testing.T) { testNeverWritesThroughSymlink(t, true) })
}

func testNeverWritesThroughSymlink(t *testing.T, viaGit bool) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	must(t, os.Mkdir(outside, 0o755))
	bare := filepath.Join(base, "repo.git")
	gitT(t, base, "init", "-q", "--bare", bare)

	blob := gitIn(t, bare, "owned\n", "hash-object", "-w", "--stdin")
	target := gitIn(t, bare, outside, "hash-object", "-w", "--stdin")
	inner := gitIn(t, bare, "100644 blob "+blob+"\tevil\n", "mktree")
	// mktree sorts and rejects nothing here; both entries are named "link".
	entries := "120000 blob " + target + "\tlink\n040000 tree " + inner + "\tlink\n"
	if viaGit {
		entries += "100644 blob " + blob + "\t.gitattributes\n"
	}
	tree := gitIn(t, bare, entries, "mktree", "--missing")
	commit := gitT(t, bare, "commit-tree", tree, "-m", "hostile")

	dst := filepath.Join(base, "ws")
	must(t, os.Mkdir(dst, 0o755))
	_, err := Checkout(t.Context(), bare, commit, dst, testOptions())
	t.Logf("Checkout of hostile tree: %v", err)
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("Checkout wrote outside the workspace: %v", entries)
	}
}

func TestCheckoutRefuses(t *testing.T) {
	t.Parallel()
	bare, commit := newRepo(t, false)
	full := t.TempDir()
	must(t, os.WriteFile(filepath.Join(full, "old"), nil, 0o644))
	if _, err := Checkout(t.Context(), bare, commit, full, testOptions()); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("non-empty destination: err = %v, want ErrNotEmpty", err)
	}
	for _, bad := range []string{"main", "HEAD", commit[:12], "--output=/tmp/x", strings.ToUpper(commit)} {
		if _, err := Checkout(t.Context(), bare, bad, t.TempDir(), testOptions()); err == nil {
			t.Errorf("commit %q accepted", bad)
		}
	}
	tree := gitT(t, bare, "rev-parse", commit+"^{tree}")
	if _, err := Checkout(t.Context(), bare, tree, t.TempDir(), testOptions()); err == nil {
		t.Errorf("tree id %s accepted as a commit", tree)
	}
}

func FuzzParseListing(f *testing.F) {
	f.Add([]byte("100644 blob e69de29bb2d1d6434b8b29ae775ad8c2e48c5391       0\tREADME\x00160000 commit 1111111111111111111111111111111111111111       -\tvendor/lib\x00"))
	f.Add([]byte("120000 blob abc 12\tlink"))
	f.Add([]byte("\x00"))
	f.Add([]byte("160000 commit x -\t \x00"))
	f.Add([]byte("100644 blob x 99999999999\tbig\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := parseListing(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		var fse *FileSizeError
		if errors.As(err, &fse) && fse.Size <= 1<<20 {
			t.Errorf("a file of %d bytes refused under a limit of 1 MiB", fse.Size)
		}
		if err == nil && res.Files+len(res.Submodules)+res.MoreSubmodules != strings.Count(string(b), "\x00") {
			t.Errorf("counted %d entries in %d records", res.Files+len(res.Submodules), strings.Count(string(b), "\x00"))
		}
	})
}

// A tree larger than smallTreeMax is written by git, and completely.
func TestCheckoutLargeTree(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	bare := filepath.Join(base, "repo.git")
	work := filepath.Join(base, "work")
	gitT(t, base, "init", "-q", "--bare", bare)
	gitT(t, base, "init", "-q", "-b", "main", work)
	n := smallTreeMax + 50
	for i := range n {
		p := filepath.Join(work, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(fmt.Sprint(i)), 0o644))
	}
	gitT(t, work, "add", "-A")
	gitT(t, work, "commit", "-q", "-m", "many")
	gitT(t, work, "push", "-q", bare, "main")
	commit := gitT(t, work, "rev-parse", "HEAD")
	dst := t.TempDir()
	res, err := Checkout(t.Context(), bare, commit, dst, testOptions())
	if err != nil || res.Files != n {
		t.Fatalf("Checkout = %+v, %v; want %d files", res, err, n)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "d3", "f10")); err != nil || string(b) != "10" {
		t.Fatalf("d3/f10 = %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(bare, "index")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("index appeared in bare repository: %v", err)
	}
}
