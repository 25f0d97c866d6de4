package pipeline

import (
	"errors"
	"io"
	"strings"
	"testing"

	"slipway/internal/testutil"
)

// gitIn runs git in the bare repository with stdin.
func gitIn(t *testing.T, dir string, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := testutil.GitCmd(dir, args...)
	cmd.Stdin = stdin
	return testutil.RunGit(t, cmd)
}

// commitOf writes a commit of one tree line ("100644 blob <id>\t<name>")
// into the bare repository, with message.
func commitOf(t *testing.T, bare, treeLine, message string) string {
	t.Helper()
	tree := gitIn(t, bare, strings.NewReader(treeLine+"\n"), "mktree")
	return gitIn(t, bare, strings.NewReader(message), "commit-tree", tree)
}

// TestLoadRefusesALargeFileUnread: a 64 MiB pipeline file (a 64 KiB
// push) is refused by Load and by LoadGit with its size and the limit,
// loose and packed, while the heap allocates less than 1 MiB: its size
// comes from the object's header. (Before, Load allocated 375 MiB here.)
func TestLoadRefusesALargeFileUnread(t *testing.T) {
	const size = 64 << 20
	r := newRepo(t)
	blob := gitIn(t, r.bare, testutil.Zeros(size), "hash-object", "-w", "--stdin")
	c := commitOf(t, r.bare, "100644 blob "+blob+"\t"+FileName, "a large pipeline file")
	want := ".slipway.toml of commit " + c + ": .slipway.toml is 67108864 bytes; the limit is 1048576"
	for _, stage := range []string{"loose", "packed"} {
		if stage == "packed" {
			gitIn(t, r.bare, nil, "update-ref", "refs/heads/big", c)
			gitIn(t, r.bare, nil, "repack", "-adq")
			gitIn(t, r.bare, nil, "prune-packed")
		}
		var err, gerr error
		n := testutil.Allocated(func() { _, err = Load(t.Context(), testPool(), r.bare, c) })
		ng := testutil.Allocated(func() { _, gerr = LoadGit(t.Context(), r.bare, c, nil) })
		var se *SizeError
		if !errors.As(err, &se) || se.Size != size || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Load: %v; want a SizeError saying %q", stage, err, want)
		}
		if gerr == nil || !strings.Contains(gerr.Error(), want) {
			t.Errorf("%s: LoadGit: %v; want %q", stage, gerr, want)
		}
		if n > 1<<20 || ng > 1<<20 {
			t.Errorf("%s: Load allocated %d bytes, LoadGit %d, to refuse a 64 MiB file; want < 1 MiB", stage, n, ng)
		}
		t.Logf("%s: refusing a 64 MiB pipeline file allocated %d KiB (Load), %d KiB (LoadGit)", stage, n>>10, ng>>10)
	}
}

// TestLoadLeavesLargeCommitsToGit: a commit whose message is over the
// in-process cap is not read into the daemon; git reads it, and the file
// is found all the same.
func TestLoadLeavesLargeCommitsToGit(t *testing.T) {
	r := newRepo(t)
	blob := gitIn(t, r.bare, strings.NewReader("[build]\nsteps = [\"make\"]\n"), "hash-object", "-w", "--stdin")
	c := commitOf(t, r.bare, "100644 blob "+blob+"\t"+FileName, "long\n\n"+strings.Repeat("a long message\n", 2<<20/15))
	var f *File
	var err error
	n := testutil.Allocated(func() { f, err = Load(t.Context(), testPool(), r.bare, c) })
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p, _, ok := f.Section("build", ""); !ok || p.Steps[0] != "make" {
		t.Errorf("Load = %+v", f)
	}
	if n > 1<<20 {
		t.Errorf("Load of a commit with a 2 MiB message allocated %d bytes; want < 1 MiB (git reads it)", n)
	}
}
