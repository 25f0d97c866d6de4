package checkout

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"slipway/internal/gitobj"
)

// benchRepoVersion keys the cached benchmark repository; change it when the
// generator changes.
const benchRepoVersion = "v1"

// benchRepo returns a bare repository shaped like go-git's own: 1,200 files in
// nested folders, 60 commits, more than 10,000 objects in history. It is
// generated with git fast-import once and cached under os.TempDir().
func benchRepo(b *testing.B) (gitDir, head string) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "slipway-bench-checkout-"+benchRepoVersion)
	gitDir = filepath.Join(dir, "repo.git")
	done := filepath.Join(dir, "done")
	if h, err := os.ReadFile(done); err == nil {
		return gitDir, strings.TrimSpace(string(h))
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	run(b, "", "git", "init", "-q", "--bare", gitDir)
	cmd := exec.Command("git", "--git-dir="+gitDir, "fast-import", "--quiet")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	writeHistory(bufio.NewWriter(in))
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("fast-import: %v", err)
	}
	run(b, "", "git", "--git-dir="+gitDir, "repack", "-adq")
	head = strings.TrimSpace(run(b, "", "git", "--git-dir="+gitDir, "rev-parse", "refs/heads/main"))
	count := run(b, "", "git", "--git-dir="+gitDir, "count-objects", "-v")
	b.Logf("generated %s at %s:\n%s", gitDir, head, count)
	if err := os.WriteFile(done, []byte(head+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return gitDir, head
}

func writeHistory(w *bufio.Writer) {
	rng := rand.New(rand.NewPCG(1, 2))
	const files = 1200
	paths := make([]string, files)
	for i := range paths {
		// Three levels, like pkg/sub/file.go in a Go module.
		paths[i] = fmt.Sprintf("pkg%02d/sub%d/file%04d.go", i%40, (i/40)%5, i)
	}
	content := func() string {
		var sb strings.Builder
		n := 2000 + rng.IntN(10000)
		for sb.Len() < n {
			fmt.Fprintf(&sb, "func f%d(x int) int { return x * %d } // %x\n", rng.IntN(1e6), rng.IntN(1e6), rng.Uint64())
		}
		return sb.String()
	}
	when := int64(1_700_000_000)
	for c := 0; c < 60; c++ {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.org> %d +0000\ndata 12\ncommit %04d\n", when+int64(c)*60, c)
		if c == 0 {
			for i, p := range paths {
				mode := "100644"
				if i%50 == 0 {
					mode = "100755"
				}
				data := content()
				fmt.Fprintf(w, "M %s inline %s\ndata %d\n%s\n", mode, p, len(data), data)
			}
			fmt.Fprintf(w, "M 120000 inline link-to-pkg00\ndata 5\npkg00\n")
		} else {
			for k := 0; k < 170; k++ {
				data := content()
				fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", paths[rng.IntN(files)], len(data), data)
			}
		}
		w.WriteString("\n")
	}
	w.Flush()
}

func run(tb testing.TB, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// BenchmarkCheckout times Checkout and its rejected alternatives side by side
// with the baseline `git archive <sha> | tar -x -C emptydir`, and reports each
// as a ratio of the baseline measured in the same run.
// benchOptions are the build worker's, with the default max_file_bytes.
var benchOptions = Options{MaxFileBytes: 1 << 30, Objects: gitobj.NewPool(1<<20, 4)}

func BenchmarkCheckout(b *testing.B) {
	gitDir, head := benchRepo(b)
	ctx := context.Background()
	methods := []struct {
		name string
		fn   func(dst string) error
	}{
		{"baseline-archive-tar", func(dst string) error {
			cmd := exec.Command("sh", "-c", `git --git-dir="$1" archive "$2" | tar -x -C "$3"`, "sh", gitDir, head, dst)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}},
		{"Checkout", func(dst string) error { _, err := Checkout(ctx, gitDir, head, dst, benchOptions); return err }},
		{"archive-go", func(dst string) error { _, err := checkoutArchive(ctx, gitDir, head, dst); return err }},
		{"go-git", func(dst string) error { _, err := checkoutGoGit(gitDir, head, dst); return err }},
	}
	// The methods take turns inside each iteration, so that the load of
	// other processes on a shared machine falls on all of them alike.
	base := b.TempDir()
	total := make([]time.Duration, len(methods))
	cpu := make([]time.Duration, len(methods))
	for i := 0; b.Loop(); i++ {
		for k := range methods {
			m := methods[(k+i)%len(methods)]
			dst := filepath.Join(base, fmt.Sprintf("%s-%d", m.name, i))
			if err := os.Mkdir(dst, 0o755); err != nil {
				b.Fatal(err)
			}
			start, cpuStart := time.Now(), cpuTime()
			if err := m.fn(dst); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			total[(k+i)%len(methods)] += time.Since(start)
			cpu[(k+i)%len(methods)] += cpuTime() - cpuStart
			b.StopTimer()
			os.RemoveAll(dst)
			b.StartTimer()
		}
	}
	for k, m := range methods {
		b.ReportMetric(float64(total[k].Milliseconds())/float64(b.N), m.name+"-ms/op")
		if k > 0 {
			b.ReportMetric(float64(total[k])/float64(total[0]), m.name+"/baseline")
			b.ReportMetric(float64(cpu[k])/float64(cpu[0]), m.name+"-cpu/baseline")
		}
	}
}

// cpuTime is the user and system time used so far by this process and its
// waited-for children: on a machine shared with other work, wall time is
// noisy while CPU time is not.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	d := func(tv syscall.Timeval) time.Duration { return time.Duration(tv.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(children.Utime) + d(children.Stime)
}

// checkoutArchive is candidate (a): read the `git archive` tar stream in Go
// and write every entry through an os.Root, refusing paths that leave dst or
// pass through a symbolic link written earlier.
func checkoutArchive(ctx context.Context, gitDir, commit, dst string) (Result, error) {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	cmd := exec.CommandContext(ctx, "git", "--git-dir="+gitDir, "archive", "--format=tar", commit)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	var res Result
	links := map[string]bool{}
	tr := tar.NewReader(out)
	buf := make([]byte, 64<<10)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cmd.Wait()
			return Result{}, err
		}
		name := strings.TrimSuffix(h.Name, "/")
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if !filepath.IsLocal(name) {
			return Result{}, fmt.Errorf("entry %q leaves the workspace", h.Name)
		}
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if links[d] {
				return Result{}, fmt.Errorf("entry %q passes through symlink %q", h.Name, d)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return Result{}, err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return Result{}, err
			}
			links[name] = true
			res.Files++
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode)&0o755|0o644)
			if err != nil {
				return Result{}, err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return Result{}, err
			}
			res.Files++
		}
	}
	if err := cmd.Wait(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// checkoutGoGit is candidate (b): walk the commit's tree with go-git.
func checkoutGoGit(gitDir, commit, dst string) (Result, error) {
	repo, err := git.PlainOpen(gitDir)
	if err != nil {
		return Result{}, err
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return Result{}, err
	}
	tree, err := c.Tree()
	if err != nil {
		return Result{}, err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	var res Result
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, err
		}
		switch e.Mode {
		case filemode.Dir:
			if err := root.Mkdir(name, 0o755); err != nil {
				return Result{}, err
			}
			continue
		case filemode.Submodule:
			res.Submodules = append(res.Submodules, name)
			continue
		}
		blob, err := repo.BlobObject(e.Hash)
		if err != nil {
			return Result{}, err
		}
		r, err := blob.Reader()
		if err != nil {
			return Result{}, err
		}
		if e.Mode == filemode.Symlink {
			target, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return Result{}, err
			}
			if err := root.Symlink(string(target), name); err != nil {
				return Result{}, err
			}
		} else {
			perm := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				perm = 0o755
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
			if err == nil {
				_, err = io.Copy(f, r)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			r.Close()
			if err != nil {
				return Result{}, err
			}
		}
		res.Files++
	}
	return res, nil
}
