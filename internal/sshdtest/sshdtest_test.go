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
