package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/internal/testutil"
)

// remoteTarget starts a real sshd and returns a target on it.
func remoteTarget(t *testing.T) (*sshdtest.Server, Target) {
	t.Helper()
	srv := sshdtest.New(t)
	return srv, Target{
		User: srv.User, Host: srv.Host, Port: srv.Port,
		Path:    filepath.Join(t.TempDir(), "app"),
		KeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
	}
}

// bothTargets runs f against a local folder and against a real sshd.
func bothTargets(t *testing.T, f func(t *testing.T, tg Target)) {
	t.Run("local", func(t *testing.T) { f(t, Target{Local: filepath.Join(t.TempDir(), "app")}) })
	t.Run("ssh", func(t *testing.T) {
		_, tg := remoteTarget(t)
		f(t, tg)
	})
}

// artifacts writes a build output; every call rewrites every file, as a
// fresh build would (new modification times), with changed content for the
// names in changed.
func artifacts(t testing.TB, dir string, n int, version string, changed ...int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		content := fmt.Sprintf("file %d\n%s", i, strings.Repeat("x", 1000))
		if slices.Contains(changed, i) {
			content += "\nchanged in " + version
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", fmt.Sprintf("f%03d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func root(tg Target) string { return tg.root() }

func currentLink(t *testing.T, tg Target) string {
	t.Helper()
	l, err := os.Readlink(filepath.Join(root(tg), "current"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		t.Fatal(err)
	}
	return l
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func ship(t *testing.T, s *Shipper, req Request) (Result, string) {
	t.Helper()
	var log bytes.Buffer
	req.Log = &log
	res, err := s.Ship(t.Context(), req)
	if err != nil {
		t.Fatalf("ship %s: %v\nlog:\n%s", req.Release, err, log.String())
	}
	return res, log.String()
}

// shipR1 ships release r1, files artifacts of version "v1", to tg and
// returns the shipper and the build output folder.
func shipR1(t *testing.T, tg Target, files int) (*Shipper, string) {
	t.Helper()
	s := &Shipper{}
	src := t.TempDir()
	artifacts(t, src, files, "v1")
	ship(t, s, Request{Target: tg, Source: src, Release: "r1"})
	return s, src
}

// wantCurrent stops the test unless tg's current links to release ("" for
// no current link); when says at what point of the test.
func wantCurrent(t *testing.T, tg Target, release, when string) {
	t.Helper()
	want := ""
	if release != "" {
		want = "releases/" + release
	}
	if when != "" {
		when = " " + when
	}
	if got := currentLink(t, tg); got != want {
		t.Fatalf("current -> %q%s, want %q", got, when, want)
	}
}

func TestShipLinksUnchangedFilesAndSwitchesCurrent(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		s := &Shipper{}
		src := t.TempDir()
		artifacts(t, src, 20, "v1")
		res, _ := ship(t, s, Request{Target: tg, Source: src, Release: "r1", Commit: "aaa1", Repo: "app", Env: "staging"})
		if res.Live != "r1" || res.Previous != "" {
			t.Fatalf("first deploy result %+v", res)
		}
		artifacts(t, src, 20, "v2", 3) // a rebuild: all files rewritten, one changed
		res, _ = ship(t, s, Request{Target: tg, Source: src, Release: "r2", Commit: "bbb2", Repo: "app", Env: "staging"})
		if res.Live != "r2" || res.Previous != "r1" || !res.Switched {
			t.Fatalf("second deploy result %+v", res)
		}

		wantCurrent(t, tg, "r2", "(a relative link)")
		r1, r2 := filepath.Join(root(tg), "releases/r1/bin"), filepath.Join(root(tg), "releases/r2/bin")
		if inode(t, r1+"/f000") != inode(t, r2+"/f000") {
			t.Error("unchanged file f000 was copied, want a hard link to the previous release")
		}
		if inode(t, r1+"/f003") == inode(t, r2+"/f003") {
			t.Error("changed file f003 shares the previous release's inode")
		}
		got, err := os.ReadFile(filepath.Join(root(tg), "current/bin/f003"))
		if err != nil || !strings.HasSuffix(string(got), "changed in v2") {
			t.Fatalf("current/bin/f003 = %q, %v; want the new content", got, err)
		}

		rels, err := s.Releases(t.Context(), tg)
		if err != nil {
			t.Fatal(err)
		}
		if len(rels) != 2 || rels[0].ID != "r2" || !rels[0].Live || rels[0].Commit != "bbb2" ||
			rels[1].ID != "r1" || rels[1].Live || !rels[1].Complete || rels[0].Time.IsZero() {
			t.Fatalf("Releases = %+v, want r2 (live, bbb2) then r1", rels)
		}
	})
}

func TestShipRefusesWrongHostKeyAndChangesNothing(t *testing.T) {
	t.Parallel()
	srv, tg := remoteTarget(t)
	other := sshdtest.New(t)
	tg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	line := fmt.Sprintf("[%s]:%d %s\n", srv.Host, srv.Port, other.HostPublicKey)
	if err := os.WriteFile(tg.KnownHostsFile, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	artifacts(t, src, 3, "v1")
	_, err := (&Shipper{}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r1"})
	if !errors.Is(err, ErrHostKey) {
		t.Fatalf("err = %v, want ErrHostKey", err)
	}
	want := fmt.Sprintf("host key verification failed for 127.0.0.1:%d", srv.Port)
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := os.Stat(root(tg)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target folder was touched despite the wrong host key: %v", err)
	}
}

func TestShipUnreachableTargetLeavesCurrentAndRetryWorks(t *testing.T) {
	t.Parallel()
	srv, tg := remoteTarget(t)
	s, src := shipR1(t, tg, 10)

	srv.Stop()
	artifacts(t, src, 10, "v2", 1)
	_, err := s.Ship(t.Context(), Request{Target: tg, Source: src, Release: "r2"})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("err = %v, want target unreachable: ... Connection refused", err)
	}
	if !strings.HasPrefix(err.Error(), "target unreachable: ssh: connect to host 127.0.0.1 port") {
		t.Errorf("error is not one clear sentence: %q", err)
	}
	wantCurrent(t, tg, "r1", "after failed deploy")

	srv.Start()
	ship(t, s, Request{Target: tg, Source: src, Release: "r2"})
	wantCurrent(t, tg, "r2", "after retry")
}

// stopOnWrite stops the server the first time the log mentions want.
type stopOnWrite struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	stop func()
}

func (w *stopOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.stop != nil && strings.Contains(w.buf.String(), w.want) {
		w.stop()
		w.stop = nil
	}
	return len(p), nil
}

func TestTargetVanishingMidDeployLeavesCurrentAndRetryResumes(t *testing.T) {
	t.Parallel()
	srv, tg := remoteTarget(t)
	s, src := shipR1(t, tg, 10)

	artifacts(t, src, 10, "v2", 1, 2)
	// The host vanishes once the connection is up and the transfer begins.
	log := &stopOnWrite{want: "==> rsync to", stop: srv.Stop}
	_, err := s.Ship(t.Context(), Request{Target: tg, Source: src, Release: "r2", Log: log})
	if !errors.Is(err, ErrInterrupted) && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want rsync interrupted or target unreachable\nlog:\n%s", err, log.buf.String())
	}
	wantCurrent(t, tg, "r1", "after the host vanished")
	if _, err := os.Stat(filepath.Join(root(tg), "releases/r2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("releases/r2 exists although its transfer was cut: %v", err)
	}

	srv.Start()
	ship(t, s, Request{Target: tg, Source: src, Release: "r2"})
	wantCurrent(t, tg, "r2", "after retry")
	if _, err := os.Stat(filepath.Join(root(tg), "releases/r2.partial")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial folder left behind after a successful retry: %v", err)
	}
}

func TestActivateFailureSwitchesBackAndRunsPreviousActivate(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		s := &Shipper{}
		src := t.TempDir()
		logFile := filepath.Join(t.TempDir(), "activated.log")
		vars := map[string]string{"LOGFILE": logFile}
		good := `echo "activate $SLIPWAY_RELEASE commit=$SLIPWAY_COMMIT env=$SLIPWAY_ENV prev=$SLIPWAY_PREVIOUS_RELEASE in=$(basename "$(pwd -P)")" >> "$LOGFILE"`
		artifacts(t, src, 5, "v1")
		ship(t, s, Request{Target: tg, Source: src, Release: "r1", Commit: "c1", Env: "staging", Activate: good, Vars: vars})

		artifacts(t, src, 5, "v2", 0)
		var log bytes.Buffer
		bad := `echo "r2 tried in $(basename "$(pwd -P)")" >> "$LOGFILE"; echo boom >&2; exit 3`
		res, err := s.Ship(t.Context(), Request{Target: tg, Source: src, Release: "r2", Commit: "c2", Env: "staging", Activate: bad, Vars: vars, Log: &log})
		if !errors.Is(err, ErrActivate) {
			t.Fatalf("err = %v, want ErrActivate", err)
		}
		if want := "activate failed with exit 3; switched back to release r1"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if res.Live != "r1" || res.Switched {
			t.Errorf("result %+v, want live r1 and not switched", res)
		}
		wantCurrent(t, tg, "r1", "after the switch back")
		if !strings.Contains(log.String(), "boom") {
			t.Errorf("activate's output is missing from the log:\n%s", log.String())
		}
		got, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		want := "activate r1 commit=c1 env=staging prev= in=r1\n" +
			"r2 tried in r2\n" +
			"activate r1 commit=c1 env=staging prev=r2 in=r1\n"
		if string(got) != want {
			t.Fatalf("activations:\n%s\nwant:\n%s", got, want)
		}
	})
}

func TestActivateFailureOnFirstDeployRemovesCurrent(t *testing.T) {
	t.Parallel()
	tg := Target{Local: filepath.Join(t.TempDir(), "app")}
	src := t.TempDir()
	artifacts(t, src, 2, "v1")
	_, err := (&Shipper{}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r1", Activate: "exit 7"})
	if want := "activate failed with exit 7; there was no previous release, so current was removed"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if got := currentLink(t, tg); got != "" {
		t.Fatalf("current -> %q, want no current", got)
	}
}

func TestPartialReleasesAreIgnoredThenRemoved(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		s, src := shipR1(t, tg, 3)
		// Debris of a crashed deployment: a partial folder and a release
		// folder without its completion marker.
		for _, d := range []string{"releases/r9.partial/bin", "releases/r8/bin"} {
			if err := os.MkdirAll(filepath.Join(root(tg), d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		rels, err := s.Releases(t.Context(), tg)
		if err != nil {
			t.Fatal(err)
		}
		var complete []string
		for _, r := range rels {
			if r.Complete {
				complete = append(complete, r.ID)
			}
		}
		if !slices.Equal(complete, []string{"r1"}) || len(rels) != 3 {
			t.Fatalf("Releases = %+v, want r1 complete and two partial ones", rels)
		}

		res, _ := ship(t, s, Request{Target: tg, Source: src, Release: "r2"})
		slices.Sort(res.Removed)
		if !slices.Equal(res.Removed, []string{"r8", "r9.partial"}) {
			t.Errorf("removed %v, want [r8 r9.partial]", res.Removed)
		}
		entries, err := os.ReadDir(filepath.Join(root(tg), "releases"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"r1", "r2"}) {
			t.Fatalf("releases/ holds %v, want [r1 r2]", names)
		}
	})
}

func TestPruneKeepsNewestAndNeverLiveOrPrevious(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		s := &Shipper{}
		srcs := map[int]string{}
		for i := 1; i <= 4; i++ {
			srcs[i] = t.TempDir()
			artifacts(t, srcs[i], 2, fmt.Sprint(i), 0)
			ship(t, s, Request{Target: tg, Source: srcs[i], Release: fmt.Sprintf("r%d", i), Keep: 1})
		}
		// keep = 1, but the release before the live one is the rollback
		// target and is never pruned.
		assertReleases(t, s, tg, []string{"r4", "r3"}, "r4")

		// Rolling back to a release still on the target moves nothing.
		res, log := ship(t, s, Request{Target: tg, Source: srcs[3], Release: "r3", Keep: 1})
		if !res.Reused || strings.Contains(log, "==> rsync") {
			t.Errorf("rollback to r3 transferred files: %+v\n%s", res, log)
		}
		assertReleases(t, s, tg, []string{"r4", "r3"}, "r3")

		src := t.TempDir()
		artifacts(t, src, 2, "5", 0)
		ship(t, s, Request{Target: tg, Source: src, Release: "r5", Keep: 2})
		assertReleases(t, s, tg, []string{"r5", "r3"}, "r5")
	})
}

func assertReleases(t *testing.T, s *Shipper, tg Target, want []string, live string) {
	t.Helper()
	rels, err := s.Releases(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	gotLive := ""
	for _, r := range rels {
		got = append(got, r.ID)
		if r.Live {
			gotLive = r.ID
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) || gotLive != live {
		t.Fatalf("releases %v live %q, want %v live %q", got, gotLive, want, live)
	}
}

func TestAcceptNewHostKeyPinsTheKey(t *testing.T) {
	t.Parallel()
	srv, tg := remoteTarget(t)
	tg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts") // not there yet
	src := t.TempDir()
	artifacts(t, src, 2, "v1")

	// Without the config's consent an unknown host is refused.
	_, err := (&Shipper{}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r1"})
	if !errors.Is(err, ErrHostKey) {
		t.Fatalf("unknown host without accept_new_host_key: err = %v, want ErrHostKey", err)
	}

	tg.AcceptNewHostKey = true
	ship(t, &Shipper{}, Request{Target: tg, Source: src, Release: "r1"})
	pinned, err := os.ReadFile(tg.KnownHostsFile)
	if err != nil || !strings.Contains(string(pinned), srv.HostPublicKey) {
		t.Fatalf("known_hosts after first contact = %q, %v; want the host key pinned", pinned, err)
	}
}

func TestWrongDeployKeyIsRefused(t *testing.T) {
	t.Parallel()
	_, tg := remoteTarget(t)
	other := sshdtest.New(t)
	tg.KeyFile = other.KeyFile
	src := t.TempDir()
	artifacts(t, src, 2, "v1")
	_, err := (&Shipper{}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r1"})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("err = %v, want deploy key refused: ... Permission denied", err)
	}
}

// cancelOnWrite cancels the deployment when the log mentions want.
type cancelOnWrite struct {
	want   string
	cancel func()
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.want) {
		w.cancel()
	}
	return len(p), nil
}

func TestCancelledTransferLeavesCurrent(t *testing.T) {
	t.Parallel()
	tg := Target{Local: filepath.Join(t.TempDir(), "app")}
	s, src := shipR1(t, tg, 5)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err := s.Ship(ctx, Request{Target: tg, Source: src, Release: "r2", Log: &cancelOnWrite{want: "==> rsync to", cancel: cancel}})
	if !errors.Is(err, ErrInterrupted) || !strings.HasPrefix(err.Error(), "rsync interrupted") {
		t.Fatalf("err = %v, want rsync interrupted", err)
	}
	wantCurrent(t, tg, "r1", "")
	ship(t, s, Request{Target: tg, Source: src, Release: "r2"})
	wantCurrent(t, tg, "r2", "after retry")
}

func TestReleasesOfANewTargetIsEmpty(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		rels, err := (&Shipper{}).Releases(t.Context(), tg)
		if err != nil || len(rels) != 0 {
			t.Fatalf("Releases of a target never deployed to = %v, %v; want none", rels, err)
		}
		if _, err := os.Stat(root(tg)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("listing releases created the target folder: %v", err)
		}
	})
}

// TestActivateVariablesAreOnNoCommandLine: an activate's variables (the
// secrets scoped to the environment among them) reach the command, and no
// process on the machine, here or on the target, shows them in its command
// line while it runs: the script travels on standard input.
func TestActivateVariablesAreOnNoCommandLine(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		secret := fmt.Sprintf("s3cr3t-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
		src := t.TempDir()
		artifacts(t, src, 3, "v1")
		started := filepath.Join(t.TempDir(), "started")
		seen := filepath.Join(t.TempDir(), "seen")
		release := filepath.Join(t.TempDir(), "release")
		vars := map[string]string{"API_TOKEN": secret, "STARTED": started, "SEEN": seen, "RELEASE": release}
		activate := `printf '%s' "$API_TOKEN" > "$SEEN"; : > "$STARTED"; while [ ! -e "$RELEASE" ]; do sleep 0.05; done`
		done := make(chan error, 1)
		go func() {
			_, err := (&Shipper{}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r1", Activate: activate, Vars: vars})
			done <- err
		}()
		testutil.Eventually(t, 30*time.Second, "activate running", func() bool {
			_, err := os.Stat(started)
			return err == nil
		})
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s shows the secret: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			}
		}
		if len(procs) < 5 {
			t.Fatalf("only %d processes listed: cannot tell", len(procs))
		}
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(seen); string(got) != secret {
			t.Fatalf("activate saw API_TOKEN=%q, want the secret", got)
		}
	})
}
