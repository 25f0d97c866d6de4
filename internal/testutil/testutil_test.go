package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "%d", i%10)
		}()
	}
	wg.Wait()
	if b.Len() != 8 || len(b.String()) != 8 {
		t.Fatalf("buffer holds %q", b.String())
	}
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(20 * time.Millisecond)
		n.Store(1)
	}()
	Eventually(t, 10*time.Second, "the flag", func() bool { return n.Load() == 1 })
}

func TestGitCommitsAsTheFixedIdentityAndFailsOnError(t *testing.T) {
	t.Setenv("GIT_AUTHOR_NAME", "leaked")
	dir := t.TempDir()
	Git(t, dir, "init", "-q")
	Git(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
	if got := Git(t, dir, "log", "-1", "--format=%an <%ae> %cn <%ce>"); got != "t <t@example.org> t <t@example.org>" {
		t.Errorf("identity = %q", got)
	}
	cmd := GitCmd(dir, "hash-object", "--stdin")
	cmd.Stdin = strings.NewReader("x\n")
	if got := RunGit(t, cmd); got != "587be6b4c3f93f93c489c0111bba5596147a26cb" {
		t.Errorf("hash-object of stdin = %q", got)
	}
	var ft fakeTB
	func() {
		defer func() { recover() }()
		Git(&ft, dir, "rev-parse", "no-such-rev")
	}()
	if !strings.Contains(ft.fatal, "git rev-parse no-such-rev") || !strings.Contains(ft.fatal, "no-such-rev") {
		t.Errorf("failure message = %q", ft.fatal)
	}
}

// fakeTB records the message of Fatalf and stops the caller with a panic.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic("fatal")
}

func TestNewKeyLineAndFingerprintAgree(t *testing.T) {
	k := NewKey(t)
	pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k.Line))
	if err != nil || len(rest) != 0 {
		t.Fatalf("line %q: %v", k.Line, err)
	}
	if fp := ssh.FingerprintSHA256(pk); fp != k.Fingerprint || !strings.HasPrefix(k.Line, "ssh-ed25519 ") {
		t.Errorf("key %+v, fingerprint of its line %s", k, fp)
	}
	if NewKey(t) == k {
		t.Error("two keys alike")
	}
}

func TestWriteFileMakesItsFolders(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "c.txt")
	WriteFile(t, p, "hello\n")
	if b, err := os.ReadFile(p); err != nil || string(b) != "hello\n" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

func TestProcessesWithFindsAChild(t *testing.T) {
	mark := fmt.Sprintf("4251.%d", time.Now().UnixNano()%1000)
	cmd := exec.Command("sleep", mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ps := ProcessesWith("sleep", mark)
	if len(ps) != 1 || !strings.HasPrefix(ps[0], fmt.Sprint(cmd.Process.Pid)+": sleep "+mark) {
		t.Errorf("ProcessesWith(sleep, %s) = %q, want the child %d", mark, ps, cmd.Process.Pid)
	}
	if ps := ProcessesWith("sleep", mark, "no-such-argument"); len(ps) != 0 {
		t.Errorf("a process matched an argument it lacks: %q", ps)
	}
}
