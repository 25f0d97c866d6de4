package checkout

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/internal/gitobj"
	"slipway/internal/testutil"
)

// commitTree writes a commit of the tree given as mktree lines into the
// bare repository; with viaGit a .gitattributes joins the tree, which
// sends it to git's checkout.
func commitTree(t *testing.T, bare string, viaGit bool, lines ...string) string {
	t.Helper()
	if viaGit {
		attrs := testutil.HashObject(t, bare, strings.NewReader("#\n"))
		lines = append(lines, "100644 blob "+attrs+"\t.gitattributes")
	}
	tree := gitIn(t, bare, strings.Join(lines, "\n")+"\n", "mktree")
	return gitT(t, bare, "commit-tree", tree, "-m", "limits")
}

func bare(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo.git")
	gitT(t, t.TempDir(), "init", "-q", "--bare", dir)
	return dir
}

// TestCheckoutRefusesAFileOverTheLimit: a 64 MiB file in a small tree
// fails the checkout with its path, size and the limit before any file
// is written, in-process, by git and from a quarantine; the daemon's heap
// allocates less than 1 MiB meanwhile (the size comes from the object's
// header; git is stopped as soon as its listing names the file).
func TestCheckoutRefusesAFileOverTheLimit(t *testing.T) {
	const size, limit = 64 << 20, 10 << 20
	repo := bare(t)
	small := testutil.HashObject(t, repo, strings.NewReader("hello\n"))
	big := testutil.HashObject(t, repo, testutil.Zeros(size))
	o := Options{MaxFileBytes: limit, Objects: gitobj.NewPool(1<<20, 4)}
	for _, path := range []string{"in-process", "git", "quarantine"} {
		data := gitIn(t, repo, "100644 blob "+big+"\tbig.bin\n", "mktree")
		commit := commitTree(t, repo, path != "in-process", "100644 blob "+small+"\tREADME", "040000 tree "+data+"\tdata", "100644 blob "+small+"\tzz-last")
		dst := t.TempDir()
		var err error
		n := testutil.Allocated(func() {
			if path == "quarantine" {
				// The repository's own objects folder stands in for a
				// quarantine: git reads it first either way.
				_, err = CheckoutQuarantined(t.Context(), repo, filepath.Join(repo, "objects"), commit, dst, o)
			} else {
				_, err = Checkout(t.Context(), repo, commit, dst, o)
			}
		})
		var fse *FileSizeError
		if !errors.As(err, &fse) || fse.Path != "data/big.bin" || fse.Size != size || fse.Limit != limit ||
			!strings.Contains(err.Error(), "data/big.bin is 67108864 bytes; the limit is 10485760") {
			t.Errorf("%s: Checkout: %v; want a FileSizeError for data/big.bin of 67108864 bytes", path, err)
		}
		if written, _ := os.ReadDir(dst); len(written) != 0 {
			t.Errorf("%s: the refused checkout wrote %d entries; want none", path, len(written))
		}
		if n > 1<<20 {
			t.Errorf("%s: the refused checkout allocated %d bytes; want < 1 MiB", path, n)
		}
		t.Logf("%s: refusing a 64 MiB file allocated %d KiB", path, n>>10)
	}
}

// TestCheckoutLimitIsInclusive: a file of exactly MaxFileBytes is written
// (the steps' RLIMIT_FSIZE lets them write it too); one byte more is not.
func TestCheckoutLimitIsInclusive(t *testing.T) {
	repo := bare(t)
	six := testutil.HashObject(t, repo, strings.NewReader("hello\n"))
	seven := testutil.HashObject(t, repo, strings.NewReader("hello!\n"))
	o := Options{MaxFileBytes: 6, Objects: gitobj.NewPool(1<<20, 4)}
	for _, viaGit := range []bool{false, true} {
		at := commitTree(t, repo, viaGit, "100644 blob "+six+"\tsix")
		if _, err := Checkout(t.Context(), repo, at, t.TempDir(), o); err != nil {
			t.Errorf("git %v: a file at the limit: %v", viaGit, err)
		}
		over := commitTree(t, repo, viaGit, "100644 blob "+seven+"\tseven")
		var fse *FileSizeError
		if _, err := Checkout(t.Context(), repo, over, t.TempDir(), o); !errors.As(err, &fse) || fse.Path != "seven" {
			t.Errorf("git %v: a file one byte over the limit: %v; want a FileSizeError", viaGit, err)
		}
	}
}

// checkoutTwoFiles checks commit, a tree of two files, out into dst with
// a 1 GiB file limit and a pool of 1 MiB objects, and returns how many
// bytes the heap allocated meanwhile.
func checkoutTwoFiles(t *testing.T, repo, commit, dst string) uint64 {
	t.Helper()
	var res Result
	var err error
	n := testutil.Allocated(func() {
		res, err = Checkout(t.Context(), repo, commit, dst, Options{MaxFileBytes: 1 << 30, Objects: gitobj.NewPool(1<<20, 4)})
	})
	if err != nil || res.Files != 2 {
		t.Fatalf("Checkout = %+v, %v; want 2 files", res, err)
	}
	return n
}

// TestCheckoutLargeBlobGoesToGit: a small tree whose blob is over the
// in-process cap, but within MaxFileBytes, is written by git, which
// streams it; the daemon's heap allocates less than 1 MiB.
func TestCheckoutLargeBlobGoesToGit(t *testing.T) {
	const size = 64 << 20
	repo := bare(t)
	big := testutil.HashObject(t, repo, testutil.Zeros(size))
	small := testutil.HashObject(t, repo, strings.NewReader("hello\n"))
	commit := commitTree(t, repo, false, "100644 blob "+small+"\tREADME", "100644 blob "+big+"\tbig.bin")
	dst := t.TempDir()
	n := checkoutTwoFiles(t, repo, commit, dst)
	if fi, err := os.Stat(filepath.Join(dst, "big.bin")); err != nil || fi.Size() != size {
		t.Errorf("big.bin: %v, %v; want %d bytes", fi, err, size)
	}
	if n > 1<<20 {
		t.Errorf("checking out a 64 MiB blob allocated %d bytes in the daemon; want < 1 MiB", n)
	}
	t.Logf("checking out a 64 MiB blob allocated %d KiB", n>>10)
}

// TestCheckoutDeltaOnLargeBaseGoesToGit: a small file stored as a delta
// against a 64 MiB blob passes the header checks of a small tree, but
// cannot be rebuilt within the in-process bounds. What was written of the
// tree is removed and git writes it whole, while the heap allocates less
// than 1 MiB.
func TestCheckoutDeltaOnLargeBaseGoesToGit(t *testing.T) {
	const big = 64 << 20
	repo := bare(t)
	testutil.WriteDeltaOnZeros(t, repo, big, testutil.Delta(big, 6, testutil.DeltaOp{Insert: []byte("hello\n")}))
	hello := testutil.ObjectID("blob", []byte("hello\n"))
	first := testutil.HashObject(t, repo, strings.NewReader("first\n"))
	commit := commitTree(t, repo, false, "100644 blob "+first+"\taaa-first", "100644 blob "+hello+"\tzzz-hello")
	dst := t.TempDir()
	n := checkoutTwoFiles(t, repo, commit, dst)
	for name, want := range map[string]string{"aaa-first": "first\n", "zzz-hello": "hello\n"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	if n > 1<<20 {
		t.Errorf("the checkout allocated %d bytes in the daemon; want < 1 MiB", n)
	}
	t.Logf("a 6-byte file on a 64 MiB base: the checkout allocated %d KiB", n>>10)
}
