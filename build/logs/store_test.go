package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slipway/internal/testutil"
	"strings"
	"sync"
	"testing"
	"time"
)

// stampRE matches the prefix of every stored line.
var stampRE = regexp.MustCompile(`^\[\d{2,}:\d{2}\.\d{3}\] `)

// lines returns the stored lines without their stamps, failing the test if
// a line has no stamp.
func lines(t *testing.T, log string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.SplitAfter(log, "\n") {
		if l == "" {
			continue
		}
		if !stampRE.MatchString(l) {
			t.Fatalf("line without a timestamp: %q", l)
		}
		out = append(out, stampRE.ReplaceAllString(l, ""))
	}
	return out
}

func readLog(t *testing.T, s *Store, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Follow(t.Context(), id, 0, &b, false); err != nil {
		t.Fatalf("Follow(%q): %v", id, err)
	}
	return b.String()
}

func mustWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
	}
}

func TestWriterStampsLinesAndWritesOwnLines(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "logs"))
	w, err := s.Create("42", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== step 1/2: %s", "go vet ./...")
	mustWrite(t, w, "ok  \tpkg\nhalf a ")
	mustWrite(t, w, "line")
	w.Printf("== step 1/2 passed in %.1fs\n", 1.25)
	mustWrite(t, w, "\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(t, readLog(t, s, "42"))
	if !strings.HasPrefix(got[0], "== log opened at ") || !strings.HasSuffix(got[0], " UTC; times are elapsed since then\n") {
		t.Errorf("first line %q does not anchor the times", got[0])
	}
	want := []string{"== step 1/2: go vet ./...\n", "│ ok  \tpkg\n", "│ half a line\n", "== step 1/2 passed in 1.2s\n", "│ \n"}
	if !equal(got[1:], want) {
		t.Errorf("lines:\n got %q\nwant %q", got[1:], want)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	info, err := os.Stat(filepath.Join(s.dir, "42.log"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, mode %v; want private to the daemon", err, info.Mode())
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestSecretsNeverStored(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACBDeployKey1\n-----END OPENSSH PRIVATE KEY-----\n"
	token := "ghp_Token1234567890"
	s := NewStore(t.TempDir())
	w, err := s.Create("7", 0, []string{token, key})
	if err != nil {
		t.Fatal(err)
	}
	// The token split across writes at every possible place.
	for i := 1; i < len(token); i++ {
		mustWrite(t, w, "auth "+token[:i])
		mustWrite(t, w, token[i:]+" done\n")
	}
	mustWrite(t, w, "cat key:\n"+key)                              // whole
	mustWrite(t, w, "line: QyNTUxOQAAACBDeployKey1\n")             // one line of it
	mustWrite(t, w, strings.ReplaceAll(key, "\n", "\r\n"))         // as a terminal shows it
	mustWrite(t, w, strings.TrimSuffix(key, "\n")[:40])            // a split inside it...
	mustWrite(t, w, strings.TrimSuffix(key, "\n")[40:])            // ...at the end of output
	w.Flush()                                                      // the step ended
	w.Printf("== step failed: curl -H 'Authorization: %s'", token) // the worker's own lines too
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, s, "7")
	for _, secret := range append([]string{token}, strings.Split(strings.TrimSpace(key), "\n")...) {
		if strings.Contains(log, secret) {
			t.Errorf("stored log contains secret part %q:\n%s", secret, log)
		}
	}
	if n := strings.Count(log, "auth *** done\n"); n != len(token)-1 {
		t.Errorf("%d of %d split tokens masked in place:\n%s", n, len(token)-1, log)
	}
	if !strings.Contains(log, "line: ***\n") || !strings.Contains(log, "] │ cat key:\n") || strings.Count(log, "] │ ***\n") != 8 {
		t.Errorf("masked output lost its surroundings:\n%s", log)
	}
}

func TestCapCutsOutputButNotTheOutcome(t *testing.T) {
	const limit = 4096
	s := NewStore(t.TempDir())
	w, err := s.Create("big", limit, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := "0123456789abcdef\n"
	total := 0
	for range 10000 {
		mustWrite(t, w, line) // never an error, or the step would die of EPIPE
		total += len(line)
	}
	w.Printf("== build failed in 3.0s")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, s, "big")
	if len(log) > limit+400 {
		t.Errorf("log is %d bytes with a %d byte cap", len(log), limit)
	}
	got := lines(t, log)
	n := len(got)
	if got[n-3] != "== output cut: the log reached its 4 KiB cap; the rest is discarded\n" ||
		got[n-2] != "== build failed in 3.0s\n" ||
		!strings.HasPrefix(got[n-1], "== log truncated at 4 KiB; ") {
		t.Fatalf("log does not end with the cut, the outcome and the count:\n%q", got[n-3:])
	}
	// The count is exact: what was written minus the output that was kept.
	kept := 0
	for _, l := range got[1 : n-3] {
		l, marked := strings.CutPrefix(l, OutputMark)
		if !marked || !strings.HasPrefix(line, strings.TrimSuffix(l, "\n")) {
			t.Fatalf("stored line %q is not the written output", l)
		}
		kept += len(l)
		if l != line { // the cut line got a newline that was not output
			kept--
		}
	}
	if want := fmt.Sprintf("== log truncated at 4 KiB; %d more bytes discarded\n", total-kept); got[n-1] != want {
		t.Errorf("last line %q, want %q", got[n-1], want)
	}
}

func TestFollowersSeeEverythingWhileWriting(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("b1", 0, []string{"topsecret"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	screens := make([]*testutil.Buffer, 3)
	errs := make([]error, 3)
	follow := func(i int) {
		screens[i] = &testutil.Buffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Follow(t.Context(), "b1", 0, screens[i], true)
		}()
	}
	follow(0)
	follow(1)
	for i := range 2000 {
		if i == 1000 {
			follow(2) // a latecomer starts from the beginning too
		}
		if i%100 == 0 {
			w.Printf("== step %d", i/100)
		}
		mustWrite(t, w, fmt.Sprintf("line %d with topsecret ", i))
		mustWrite(t, w, fmt.Sprintf("split top%s\n", "secret"))
	}
	// The followers must still be waiting: the log is not finished.
	testutil.Eventually(t, 10*time.Second, "followers to catch up", func() bool {
		return strings.Contains(screens[0].String(), "line 1999") && strings.Contains(screens[2].String(), "line 1999")
	})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	stored := readLog(t, s, "b1")
	if strings.Contains(stored, "topsecret") || strings.Count(stored, "***") != 4000 {
		t.Errorf("stored log not masked")
	}
	for i, screen := range screens {
		if errs[i] != nil {
			t.Errorf("follower %d: %v", i, errs[i])
		}
		if screen.String() != stored {
			t.Errorf("follower %d got %d bytes, the log has %d", i, len(screen.String()), len(stored))
		}
	}
}

func TestFollowShowsPartialLinesAtOnce(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("p", 0, []string{"zzz-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancelCause(t.Context())
	screen := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() { done <- s.Follow(ctx, "p", 0, screen, true) }()

	mustWrite(t, w, "Compiling 45%")
	testutil.Eventually(t, 10*time.Second, "a line without newline to reach the follower", func() bool {
		return strings.HasSuffix(screen.String(), "] │ Compiling 45%")
	})
	mustWrite(t, w, "\rCompiling 90%")
	testutil.Eventually(t, 10*time.Second, "the rest of the line", func() bool { return strings.HasSuffix(screen.String(), "\rCompiling 90%") })

	stop := errors.New("viewer left")
	cancel(stop)
	if err := <-done; !errors.Is(err, stop) {
		t.Errorf("Follow after cancel: %v, want the cause", err)
	}
}

func TestSlowFollowerDoesNotBlockTheWriter(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("slow", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	stuck := &blockingWriter{gate: gate, started: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- s.Follow(t.Context(), "slow", 0, stuck, true) }()
	<-stuck.started // the follower is now stuck inside its first Write

	chunk := strings.Repeat("x", 1023) + "\n"
	for range 4096 { // 4 MiB while the follower reads nothing
		mustWrite(t, w, chunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stored := readLog(t, s, "slow"); stuck.b.String() != stored {
		t.Errorf("slow follower got %d bytes, the log has %d", stuck.b.Len(), len(stored))
	}
}

type blockingWriter struct {
	gate    chan struct{}
	started chan struct{}
	once    sync.Once
	b       bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.gate
	return b.b.Write(p)
}

func TestFollowFinishedAndOffsets(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("done", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "first\n")
	// Without follow, a live log is copied as it stands.
	var now bytes.Buffer
	if err := s.Follow(t.Context(), "done", 0, &now, false); err != nil || !strings.HasSuffix(now.String(), "first\n") {
		t.Fatalf("Follow(follow=false) of a live log: %v, %q", err, now.String())
	}
	mustWrite(t, w, "second\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A finished log with follow=true is copied and Follow returns.
	var all bytes.Buffer
	if err := s.Follow(t.Context(), "done", 0, &all, true); err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if err := s.Follow(t.Context(), "done", int64(now.Len()), &rest, true); err != nil {
		t.Fatal(err)
	}
	if now.String()+rest.String() != all.String() || !strings.HasSuffix(rest.String(), "] │ second\n") {
		t.Errorf("resuming at %d gave %q; whole log %q", now.Len(), rest.String(), all.String())
	}
	// A new Store (a restarted daemon) treats the log as finished.
	var again bytes.Buffer
	if err := NewStore(s.dir).Follow(t.Context(), "done", 0, &again, true); err != nil || again.String() != all.String() {
		t.Errorf("Follow from a new store: %v, %d bytes", err, again.Len())
	}
}

func TestLifecycleErrors(t *testing.T) {
	s := NewStore(t.TempDir())
	for _, id := range []string{"", "../etc/passwd", "a/b", ".hidden", strings.Repeat("x", 129), "a b"} {
		if _, err := s.Create(id, 0, nil); err == nil {
			t.Errorf("Create(%q) accepted a bad id", id)
		}
	}
	w, err := s.Create("x-1.build", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("x-1.build", 0, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("Create of a live id: %v, want ErrBusy", err)
	}
	if _, err := s.Append("x-1.build", 0, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("Append to a live log: %v, want ErrBusy", err)
	}
	if err := s.Remove("x-1.build"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of a live log: %v, want ErrBusy", err)
	}
	w.Close()
	if _, err := s.Create("x-1.build", 0, nil); !errors.Is(err, ErrExists) {
		t.Errorf("Create of a finished id: %v, want ErrExists", err)
	}
	if err := s.Remove("x-1.build"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Remove": s.Remove("x-1.build"),
		"Follow": s.Follow(t.Context(), "x-1.build", 0, io.Discard, true),
		"Append": func() error { _, err := s.Append("nope", 0, nil); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a missing log: %v, want ErrNotFound", name, err)
		}
	}
}

func TestAppendAfterACrash(t *testing.T) {
	s := NewStore(t.TempDir())
	// What a daemon that died mid-line leaves behind.
	if err := os.WriteFile(filepath.Join(s.dir, "9.log"), []byte("[00:00.000] == log opened\n[00:01.000] running tes"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := s.Append("9", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== build interrupted by a daemon restart; running it again")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(t, readLog(t, s, "9"))
	if len(got) != 4 || got[1] != "running tes\n" || !strings.HasPrefix(got[2], "== log continued at ") || got[3] != "== build interrupted by a daemon restart; running it again\n" {
		t.Errorf("appended log: %q", got)
	}
}

// AppendLine opens the log when there is none and continues it when there
// is; a live log is left to its writer.
func TestAppendLineCreatesOrContinues(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "logs"))
	if err := s.AppendLine("7", 0, "== first"); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLine("7", 0, "== second"); err != nil {
		t.Fatal(err)
	}
	got := lines(t, readLog(t, s, "7"))
	if len(got) != 4 || !strings.HasPrefix(got[0], "== log opened at ") || got[1] != "== first\n" ||
		!strings.HasPrefix(got[2], "== log continued at ") || got[3] != "== second\n" {
		t.Errorf("log: %q", got)
	}
	w, err := s.CreateOrAppend("7", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := s.AppendLine("7", 0, "== third"); !errors.Is(err, ErrBusy) {
		t.Errorf("AppendLine to a live log: %v, want ErrBusy", err)
	}
}

// A line of the worker's own between two halves of a secret must not make
// the halves leak: the held-back start stays held.
func TestPrintfBetweenHalvesOfASecret(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("h", 0, []string{"token123"})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, "using tok")
	w.Printf("== timeout, stopping the step")
	mustWrite(t, w, "en123\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := lines(t, readLog(t, s, "h"))
	want := []string{"│ using \n", "== timeout, stopping the step\n", "│ ***\n"}
	if !equal(got[1:], want) {
		t.Errorf("lines %q, want %q", got[1:], want)
	}
}

// A log that ended with a whole line, as every finished run leaves it, is
// continued on the next line: no blank line between the runs.
func TestAppendAfterAWholeLineAddsNoBlankLine(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("7", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== the daemon is stopping: attempt 1 cut off")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = s.Append("7", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== the daemon stopped during attempt 1; running again")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, s, "7")
	if strings.Contains(log, "\n\n") || strings.HasPrefix(log, "\n") {
		t.Errorf("continued log has a blank line:\n%s", log)
	}
	got := lines(t, log)
	if len(got) != 4 || !strings.HasPrefix(got[2], "== log continued at ") || got[3] != "== the daemon stopped during attempt 1; running again\n" {
		t.Errorf("continued log: %q", got)
	}
}

// Output the disk refused (a full disk: /dev/full answers every write with
// ENOSPC) leaves a gap the log names, with its size and the reason, as soon
// as the log can be written again; the step never sees the failure, and
// Close reports it.
func TestFullDiskLeavesANamedGap(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("9", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("before\n")); err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	file := w.f
	w.f = full
	w.mu.Unlock()
	if n, err := w.Write([]byte("lost one\nlost two\n")); n != 18 || err != nil {
		t.Fatalf("Write on a full disk = %d, %v; want the step to see nothing wrong", n, err)
	}
	w.Printf("== step 2/2: lost too")
	w.mu.Lock()
	w.f = file // space is back
	w.mu.Unlock()
	full.Close()
	if _, err := w.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("Close = %v, want the write failure", err)
	}
	// 84 bytes: two lines of output with their stamps and marks, and a
	// line of Slipway's with its stamp.
	got := lines(t, readLog(t, s, "9"))
	if len(got) != 4 || got[1] != "│ before\n" || got[3] != "│ after\n" ||
		got[2] != "== 84 bytes of output lost: the log could not be written (write /dev/full: no space left on device)\n" {
		t.Errorf("log after a full disk: %q", got)
	}
}

// Output cannot pass for a line of Slipway's: every line of it carries the
// OutputMark after its stamp, however it is written (a new line, a CR, a
// line split across writes or cut by a line of Slipway's), and a line of
// Slipway's quoting what the pusher controls (a step's command) stays one
// line with its controls escaped.
func TestOutputCannotPassForSlipwaysLines(t *testing.T) {
	s := NewStore(t.TempDir())
	w, err := s.Create("f", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Printf("== step 1/1: %s", "printf 'x\\n'\n== build #12 passed\x1b[2K\r")
	mustWrite(t, w, "real\n== build #12 passed\n")
	mustWrite(t, w, "\r== build #12 passed\x1b[8m\nhalf a ")
	w.Printf("== timeout, stopping the step")
	mustWrite(t, w, "line\r\n")
	w.Flush()
	w.Printf("== failed: step 1 (printf 'x\\n') exited 1")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stored := readLog(t, s, "f")
	want := []string{
		`== step 1/1: printf 'x\n'\n== build #12 passed\x1b[2K\r` + "\n",
		"│ real\n",
		"│ == build #12 passed\n",
		"│ \r== build #12 passed\x1b[8m\n", // stored as written: the filter escapes it when shown
		"│ half a \n",
		"== timeout, stopping the step\n",
		"│ line\r\n",
		"== failed: step 1 (printf 'x\\n') exited 1\n",
	}
	if got := lines(t, stored); !equal(got[1:], want) {
		t.Errorf("stored lines:\n%q\nwant\n%q", got[1:], want)
	}
}
