package gitobj

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slipway/internal/testutil"
)

// git runs the real git in dir with no user or system configuration.
func git(t testing.TB, dir string, stdin io.Reader, args ...string) string {
	t.Helper()
	cmd := testutil.GitCmd(dir, append([]string{"-c", "init.defaultBranch=main"}, args...)...)
	cmd.Stdin = stdin
	return testutil.RunGit(t, cmd)
}

func bareRepo(t testing.TB) string {
	dir := filepath.Join(t.TempDir(), "r.git")
	git(t, "", nil, "init", "-q", "--bare", dir)
	return dir
}

// gitObject is an object as git reads it.
type gitObject struct {
	typ     string
	content []byte
}

// allObjects reads every object of the repository with git.
func allObjects(t *testing.T, dir string) map[string]gitObject {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "--batch-all-objects", "--batch")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git cat-file --batch: %v", err)
	}
	objs := map[string]gitObject{}
	for len(out) > 0 {
		head, rest, _ := bytes.Cut(out, []byte{'\n'})
		f := strings.Fields(string(head))
		size, err := strconv.Atoi(f[2])
		if err != nil || len(rest) < size+1 {
			t.Fatalf("git cat-file --batch: %q", head)
		}
		objs[f[0]] = gitObject{f[1], rest[:size]}
		out = rest[size+1:]
	}
	return objs
}

// readAll reads id with r, copying its content out.
func readAll(t *testing.T, r *Repo, id string) (Type, []byte, error) {
	t.Helper()
	var typ Type
	var data []byte
	err := r.Read(t.Context(), id, func(tt Type, d []byte) error {
		typ, data = tt, bytes.Clone(d)
		return nil
	})
	return typ, data, err
}

// history makes a bare repository (with git fast-import) whose files
// change a little in every commit, so that packs store most of them as
// deltas, some several deep. The objects are loose.
func history(t *testing.T, commits int) string {
	t.Helper()
	dir := bareRepo(t)
	var body strings.Builder
	for i := range 400 {
		fmt.Fprintf(&body, "line %d of a file that changes a little in every commit\n", i)
	}
	var in bytes.Buffer
	data := func(s string) { fmt.Fprintf(&in, "data %d\n%s\n", len(s), s) }
	for c := range commits {
		fmt.Fprintf(&in, "commit refs/heads/main\ncommitter T <t@t> %d +0000\n", 1e9+c)
		data(fmt.Sprintf("commit %d\n\n%s", c, strings.Repeat("message ", c)))
		for f := range 4 {
			fmt.Fprintf(&in, "M 100644 inline dir%d/file%d.txt\n", f%2, f)
			data(body.String() + strings.Repeat(fmt.Sprintf("commit %d file %d\n", c, f), c%7+1))
		}
	}
	git(t, dir, &in, "fast-import", "--quiet")
	// Into loose objects, as a small push leaves them.
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
	for _, p := range packs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		moved := filepath.Join(t.TempDir(), "p.pack")
		os.Rename(p, moved)
		os.Remove(strings.TrimSuffix(p, ".pack") + ".idx")
		git(t, dir, f, "unpack-objects", "-q")
		f.Close()
	}
	return dir
}

// TestReadAgreesWithGit reads every object of a repository, loose and then
// packed with delta chains, and compares type, size and
// content with what git says.
func TestReadAgreesWithGit(t *testing.T) {
	t.Parallel()
	dir := history(t, 60)
	check := func(stage string) {
		objs := allObjects(t, dir)
		r := NewPool(1<<20, 2).Open(dir)
		defer r.Close()
		for id, want := range objs {
			size, err := r.Size(id)
			if err != nil || size != int64(len(want.content)) {
				t.Fatalf("%s: Size(%s) = %d, %v; git says %d", stage, id, size, err, len(want.content))
			}
			typ, data, err := readAll(t, r, id)
			if err != nil {
				t.Fatalf("%s: Read(%s): %v", stage, id, err)
			}
			if typ.String() != want.typ || !bytes.Equal(data, want.content) {
				t.Fatalf("%s: Read(%s) = %s of %d bytes; git says %s of %d", stage, id, typ, len(data), want.typ, len(want.content))
			}
		}
		t.Logf("%s: %d objects agree", stage, len(objs))
	}
	check("loose")
	git(t, dir, nil, "repack", "-adfq", "--depth=40", "--window=50")
	verify := git(t, dir, nil, "verify-pack", "-s", filepath.Join(dir, "objects", "pack", packName(t, dir)))
	if !strings.Contains(verify, "chain length = 2") {
		t.Fatalf("the repack made no delta chains:\n%s", verify)
	}
	t.Logf("packed:\n%s", verify)
	check("packed")
}

func packName(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.idx"))
	if len(m) != 1 {
		t.Fatalf("want one pack, have %v", m)
	}
	return filepath.Base(m[0])
}

// TestLargeObjectIsRefusedFromItsHeader: a 64 MiB blob, loose and then
// packed, has its size read and is refused by Read with the size named,
// while the heap allocates less than 1 MiB.
func TestLargeObjectIsRefusedFromItsHeader(t *testing.T) {
	const size = 64 << 20
	dir := bareRepo(t)
	id := git(t, dir, testutil.Zeros(size), "hash-object", "-w", "--stdin")
	for _, stage := range []string{"loose", "packed"} {
		if stage == "packed" {
			git(t, dir, strings.NewReader(id+"\n"), "pack-objects", "-q", filepath.Join(dir, "objects", "pack", "pack"))
			os.RemoveAll(filepath.Join(dir, "objects", id[:2]))
		}
		r := NewPool(1<<20, 1).Open(dir)
		var got int64
		var err, sizeErr error
		n := testutil.Allocated(func() {
			got, sizeErr = r.Size(id)
			err = r.Read(t.Context(), id, func(Type, []byte) error {
				t.Error("Read called fn with a 64 MiB object")
				return nil
			})
		})
		r.Close()
		var tl *TooLargeError
		if sizeErr != nil || got != size {
			t.Errorf("%s: Size = %d, %v; want %d", stage, got, sizeErr, size)
		}
		if !errors.As(err, &tl) || tl.Size != size || tl.Limit != 1<<20 || !strings.Contains(err.Error(), "is 67108864 bytes; the limit is 1048576") {
			t.Errorf("%s: Read: %v; want a TooLargeError naming 67108864 bytes", stage, err)
		}
		if n > 1<<20 {
			t.Errorf("%s: Size and Read allocated %d bytes for a refused 64 MiB object; want < 1 MiB", stage, n)
		}
		t.Logf("%s: Size and Read of a 64 MiB blob allocated %d KiB", stage, n>>10)
	}
}

// TestSmallObjectOnLargeBaseIsLeftToGit: a pusher can store a 6-byte file
// as a delta against a 64 MiB blob. Rebuilding it would mean inflating the
// base whole (go-git does); Read refuses before inflating anything, and
// git reads it.
func TestSmallObjectOnLargeBaseIsLeftToGit(t *testing.T) {
	const big = 64 << 20
	dir := bareRepo(t)
	testutil.WriteDeltaOnZeros(t, dir, big, testutil.Delta(big, 6, testutil.DeltaOp{Insert: []byte("hello\n")}))
	small := testutil.ObjectID("blob", []byte("hello\n"))
	if got := git(t, dir, nil, "cat-file", "blob", small); got != "hello" {
		t.Fatalf("git reads the small blob as %q", got)
	}
	r := NewPool(1<<20, 1).Open(dir)
	defer r.Close()
	var size int64
	var err, sizeErr error
	n := testutil.Allocated(func() {
		size, sizeErr = r.Size(small)
		err = r.Read(t.Context(), small, func(Type, []byte) error { return nil })
	})
	if sizeErr != nil || size != 6 {
		t.Errorf("Size = %d, %v; want 6", size, sizeErr)
	}
	if !errors.Is(err, ErrNotInProcess) || !strings.Contains(err.Error(), "delta base of 67108864 bytes") {
		t.Errorf("Read: %v; want ErrNotInProcess naming the base's size", err)
	}
	if n > 1<<20 {
		t.Errorf("Size and Read allocated %d bytes; want < 1 MiB", n)
	}
	t.Logf("a 6-byte blob on a 64 MiB base: Size and Read allocated %d KiB", n>>10)
}

// TestDeltaChains: a chain of MaxDepth deltas is read and agrees with git;
// one more is left to git; a delta whose result is over the cap is
// refused with its size.
func TestDeltaChains(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{MaxDepth, MaxDepth + 1} {
		dir := bareRepo(t)
		content := []byte("v0\n")
		entries := []testutil.PackEntry{{Type: 3, Data: bytes.NewReader(content), Size: int64(len(content))}}
		for i := 1; i <= depth; i++ {
			next := fmt.Appendf(bytes.Clone(content), "v%d\n", i)
			d := testutil.Delta(int64(len(content)), int64(len(next)), testutil.DeltaOp{Off: 0, Size: int64(len(content))}, testutil.DeltaOp{Insert: next[len(content):]})
			entries = append(entries, testutil.PackEntry{Type: 6, Data: bytes.NewReader(d), Size: int64(len(d)), Base: i - 1})
			content = next
		}
		testutil.WritePack(t, dir, entries)
		id := testutil.ObjectID("blob", content)
		if got := git(t, dir, nil, "cat-file", "blob", id); got != strings.TrimSpace(string(content)) {
			t.Fatalf("git reads the top of the chain as %q", got)
		}
		r := NewPool(1<<20, 1).Open(dir)
		_, data, err := readAll(t, r, id)
		r.Close()
		switch {
		case depth <= MaxDepth && (err != nil || !bytes.Equal(data, content)):
			t.Errorf("a chain of %d: Read = %q, %v; want %q", depth, data, err, content)
		case depth > MaxDepth && !errors.Is(err, ErrNotInProcess):
			t.Errorf("a chain of %d: Read = %v; want ErrNotInProcess", depth, err)
		}
	}

	// A 1 KiB delta that makes 2 MiB of a small base.
	dir := bareRepo(t)
	var ops []testutil.DeltaOp
	for range 32 {
		ops = append(ops, testutil.DeltaOp{Off: 0, Size: 0x10000})
	}
	testutil.WriteDeltaOnZeros(t, dir, 0x10000, testutil.Delta(0x10000, 2<<20, ops...))
	id := testutil.ObjectID("blob", make([]byte, 2<<20))
	r := NewPool(1<<20, 1).Open(dir)
	defer r.Close()
	var tl *TooLargeError
	if _, _, err := readAll(t, r, id); !errors.As(err, &tl) || tl.Size != 2<<20 {
		t.Errorf("Read of a 2 MiB delta result: %v; want TooLargeError of 2097152 bytes", err)
	}
}

// TestPoolBoundsReadsAtOnce: with room for two reads, eight goroutines
// reading at once never hold more than two objects.
func TestPoolBoundsReadsAtOnce(t *testing.T) {
	t.Parallel()
	dir := bareRepo(t)
	id := git(t, dir, strings.NewReader("content\n"), "hash-object", "-w", "--stdin")
	p := NewPool(1<<20, 2)
	if p.Bound() != 6<<20 {
		t.Errorf("Bound = %d, want 3 x 2 x 1 MiB", p.Bound())
	}
	var now, peak atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := p.Open(dir)
			defer r.Close()
			for range 20 {
				err := r.Read(t.Context(), id, func(Type, []byte) error {
					n := now.Add(1)
					for {
						m := peak.Load()
						if n <= m || peak.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					now.Add(-1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("at most %d reads held objects at once; want 2", peak.Load())
	}

	// A read waiting for room gives up with its context.
	r := p.Open(dir)
	defer r.Close()
	held := make(chan struct{})
	release := make(chan struct{})
	for range 2 {
		go r2(p, dir, id, held, release)
		<-held
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := r.Read(ctx, id, func(Type, []byte) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read with the pool full: %v; want the context's deadline", err)
	}
	close(release)
}

func r2(p *Pool, dir, id string, held, release chan struct{}) {
	r := p.Open(dir)
	defer r.Close()
	_ = r.Read(context.Background(), id, func(Type, []byte) error {
		held <- struct{}{}
		<-release
		return nil
	})
}

func TestNotFoundAndNotSHA1(t *testing.T) {
	t.Parallel()
	dir := bareRepo(t)
	r := NewPool(1<<20, 1).Open(dir)
	defer r.Close()
	for _, id := range []string{strings.Repeat("ab", 20), strings.Repeat("ab", 32)} {
		if _, err := r.Size(id); !errors.Is(err, ErrNotInProcess) {
			t.Errorf("Size(%s): %v; want ErrNotInProcess", id, err)
		}
	}
	if _, err := r.Size("zz" + strings.Repeat("a", 38)); err == nil || errors.Is(err, ErrNotInProcess) {
		t.Errorf("Size of a bad name: %v; want an error", err)
	}
}

// TestPackWrittenAfterOpen: an object a `git gc` packed (and removed from
// the loose objects) after the Repo first looked is still found.
func TestPackWrittenAfterOpen(t *testing.T) {
	t.Parallel()
	dir := bareRepo(t)
	a := git(t, dir, strings.NewReader("a\n"), "hash-object", "-w", "--stdin")
	git(t, dir, nil, "repack", "-adq")
	b := git(t, dir, strings.NewReader("b\n"), "hash-object", "-w", "--stdin")
	r := NewPool(1<<20, 1).Open(dir)
	defer r.Close()
	if _, _, err := readAll(t, r, a); err != nil {
		t.Fatal(err)
	}
	git(t, dir, nil, "update-ref", "refs/tags/b", b)
	git(t, dir, nil, "repack", "-adq")
	git(t, dir, nil, "prune-packed")
	if _, data, err := readAll(t, r, b); err != nil || string(data) != "b\n" {
		t.Errorf("Read of an object packed after the first look: %q, %v", data, err)
	}
}

func TestParseTree(t *testing.T) {
	t.Parallel()
	dir := history(t, 1)
	tree := git(t, dir, nil, "rev-parse", "HEAD^{tree}")
	r := NewPool(1<<20, 1).Open(dir)
	defer r.Close()
	_, commit, err := readAll(t, r, git(t, dir, nil, "rev-parse", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CommitTree(commit); err != nil || got != tree {
		t.Fatalf("CommitTree = %s, %v; want %s", got, err, tree)
	}
	_, data, err := readAll(t, r, tree)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = ParseTree(data, func(e TreeEntry) error {
		got = append(got, fmt.Sprintf("%06o %s %s", e.Mode, e.ID, e.Name))
		return nil
	})
	want := git(t, dir, nil, "ls-tree", "HEAD")
	want = strings.NewReplacer(" tree ", " ", " blob ", " ", "\t", " ").Replace(want)
	if err != nil || strings.Join(got, "\n") != want {
		t.Errorf("ParseTree: %v\n%s\nwant\n%s", err, strings.Join(got, "\n"), want)
	}
	for _, bad := range []string{"100644 a", "100644 \x00" + strings.Repeat("x", 20), "1x0644 a\x00" + strings.Repeat("x", 20), "100644 a\x00short"} {
		if err := ParseTree([]byte(bad), func(TreeEntry) error { return nil }); err == nil {
			t.Errorf("ParseTree(%q) = nil; want an error", bad)
		}
	}
}
