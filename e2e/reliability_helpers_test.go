package e2e

// Helpers of the reliability suite (reliability_test.go, issue 11). They
// look at what a daemon left behind the way an operator would: its
// database read-only (never through the daemon, which may be dead), its
// repositories with git, its folders and the processes of this machine.
// Everything here is prefixed rl so that it cannot collide with the other
// files of this package.

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/gitrev"
	"slipway/internal/manifest"

	_ "modernc.org/sqlite" // the driver store uses; registered as "sqlite"
)

// rlOpenDB opens a daemon's database read-only (mode=ro): it may be read
// while the daemon runs, or after a kill -9 before the next start, without
// checkpointing or otherwise changing what the next start will find.
func rlOpenDB(t testing.TB, dataDir string) *sql.DB {
	t.Helper()
	u := url.URL{Path: filepath.Join(dataDir, "slipway.db")}
	db, err := sql.Open("sqlite", "file://"+u.EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatalf("open the database read-only: %v", err)
	}
	return db
}

// rlIntegrity runs PRAGMA integrity_check and returns its verdict ("ok"
// when the file is sound).
func rlIntegrity(t testing.TB, dataDir string) string {
	t.Helper()
	db := rlOpenDB(t, dataDir)
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return "integrity_check: " + err.Error()
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "integrity_check: " + err.Error()
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return "integrity_check: " + err.Error()
	}
	return strings.Join(lines, "\n")
}

// rlRefRecord is one ref update of a recorded push.
type rlRefRecord struct {
	push          int64
	ref, old, new string
}

// rlRecordedRefs is every recorded ref update of repo, oldest first: the
// rows of push_refs with their pushes. (A push record that can be withdrawn,
// as issue 11's reference-transaction hook may make one whose update git
// aborted, must leave these tables or be told apart here.)
func rlRecordedRefs(db *sql.DB, repo string) ([]rlRefRecord, error) {
	rows, err := db.Query(`SELECT p.id, r.name, r.old, r.new FROM push_refs r JOIN pushes p ON p.id = r.push_id
		WHERE p.repo = ? ORDER BY p.id, r.seq`, repo)
	if err != nil {
		return nil, fmt.Errorf("read the recorded pushes: %w", err)
	}
	defer rows.Close()
	var rs []rlRefRecord
	for rows.Next() {
		var r rlRefRecord
		if err := rows.Scan(&r.push, &r.ref, &r.old, &r.new); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// rlPushes counts the recorded pushes.
func rlPushes(db *sql.DB) (int, error) {
	var n int
	err := db.QueryRow(`SELECT count(*) FROM pushes`).Scan(&n)
	return n, err
}

// rlStates counts the builds (table builds) or deployments (table
// deployments) by state.
func rlStates(db *sql.DB, table string) (map[string]int, error) {
	rows, err := db.Query(`SELECT state, count(*) FROM ` + table + ` GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", table, err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		m[s] = n
	}
	return m, rows.Err()
}

// rlUnfinished lists the builds and deployments that are queued or running,
// as "build #3 running" lines, and the notes when they are behind.
func rlUnfinished(db *sql.DB) ([]string, error) {
	var out []string
	for _, q := range []struct{ what, query string }{
		{"build", `SELECT id, state FROM builds WHERE state IN ('queued', 'running') ORDER BY id`},
		{"deployment", `SELECT id, state FROM deployments WHERE state IN ('queued', 'running') ORDER BY id`},
	} {
		rows, err := db.Query(q.query)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var s string
			if err := rows.Scan(&id, &s); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, fmt.Sprintf("%s #%d %s", q.what, id, s))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	// The notes of finished builds are written after them, into the
	// repository: until the notes' cursor has passed the last event, git
	// may still be writing objects (a concurrent fsck reports a commit
	// written after its scan of the objects as missing).
	var last, cursor int64
	err := db.QueryRow(`SELECT (SELECT coalesce(max(id), 0) FROM events),
		(SELECT coalesce(max(last_id), -1) FROM event_cursors WHERE name = 'notes')`).Scan(&last, &cursor)
	if err != nil {
		return nil, err
	}
	if cursor < last {
		out = append(out, fmt.Sprintf("notes written up to event %d of %d", cursor, last))
	}
	return out, nil
}

// rlSettled waits until every build and deployment recorded in the daemon's
// database has reached a final state and its note is written, and returns
// "" or, when timeout passes first, what is still unfinished.
func rlSettled(t *testing.T, d *daemon, timeout time.Duration) string {
	t.Helper()
	db := rlOpenDB(t, d.dataDir())
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		left, err := rlUnfinished(db)
		if err == nil && len(left) == 0 {
			return ""
		}
		if d.proc.exited() {
			t.Fatalf("slipway serve exited (%v) while builds and deployments were to end\n%s", d.proc.err, d.logs)
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err.Error()
			}
			return strings.Join(left, ", ")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rlGit runs git in a folder of the server (a bare repository) with no
// configuration of this machine, and returns its combined output.
func rlGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rlServerRefs are the refs of a bare repository on the server's disk.
func rlServerRefs(t testing.TB, bare string) map[string]string {
	t.Helper()
	out, err := rlGit(bare, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		t.Fatalf("for-each-ref in %s: %v\n%s", bare, err, out)
	}
	refs := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// The notes ref is the daemon's own (written with no push, and
		// refused to every push): not a ref pushes are recorded for.
		if id, name, ok := strings.Cut(l, " "); ok && !gitrev.DaemonOwned(name) {
			refs[name] = id
		}
	}
	return refs
}

// rlFsck runs git fsck on a bare repository and returns "" when it is clean,
// or git's complaint. Dangling objects (a push cut by a crash) are no fault.
func rlFsck(bare string) string {
	out, err := rlGit(bare, "fsck", "--strict", "--no-dangling", "--no-progress")
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return ""
}

// rlUnrecordedRefs returns the refs of the server that no recorded push
// ever set to their value: refs that moved without a record. It is what may
// be asked right after a crash, when a push may have been recorded and not
// yet (or never) applied by git.
func rlUnrecordedRefs(server map[string]string, recs []rlRefRecord) []string {
	set := map[[2]string]bool{}
	for _, r := range recs {
		set[[2]string{r.ref, r.new}] = true
	}
	var bad []string
	for ref, id := range server {
		if !set[[2]string{ref, id}] {
			bad = append(bad, ref+" at "+id[:12])
		}
	}
	sort.Strings(bad)
	return bad
}

// rlRefsDifferFromRecord compares the server's refs with the recorded state
// (the last recorded update of each ref) and returns the differences. It is
// what must hold once a daemon has started and no push is under way.
func rlRefsDifferFromRecord(server map[string]string, recs []rlRefRecord) []string {
	last := map[string]string{}
	for _, r := range recs {
		last[r.ref] = r.new
	}
	var bad []string
	for ref, id := range server {
		if last[ref] != id {
			bad = append(bad, fmt.Sprintf("%s is %s on the server, recorded %s", ref, id[:12], rlShort(last[ref])))
		}
	}
	for ref, id := range last {
		if _, ok := server[ref]; !ok && strings.Trim(id, "0") != "" {
			bad = append(bad, fmt.Sprintf("%s is recorded at %s and not on the server", ref, id[:12]))
		}
	}
	sort.Strings(bad)
	return bad
}

func rlShort(id string) string {
	if id == "" {
		return "nothing"
	}
	return id[:min(12, len(id))]
}

// rlRecorded says whether some recorded push set ref to id.
func rlRecorded(recs []rlRefRecord, ref, id string) bool {
	return slices.ContainsFunc(recs, func(r rlRefRecord) bool { return r.ref == ref && r.new == id })
}

// rlQuarantines lists git's quarantine folders of incoming pushes left in
// any repository of a data dir.
func rlQuarantines(dataDir string) []string {
	var left []string
	for _, pat := range []string{"tmp_objdir-incoming-*", "incoming-*"} {
		m, _ := filepath.Glob(filepath.Join(dataDir, "repos", "*.git", "objects", pat))
		left = append(left, m...)
	}
	return left
}

// rlWorkspaces lists what is in the build work folder (workspaces and
// homes of builds) of a daemon whose data dir holds its build folder.
func rlWorkspaces(dataDir string) []string {
	es, _ := os.ReadDir(filepath.Join(dataDir, "build", "work"))
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// rlDirSize is the apparent size of everything under dir (the bytes its
// files hold; folders and block rounding left out, so that the figure
// does not move with how many small files git keeps loose).
func rlDirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("size of %s: %v", dir, err)
	}
	return n
}

// rlMiB renders a byte count for the figures.
func rlMiB(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// rlDeployFiles are the files a deployment adds at the root of a release
// beside the artifacts (deploy's completion marker and the activate
// command that went live with it); they are not in the artifacts'
// manifest.
var rlDeployFiles = []string{".slipway-release", ".slipway-activate"}

// rlCheckCurrent checks an environment's folder on a target: current is a
// link to releases/<id>, a complete release (its completion marker there,
// not a .partial) whose files are exactly those of the manifest it carries.
// It returns the release id ("" when nothing was ever deployed) and what is
// wrong, or "".
func rlCheckCurrent(target string) (id, problem string) {
	l, err := os.Readlink(filepath.Join(target, "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ""
	}
	if err != nil {
		return "", err.Error()
	}
	id, ok := strings.CutPrefix(l, "releases/")
	if !ok || strings.Contains(id, "/") || strings.HasSuffix(id, ".partial") {
		return id, fmt.Sprintf("current -> %q, want releases/<id> of a complete release", l)
	}
	dir := filepath.Join(target, "releases", id)
	if _, err := os.Stat(filepath.Join(dir, rlDeployFiles[0])); err != nil {
		return id, fmt.Sprintf("release %s that current points at is not complete: %v", id, err)
	}
	kept, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return id, fmt.Sprintf("release %s that current points at has no manifest: %v", id, err)
	}
	now, err := manifest.Compute(dir)
	if err != nil {
		return id, fmt.Sprintf("release %s that current points at: %v", id, err)
	}
	var lines []string
	for _, line := range strings.SplitAfter(string(now), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && slices.ContainsFunc(rlDeployFiles, func(n string) bool { return f[len(f)-1] == strconv.Quote(n) }) {
			continue
		}
		lines = append(lines, line)
	}
	if got := strings.Join(lines, ""); got != string(kept) {
		return id, fmt.Sprintf("release %s that current points at does not match its manifest:\nmanifest:\n%s\nfiles:\n%s", id, kept, got)
	}
	return id, ""
}

// rlGitRun runs git with env in dir and returns its output (both streams,
// on separate pipes: see user.git) and error, killing it after timeout.
func rlGitRun(env []string, timeout time.Duration, dir string, args ...string) (string, error) {
	cmd := execGit(dir, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String() + stderr.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		err := <-done
		return stdout.String() + stderr.String(), fmt.Errorf("killed after %v: %w", timeout, err)
	}
}

// rlTally collects invariant violations over a long run: each distinct one
// is reported once (a ref moved without a record stays so until it is
// pushed again) and counted per kind, so that the end of the test can say
// how often each promise was broken.
type rlTally struct {
	mu     sync.Mutex
	seen   map[string]bool
	counts map[string]int
	order  []string
}

func (v *rlTally) add(t *testing.T, kind, detail string) {
	t.Helper()
	v.addKeyed(t, kind, detail, detail)
}

// addKeyed is add for a violation that is the same one as long as key is
// the same (say, a folder's name), whatever detail says (say, the cycle in
// which it was seen).
func (v *rlTally) addKeyed(t *testing.T, kind, key, detail string) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen, v.counts = map[string]bool{}, map[string]int{}
	}
	if v.seen[kind+"\x00"+key] {
		return
	}
	v.seen[kind+"\x00"+key] = true
	if v.counts[kind] == 0 {
		v.order = append(v.order, kind)
	}
	v.counts[kind]++
	t.Errorf("%s: %s", kind, detail)
}

// summary is one line per kind of violation, "" when there was none.
func (v *rlTally) summary() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var b strings.Builder
	for _, k := range v.order {
		fmt.Fprintf(&b, "  %d× %s\n", v.counts[k], k)
	}
	return b.String()
}

// rlDBSize is the size of the database with its WAL.
func rlDBSize(dataDir string) int64 {
	var n int64
	for _, f := range []string{"slipway.db", "slipway.db-wal", "slipway.db-shm"} {
		if fi, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// rlErrorLines are the first n lines of a daemon's log at level ERROR.
func rlErrorLines(log string, n int) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") && len(keep) < n {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
