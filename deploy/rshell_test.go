package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/internal/testutil"
)

// openShell opens a session to a real sshd whose sessions are recorded.
func openShell(t *testing.T) (session, *bytes.Buffer, func() int) {
	t.Helper()
	srv, tg := remoteTarget(t)
	rec := srv.RecordSessions()
	var log bytes.Buffer
	sess, _, err := (&Shipper{}).open(t.Context(), tg, &syncWriter{w: &log}, "true")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	started := func() int {
		n, _, err := rec.Started()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Cleanup(func() {
		_ = sess.close()
		// The sessions' wrappers write their ends into the server's
		// folder: let them, before it is removed.
		testutil.Eventually(t, 10*time.Second, "every session ended", func() bool {
			_, running, err := rec.Started()
			return err == nil && running == 0
		})
	})
	return sess, &log, started
}

// TestShellRunsScriptsOnTheOpenConnection: Slipway's own scripts go
// through the shell the master holds open, with no session of their own,
// and each behaves as if it ran alone: its status, its output with or
// without a last newline, its stderr in the log and in the error, its cd,
// set -e and exit contained, a syntax error or a read of stdin unable to
// disturb the scripts after it.
func TestShellRunsScriptsOnTheOpenConnection(t *testing.T) {
	t.Parallel()
	sess, log, started := openShell(t)
	before := started()
	ctx := t.Context()

	run := func(script string) (string, error) {
		var out bytes.Buffer
		err := sess.run(ctx, script, &out)
		return out.String(), err
	}
	for i := range 20 {
		if out, err := run("echo line; printf 'no newline %d' " + string(rune('0'+i%10))); err != nil || out != "line\nno newline "+string(rune('0'+i%10))+"\n" {
			t.Fatalf("run %d: %q, %v", i, out, err)
		}
	}
	if out, err := run("set -e\ncd /tmp\nfalse\necho not reached"); out != "" || !exitWith(err, 1) {
		t.Fatalf("set -e script: %q, %v (want exit 1, no output)", out, err)
	}
	if out, err := run("pwd"); err != nil || strings.TrimSpace(out) == "/tmp" {
		t.Fatalf("a script's cd leaked into the next: %q, %v", out, err)
	}
	if _, err := run("echo to stderr >&2; echo last words >&2; exit 7"); !exitWith(err, 7) || err.(*ExitError).Stderr != "last words" {
		t.Fatalf("exit 7 with stderr: %v", err)
	}
	if !strings.Contains(log.String(), "to stderr\nlast words\n") {
		t.Errorf("stderr lines missing from the log:\n%s", log.String())
	}
	if strings.Contains(log.String(), "slipway-end-") {
		t.Errorf("the end token reached the log:\n%s", log.String())
	}
	if _, err := run("if then fi ("); err == nil {
		t.Fatal("a syntax error passed")
	}
	if out, err := run("cat; echo read-nothing"); err != nil || out != "read-nothing\n" {
		t.Fatalf("a script reading stdin: %q, %v", out, err)
	}
	if _, err := run("exit 0"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("echo still here"); err != nil || out != "still here\n" {
		t.Fatalf("after exit: %q, %v", out, err)
	}
	if n := started() - before; n != 0 {
		t.Errorf("%d scripts opened %d sessions of their own; want none", 27, n)
	}

	// command (the user's activate, health) gets a session of its own.
	var out bytes.Buffer
	if err := sess.command(ctx, "echo own", &out); err != nil || out.String() != "own\n" {
		t.Fatalf("command: %q, %v", out.String(), err)
	}
	if n := started() - before; n != 1 {
		t.Errorf("a command opened %d sessions; want 1", n)
	}
}

// TestShellCutOffScriptFallsBackToSessions: a script cut off by its
// context returns at once as interrupted; the shell, still busy with it,
// is not used again, and the scripts after it run on sessions of their own.
func TestShellCutOffScriptFallsBackToSessions(t *testing.T) {
	t.Parallel()
	sess, _, started := openShell(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := sess.run(ctx, "sleep 3", nil)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("cut off: %v, want ErrInterrupted", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the cut-off script returned after %v", took)
	}
	before := started()
	var out bytes.Buffer
	if err := sess.run(t.Context(), "echo after", &out); err != nil || out.String() != "after\n" {
		t.Fatalf("after the cut-off: %q, %v", out.String(), err)
	}
	if n := started() - before; n != 1 {
		t.Errorf("the script after a cut-off one opened %d sessions; want 1 (the shell is busy)", n)
	}
}

// TestShellTargetVanishing: the sshd gone in the middle of a script is a
// connection failure, not a hang and not the script's exit status.
func TestShellTargetVanishing(t *testing.T) {
	t.Parallel()
	srv, tg := remoteTarget(t)
	sess, _, err := (&Shipper{}).open(t.Context(), tg, io.Discard, "true")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.close()
	started := filepath.Join(t.TempDir(), "started")
	done := make(chan error, 1)
	go func() { done <- sess.run(t.Context(), ": > "+started+"; sleep 30", nil) }()
	testutil.Eventually(t, 10*time.Second, "the script running", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	srv.Stop()
	select {
	case err := <-done:
		var ee *ExitError
		if err == nil || errors.As(err, &ee) {
			t.Fatalf("target gone mid-script: %v, want a connection error", err)
		}
		if !errors.Is(err, ErrUnreachable) && !errors.Is(err, ErrInterrupted) {
			t.Errorf("target gone mid-script: %v, want ErrUnreachable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the script did not return 20s after the target vanished")
	}
}

func exitWith(err error, code int) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Code == code
}
