package sshdtest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slipway/internal/shell"
	"strings"
)

// SessionLog records, for every session the deploy key opens, when it
// starts and ends and which connection it rides on, so that a test can
// tell how many connections a client held open at once.
type SessionLog struct {
	path string
}

// RecordSessions makes every session of the deploy key run through a
// wrapper (a command= option in authorized_keys, which sshd reads at each
// login) that appends "+ <connection>" before the requested command and
// "- <connection>" after it, where the connection is $SSH_CONNECTION. The
// command itself runs as before, with sh -c. Appends of one short line are
// atomic, so the file is one order in which the sessions began and ended.
//
// A session ends before its client can see it end, so a client that opens
// a connection only after closing the last one never shows two at once.
func (s *Server) RecordSessions() *SessionLog {
	s.t.Helper()
	log := filepath.Join(s.Dir, "sessions.log")
	wrapper := filepath.Join(s.Dir, "record-session")
	script := `#!/bin/sh
c=$(printf '%s' "$SSH_CONNECTION" | tr ' ' '_')
end() { printf -- '- %s\n' "$c" >> ` + shell.Quote(log) + `; }
trap 'end; exit 129' HUP
trap 'end; exit 143' TERM
printf -- '+ %s\n' "$c" >> ` + shell.Quote(log) + `
/bin/sh -c "$SSH_ORIGINAL_COMMAND"
rc=$?
end
exit $rc
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		s.t.Fatalf("write session wrapper: %v", err)
	}
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		s.t.Fatalf("create session log: %v", err)
	}
	pub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		s.t.Fatalf("read deploy key: %v", err)
	}
	line := fmt.Sprintf("command=%q %s\n", wrapper, strings.TrimSpace(string(pub)))
	if err := os.WriteFile(s.KeyFile+".pub", []byte(line), 0o600); err != nil {
		s.t.Fatalf("write authorized key: %v", err)
	}
	return &SessionLog{path: log}
}

// Connections reads the log so far: how many distinct connections opened
// sessions, and the most that had a session running at the same time.
func (l *SessionLog) Connections() (total, maxAtOnce int, err error) {
	f, err := os.Open(l.path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	active := map[string]int{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sign, conn, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch sign {
		case "+":
			active[conn]++
			seen[conn] = true
		case "-":
			if active[conn]--; active[conn] <= 0 {
				delete(active, conn)
			}
		}
		maxAtOnce = max(maxAtOnce, len(active))
	}
	return len(seen), maxAtOnce, sc.Err()
}

// Started reads the log so far: how many sessions have begun, on any
// connection, and how many of them have not ended yet.
func (l *SessionLog) Started() (started, running int, err error) {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "+ "):
			started++
			running++
		case strings.HasPrefix(line, "- "):
			running--
		}
	}
	return started, running, nil
}
