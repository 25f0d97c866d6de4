package sshdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func sshArgs(s *Server, knownHosts string, cmd string) []string {
	return []string{"-F", "none", "-i", s.KeyFile, "-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "ConnectTimeout=5", "-p", strconv.Itoa(s.Port), s.User + "@" + s.Host, cmd}
}

func TestRealSSHDRunsCommandsAndCanVanish(t *testing.T) {
	s := New(t)
	out, err := exec.CommandContext(t.Context(), "ssh", sshArgs(s, s.KnownHostsFile, "echo hello-from-sshd")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello-from-sshd") {
		t.Fatalf("ssh through real sshd: %v\n%s", err, out)
	}

	s.Stop()
	out, err = exec.CommandContext(t.Context(), "ssh", sshArgs(s, s.KnownHostsFile, "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Connection refused") {
		t.Fatalf("ssh to stopped server: err=%v, output %q; want connection refused", err, out)
	}

	s.Start()
	out, err = exec.CommandContext(t.Context(), "ssh", sshArgs(s, s.KnownHostsFile, "echo back")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "back") {
		t.Fatalf("ssh after restart: %v\n%s", err, out)
	}
}

func TestRealSSHDRejectsUnknownHostKey(t *testing.T) {
	s := New(t)
	other := New(t)
	// Pin another server's key under this server's name: an impostor.
	impostor := filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[%s]:%d %s\n", s.Host, s.Port, other.HostPublicKey)
	if err := os.WriteFile(impostor, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "ssh", sshArgs(s, impostor, "true")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Host key verification failed") {
		t.Fatalf("ssh with wrong known_hosts: err=%v, output %q", err, out)
	}
}

// TestRecordSessionsCountsConnectionsAtOnce checks the instrument the deploy
// tests count connections with: two connections open together are two at
// once, one after the other are one.
func TestRecordSessionsCountsConnectionsAtOnce(t *testing.T) {
	s := New(t)
	log := s.RecordSessions()
	run := func(cmd string) *exec.Cmd {
		c := exec.CommandContext(t.Context(), "ssh", sshArgs(s, s.KnownHostsFile, cmd)...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := run("true").Wait(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), "ssh", sshArgs(s, s.KnownHostsFile, "echo still-runs")...).CombinedOutput(); err != nil || !strings.Contains(string(out), "still-runs") {
		t.Fatalf("a command through the wrapper: %v %s", err, out)
	}
	total, most, err := log.Connections()
	if err != nil || total != 2 || most != 1 {
		t.Fatalf("two connections one after the other: total %d, at once %d, %v; want 2, 1", total, most, err)
	}
	// A barrier: each session waits until the other has started.
	dir := t.TempDir()
	meet := func(me, other string) string {
		return "touch " + filepath.Join(dir, me) + "; while [ ! -e " + filepath.Join(dir, other) + " ]; do sleep 0.05; done"
	}
	a, b := run(meet("a", "b")), run(meet("b", "a"))
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	if total, most, err := log.Connections(); err != nil || total != 4 || most != 2 {
		got, _ := os.ReadFile(log.path)
		t.Fatalf("two connections together: total %d, at once %d, %v; want 4, 2\n%s", total, most, err, got)
	}
}
