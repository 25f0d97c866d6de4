package e2e

// End-to-end tests of issue 12's sandbox limits ("hostile input cannot
// exhaust the host") against the real binary, bubblewrap and the kernel:
// a step filling /tmp, one filling the workspace, one opening 100,000
// files, one producing artifacts over the cap, each stopped with a line
// that says so, the host's memory and disk measured meanwhile; the
// defaults in force with no limit configured; and builds running at once
// as uids of their own. Small limits keep them fast.

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// elLimitsLine is the log's line of the limits every step runs under.
var elLimitsLine = regexp.MustCompile(`== limits of every step: (.*)`)

// elLog is a finished build's log, with its state and reason.
func elLog(t *testing.T, d *daemon, u *user, id int64) (btBuild, string) {
	t.Helper()
	b := btFinal(t, d, d.store(t), u, "app", id)
	return b, btLog(t, d, u, id, false)
}

// elShmem is the host's shared memory (tmpfs pages among them), from
// /proc/meminfo.
func elShmem(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kb, ok := strings.CutPrefix(sc.Text(), "Shmem:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 10, 64)
			return n << 10
		}
	}
	t.Fatal("no Shmem in /proc/meminfo")
	return 0
}

// elSandboxed are the pids of pids that run in a mount namespace other
// than the test's: the step's processes, not the bwrap that started them.
func elSandboxed(pids []int) []int {
	own, _ := os.Readlink("/proc/self/ns/mnt")
	var in []int
	for _, pid := range pids {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns != own {
			in = append(in, pid)
		}
	}
	return in
}

// TestExhaustTmp: a step writing 3 GB to /tmp gets "No space left on
// device" at max_tmp_bytes, and the build fails saying so. While the step
// holds its full /tmp, the test measures it from the host: the tmpfs is
// 64 MiB and full, and the host's shared memory grew by about that.
func TestExhaustTmp(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "[build]\nmax_tmp_bytes = 67108864\n")
	marker := btMarker("tmp")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(fmt.Sprintf("cache = true\n[build.env]\nEL_MARKER = %q\n", marker),
			`head -c 3000000000 /dev/zero > /tmp/fill; rc=$?; echo "fill exit $rc, /tmp/fill holds $(stat -c %s /tmp/fill) bytes"; `+
				btWaitStep("tmp")+`; exit $rc`),
	})
	shmBefore := elShmem(t)
	id, _ := btPushOne(t, d, alice, src, "main")
	d.eventually(t, btBuildTimeout, "the step to fill /tmp", func() bool { return btExists(d, "tmp.started") })
	shmFull := elShmem(t)
	pids := elSandboxed(btProcs(t, marker))
	if len(pids) == 0 {
		t.Fatal("no process of the step found")
	}
	var st unix.Statfs_t
	// The step's /tmp links to its /dev/shm; a link read through
	// /proc/PID/root would lead to the host's, so the mount itself.
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/root/dev/shm", pids[0]), &st); err != nil {
		t.Fatal(err)
	}
	size, used := int64(st.Blocks)*st.Bsize, int64(st.Blocks-st.Bfree)*st.Bsize
	t.Logf("the step's /tmp, seen from the host: %d bytes, %d used; host shared memory %d MiB before the build, %d MiB with /tmp full (+%d MiB)",
		size, used, shmBefore>>20, shmFull>>20, (shmFull-shmBefore)>>20)
	if st.Type != unix.TMPFS_MAGIC || size != 64<<20 || used != size {
		t.Errorf("the step's /tmp: type %x, %d bytes, %d used; want a full tmpfs of 64 MiB", st.Type, size, used)
	}
	btTouch(t, d, "tmp.go")
	b, log := elLog(t, d, alice, id)
	if b.State != "failed" || !strings.Contains(log, "No space left on device") ||
		!strings.Contains(log, "fill exit 1, /tmp/fill holds 67108864 bytes") || !strings.Contains(log, "/tmp 64 MiB") {
		t.Fatalf("3 GB into a /tmp of 64 MiB: %s (%s)\n%s", b.State, b.Reason, log)
	}
	btHealthy(t, d, d.store(t), alice, src)
}

// elDiskUsage is what a tree holds on disk (st_blocks), 0 when it is gone.
func elDiskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := e.Info(); err == nil {
			n += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	return n
}

// TestExhaustWorkspace: a step that writes into its workspace without end
// is stopped at max_workspace_bytes, with the line that says so, and the
// steps after it do not run. The test samples the workspace from the host
// meanwhile: it never held much more than the limit, and it is gone after
// the build, its disk given back.
func TestExhaustWorkspace(t *testing.T) {
	t.Parallel()
	const limit = 64 << 20
	alice, _, d := btApp(t, fmt.Sprintf("[build]\nmax_workspace_bytes = %d\n", limit))
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("",
			`i=0; while head -c 1048576 /dev/zero > f$i; do i=$((i+1)); echo "wrote $i MiB"; done; echo "write failed"`,
			`echo the second step ran`),
	})
	var dfBefore unix.Statfs_t
	if err := unix.Statfs(d.dataDir(), &dfBefore); err != nil {
		t.Fatal(err)
	}
	id, _ := btPushOne(t, d, alice, src, "main")
	ws := filepath.Join(d.dataDir(), "build", "work", strconv.FormatInt(id, 10), "workspace")
	var peak int64
	var samples int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if n := elDiskUsage(ws); n > peak {
				peak = n
			}
			samples++
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	b, log := elLog(t, d, alice, id)
	close(stop)
	wg.Wait()
	var dfAfter unix.Statfs_t
	if err := unix.Statfs(d.dataDir(), &dfAfter); err != nil {
		t.Fatal(err)
	}
	usedMiB := func(s unix.Statfs_t) int64 { return int64(s.Blocks-s.Bfree) * s.Bsize >> 20 }
	t.Logf("workspace peak %.1f MiB over %d samples (limit %d MiB); the data dir's filesystem used %d MiB before, %d MiB after (other tests write there too)",
		float64(peak)/(1<<20), samples, limit>>20, usedMiB(dfBefore), usedMiB(dfAfter))
	want := fmt.Sprintf("the workspace reached its limit of %d bytes (build.max_workspace_bytes)", limit)
	if b.State != "failed" || !strings.Contains(b.Reason, "stopped: "+want) ||
		!regexp.MustCompile(`(?m)^\[[0-9:.]+\] == step 1 stopped after \S+: `+regexp.QuoteMeta(want)+`; it held \d+ bytes$`).MatchString(log) ||
		regexp.MustCompile(`(?m)\] (the second step ran|write failed)$`).MatchString(log) {
		t.Fatalf("filling the workspace: %s (%s)\n%s", b.State, b.Reason, log)
	}
	// Caught within a tick of the daemon's watch (25 ms), a walk of the
	// workspace and the kill, at the 200-300 MB/s this step writes: a few
	// MiB, more on a loaded machine with the race detector on; twice the
	// limit would mean the watch missed its ticks.
	if peak > 2*limit {
		t.Errorf("the workspace held %d bytes at its peak, %d over the limit", peak, peak-limit)
	}
	if _, err := os.Stat(ws); !os.IsNotExist(err) {
		t.Errorf("the workspace is still there after the build: %v", err)
	}
	btHealthy(t, d, d.store(t), alice, src)
}

// TestExhaustOpenFiles: with no limit configured, the defaults hold and
// every build log says them in the words of the banner; a step opening
// 100,000 files stops at the default 4096 with the error in the log.
func TestExhaustOpenFiles(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("",
			`bash -c 'for i in $(seq 1 100000); do exec {fd}</dev/null || { echo "opened $((i-1)) files"; exit 3; }; done; echo "opened them all"'`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b, log := elLog(t, d, alice, id)
	m := regexp.MustCompile(`opened (\d+) files`).FindStringSubmatch(log)
	if b.State != "failed" || m == nil || !strings.Contains(log, "Too many open files") || !strings.Contains(b.Reason, "exited 3") {
		t.Fatalf("100,000 open files: %s (%s)\n%s", b.State, b.Reason, log)
	}
	if n, _ := strconv.Atoi(m[1]); n >= 4096 {
		t.Errorf("the step opened %d files", n)
	}
	// The defaults, the same line in the log as in the banner.
	l := elLimitsLine.FindStringSubmatch(log)
	banner := regexp.MustCompile(`(?m)^  (ok|--) limits: (.*)$`).FindStringSubmatch(d.stdout.String())
	if l == nil || banner == nil || l[1] != banner[2] {
		t.Fatalf("the log's limits and the banner's differ:\nlog:    %v\nbanner: %v\n%s", l, banner, d.stdout)
	}
	t.Logf("limits by default: %s", l[1])
	defaults := regexp.MustCompile(`^in force: processes 512, file size 1 GiB, open files 4096, (memory \d+ MiB, )?/tmp 2 GiB, workspace 10 GiB, artifacts 1 GiB(; NOT in force: memory \d+ MiB \(no memory cgroup [^)]*\))?$`)
	// Memory is in force where the daemon may make cgroups (as root here
	// and in CI), else the line says why not; either way it is said once.
	if !defaults.MatchString(l[1]) || strings.Count(l[1], "memory ") != 1 {
		t.Errorf("the default limits are not all in force, or not said:\n%s", l[1])
	}
}

// TestExhaustArtifacts: a build whose artifacts are over max_artifact_bytes
// fails with their size and the cap, and keeps nothing of them.
func TestExhaustArtifacts(t *testing.T) {
	t.Parallel()
	alice, _, d := btApp(t, "[build]\nmax_artifact_bytes = 16777216\n")
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline(`artifacts = ["out/"]`+"\n",
			`mkdir -p out && head -c 40000000 /dev/zero > out/big && head -c 1000 /dev/zero > out/small`),
	})
	id, _ := btPushOne(t, d, alice, src, "main")
	b, log := elLog(t, d, alice, id)
	want := "artifacts: the artifacts are 38.1 MiB (40001000 bytes), over the cap of 16 MiB (build.max_artifact_bytes); none were kept"
	if b.State != "failed" || b.Reason != want || !strings.Contains(log, want) {
		t.Fatalf("40 MB of artifacts over a cap of 16 MiB: %s (%s)\n%s", b.State, b.Reason, log)
	}
	if _, err := os.Stat(filepath.Join(d.dataDir(), "artifacts", strconv.FormatInt(id, 10))); !os.IsNotExist(err) {
		t.Errorf("artifacts over the cap were kept: %v", err)
	}
}

// TestBuildsRunAsTheirOwnUIDs: two builds running at once (two branches,
// each with its own cache) run as two uids of build.uid_range; each
// workspace and cache is its uid's alone, mode 0700, and neither the other
// build's uid nor an ordinary local account (nobody) can list it.
func TestBuildsRunAsTheirOwnUIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds run as uids of their own only when the daemon is root (CI runs as root)")
	}
	t.Parallel()
	alice, _, d := btApp(t, "[build]\nconcurrency = 2\nuid_range = \"2000000500+16\"\n")
	wait := `echo "uid $(id -u)"; echo secret > mine; touch /cache/$SLIPWAY_BRANCH.started; while [ ! -e /cache/$SLIPWAY_BRANCH.go ]; do sleep 0.05; done`
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("cache = true\n", wait)})
	alice.mustGit(t, src, "branch", "feature")
	out := alice.mustGit(t, src, "push", d.url("app"), "main", "feature")
	ids := btQueued(t, d, out)
	if len(ids) != 2 {
		t.Fatalf("the push queued %d builds:\n%s", len(ids), out)
	}
	d.eventually(t, btBuildTimeout, "both builds to run", func() bool {
		return btExists(d, "main.started") && btExists(d, "feature.started")
	})
	as := func(uid int, args ...string) (string, error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(uid), "--clear-groups", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	owner := func(dir string) (int, fs.FileMode) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
	}
	var uids []int
	for _, id := range ids {
		ws := filepath.Join(d.dataDir(), "build", "work", strconv.FormatInt(id, 10), "workspace")
		uid, mode := owner(ws)
		uids = append(uids, uid)
		if mode != 0o700 || uid < 2000000500 || uid >= 2000000516 {
			t.Errorf("build #%d's workspace is uid %d's, mode %04o; want a uid of the range, 0700", id, uid, mode)
		}
	}
	for _, cache := range btRefCaches(d) {
		uid, mode := owner(cache)
		if mode != 0o700 || (uid != uids[0] && uid != uids[1]) {
			t.Errorf("cache %s is uid %d's, mode %04o; want a build's uid, 0700", cache, uid, mode)
		}
	}
	t.Logf("builds %v run as uids %v", ids, uids)
	if uids[0] == uids[1] {
		t.Fatalf("two builds running at once share uid %d", uids[0])
	}
	for i, id := range ids {
		ws := filepath.Join(d.dataDir(), "build", "work", strconv.FormatInt(id, 10), "workspace")
		for _, who := range []int{uids[1-i], 65534} {
			if out, err := as(who, "ls", ws); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d lists build #%d's workspace: %v %s", who, id, err, out)
			}
		}
		if out, err := as(uids[i], "cat", filepath.Join(ws, "mine")); err != nil || out != "secret\n" {
			t.Errorf("build #%d's own uid cannot read its file: %v %q", id, err, out)
		}
	}
	btTouch(t, d, "main.go")
	btTouch(t, d, "feature.go")
	for i, id := range ids {
		b, log := elLog(t, d, alice, id)
		if b.State != "passed" || !strings.Contains(log, fmt.Sprintf("uid %d", uids[i])) {
			t.Errorf("build #%d: %s (%s)\n%s", id, b.State, b.Reason, log)
		}
	}
}
