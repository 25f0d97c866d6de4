package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/build/executor"
	"slipway/internal/testutil"
)

// tmpStep fills /tmp, /dev/shm and ~ as far as it can, one after the
// other, tries to write where nothing may be written, and prints what it
// got.
const tmpStep = `for f in /tmp/big /dev/shm/big ~/big; do
	head -c 100000000 /dev/zero > $f; echo "$f exit $? size $(stat -c %s $f)"; rm $f
done
head -c 10000000 /dev/zero > /tmp/a; head -c 10000000 /dev/zero > /dev/shm/b; echo "shared exit $?"
for f in /x /dev/x; do (: > $f) 2>&1 | sed 's/^/ro: /'; done
echo to-null > /dev/null && echo "null ok"`

// checkTmpStep checks tmpStep's output for a Limits.Tmp of 16 MiB.
func checkTmpStep(t *testing.T, out string) {
	t.Helper()
	t.Logf("step output:\n%s", out)
	// The last: /tmp and /dev/shm are one tmpfs, 20 MB do not fit.
	if got := strings.Count(out, "No space left on device"); got != 4 || !strings.Contains(out, "shared exit 1") {
		t.Errorf("%d writes failed with ENOSPC, want 4 (/tmp, /dev/shm, ~, and /tmp with /dev/shm)", got)
	}
	for _, f := range []string{"/tmp/big", "/dev/shm/big", "~/big"} {
		if f == "~/big" {
			f = HomeDir + "/big"
		}
		m := regexp.MustCompile(regexp.QuoteMeta(f) + ` exit (\d+) size (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("no line for %s", f)
			continue
		}
		size, _ := strconv.ParseInt(m[2], 10, 64)
		if m[1] == "0" || size > 16<<20 {
			t.Errorf("%s: exit %s, %d bytes written; want a failure at 16 MiB", f, m[1], size)
		}
	}
	if strings.Count(out, "Read-only file system") != 2 {
		t.Errorf("/ or /dev is writable (a tmpfs of unbounded size)")
	}
	if !strings.Contains(out, "null ok") {
		t.Errorf("/dev/null cannot be written")
	}
}

// /tmp (one tmpfs with /dev/shm) and a home of the step's own are tmpfs
// mounts of at most Limits.Tmp: a step writing 100 MB to each gets "No
// space left on device" at 16 MiB, and 10 MB to /tmp and 10 to /dev/shm
// do not fit either. The root and /dev, tmpfs mounts bubblewrap cannot
// size, are read-only.
func TestTmpIsSized(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	r := newBwrap()
	spec := Spec{Workspace: ws, Limits: Limits{Tmp: 16 << 20}}
	spec.Env = stepEnv(r.Layout(spec))
	res, out := run(t, r, spec, tmpStep)
	if res.ExitCode != 0 || len(res.Unenforced) != 0 {
		t.Errorf("exit %d, unenforced %q", res.ExitCode, res.Unenforced)
	}
	checkTmpStep(t, out)
}

// The same from an ordinary account, as the quick start runs it.
func TestTmpIsSizedAsNonRoot(t *testing.T) {
	t.Parallel()
	if !asNonRoot(t) {
		return
	}
	ws := t.TempDir()
	r := &Bwrap{}
	spec := Spec{Workspace: ws, Limits: Limits{Tmp: 16 << 20}}
	spec.Env = stepEnv(r.Layout(spec))
	_, out := run(t, r, spec, tmpStep)
	checkTmpStep(t, out)
}

// A step opening 100,000 files stops at Limits.Files with the error in its
// output.
func TestOpenFilesLimit(t *testing.T) {
	t.Parallel()
	ws, _ := layout(t)
	res, out := run(t, newBwrap(), Spec{Workspace: ws, Env: []string{"PATH=/usr/bin:/bin"}, Limits: Limits{Files: 4096}},
		`bash -c 'for i in $(seq 1 100000); do exec {fd}</dev/null || { echo "opened $((i-1))"; exit 3; }; done; echo "opened all"'`)
	t.Logf("exit %d: %s", res.ExitCode, out)
	m := regexp.MustCompile(`opened (\d+)`).FindStringSubmatch(out)
	if res.ExitCode != 3 || m == nil || !strings.Contains(out, "Too many open files") {
		t.Fatalf("exit %d; want the step stopped by the limit with the error shown:\n%s", res.ExitCode, out)
	}
	if n, _ := strconv.Atoi(m[1]); n >= 4096 || n < 4000 {
		t.Errorf("opened %d files; want a few under 4096", n)
	}
}

// writerStep writes 1 MiB files into dir until it is stopped, printing
// how many it has written after each.
func writerStep(dir string) string {
	return fmt.Sprintf(`mkdir -p %[1]s && i=0; while head -c 1048576 /dev/zero > %[1]s/f$i; do i=$((i+1)); echo "wrote $i MiB"; done; echo "write failed"; exit 9`, dir)
}

// localJob is a job in a fresh workspace whose log the test reads.
func localJob(t *testing.T, steps ...string) (executor.Job, *testutil.Buffer) {
	t.Helper()
	ws, _ := layout(t)
	if err := os.Chmod(filepath.Dir(ws), 0o711); err != nil {
		t.Fatal(err)
	}
	var log testutil.Buffer
	return executor.Job{Workspace: ws, Steps: steps, Env: []string{"PATH=/usr/bin:/bin", "HOME=" + HomeDir},
		Timeout: 2 * time.Minute, Log: &log}, &log
}

// A step that fills the workspace, or the home, is stopped once they hold
// Limits.Workspace together; the steps after it do not run. It is stopped
// soon after: what the workspace holds in the end is logged, and bounded.
func TestWorkspaceLimitStopsTheStep(t *testing.T) {
	t.Parallel()
	const limit = 32 << 20
	for _, tc := range []struct{ name, step string }{
		{"workspace", writerStep("out")},
		{"home", writerStep("~/fill")},
		// One process writing as fast as it can (page cache speed).
		{"fast", "head -c 3000000000 /dev/zero > big; echo write failed; exit 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Local{Runner: newBwrap(), TempDir: t.TempDir()}
			searchable(t, l.TempDir)
			job, log := localJob(t, "head -c 4000000 /dev/zero > small", tc.step, "echo third step ran")
			job.Limits.Workspace = limit
			// What the workspace and the home hold at the end of a step,
			// measured before the home is removed.
			var final int64
			job.StepEnded = func(i int, _ executor.StepResult) {
				final, _, _ = diskUsage([]string{job.Workspace, l.home(job)})
			}
			start := time.Now()
			res, err := l.Run(t.Context(), job)
			if err != nil {
				t.Fatal(err)
			}
			out := log.String()
			if len(res.Steps) != 2 || res.Steps[0].ExitCode != 0 {
				t.Fatalf("steps %+v\n%s", res.Steps, out)
			}
			s := res.Steps[1]
			if !s.WorkspaceFull || s.ExitCode != -1 || s.Cancelled || s.WorkspaceUsed < limit || strings.Contains(out, "third step ran") || strings.Contains(out, "write failed") {
				t.Fatalf("second step %+v; want it stopped at the limit and no third step\n%s", s, out)
			}
			t.Logf("stopped after %s: measured %d bytes when stopped, %d (%.1f MiB over the limit of %d MiB) once every process was gone",
				time.Since(start).Round(time.Millisecond), s.WorkspaceUsed, final, float64(final-limit)/(1<<20), limit>>20)
			// Caught within a tick of the filesystem check, a walk and
			// the kill: a few MiB at the 100 MB/s of the shell loop, up
			// to 30 at the page cache's speed here. Twice the limit would
			// mean the watch missed its ticks.
			if final > 2*limit {
				t.Errorf("the workspace held %d bytes when the step was gone, %d over the limit", final, final-limit)
			}
		})
	}
}

// Empty files hold no blocks but use up the filesystem's inodes: each
// counts as a block of 4 KiB, so 20,000 of them go over 32 MiB.
func TestWorkspaceLimitCountsEmptyFiles(t *testing.T) {
	t.Parallel()
	l := &Local{Runner: newBwrap(), TempDir: t.TempDir()}
	searchable(t, l.TempDir)
	job, log := localJob(t, `mkdir d && cd d && i=0; while [ $i -lt 20000 ]; do : > e$i; i=$((i+1)); done; echo "made them all"`)
	job.Limits.Workspace = 32 << 20
	res, err := l.Run(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	// Stopped, or, if it was done before a measurement came, failed
	// for what it left.
	if len(res.Steps) != 1 || !res.Steps[0].WorkspaceFull {
		t.Fatalf("steps %+v; want the step stopped\n%s", res.Steps, log)
	}
	n, _ := os.ReadDir(filepath.Join(job.Workspace, "d"))
	t.Logf("stopped at %d empty files", len(n))
}

// Under the limit nothing happens, and a workspace that is over it when a
// step starts stops that step at once.
func TestWorkspaceLimitUnderAndOver(t *testing.T) {
	t.Parallel()
	l := &Local{Runner: newBwrap(), TempDir: t.TempDir()}
	searchable(t, l.TempDir)
	job, _ := localJob(t, "head -c 1000000 /dev/zero > a", "head -c 1000000 /dev/zero > b")
	job.Limits.Workspace = 8 << 20
	res, err := l.Run(t.Context(), job)
	if err != nil || len(res.Steps) != 2 || res.Steps[1].ExitCode != 0 {
		t.Fatalf("under the limit: %v, %+v", err, res.Steps)
	}
	if err := os.WriteFile(filepath.Join(job.Workspace, "c"), make([]byte, 9<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	job.Steps = []string{"sleep 30"}
	start := time.Now()
	res, err = l.Run(t.Context(), job)
	if err != nil || len(res.Steps) != 1 || !res.Steps[0].WorkspaceFull {
		t.Fatalf("over the limit at the start: %v, %+v", err, res.Steps)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the step over the limit ran %s", d)
	}
}

// diskUsage counts what files hold, not their length, hard links once, and
// every entry at least one block.
func TestDiskUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, n int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 1<<20)
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "a2")); err != nil {
		t.Fatal(err)
	}
	write("empty", 0)
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	got, n, err := diskUsage([]string{dir, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	// The folder, a (its links once), empty, sparse, link: four blocks
	// at least and 1 MiB.
	if n != 6 || got < 1<<20+4*minBlock || got > 1<<20+16*minBlock {
		t.Errorf("diskUsage = %d bytes over %d entries; want 1 MiB and a few blocks over 6", got, n)
	}
}

// Two jobs running at once run as two uids of the pool; each workspace and
// home is its uid's alone (0700), so that a step run as the other uid, and
// an ordinary local account, cannot even list it.
func TestConcurrentJobsRunAsTheirOwnUIDs(t *testing.T) {
	t.Parallel()
	needRoot(t, "steps run as other uids only when the daemon is root")
	const first = 2000000000
	l := &Local{Runner: newBwrap(), TempDir: t.TempDir(), IDs: NewIDPool(first, 8)}
	searchable(t, l.TempDir)
	type running struct {
		job executor.Job
		log *testutil.Buffer
		res executor.Result
		err error
	}
	jobs := make([]*running, 2)
	var wg sync.WaitGroup
	for i := range jobs {
		job, log := localJob(t, `echo secret > mine; id -u > .uid.new; mv .uid.new .uid; while [ ! -e go ]; do sleep 0.02; done`)
		jobs[i] = &running{job: job, log: log}
		wg.Go(func() { jobs[i].res, jobs[i].err = l.Run(t.Context(), jobs[i].job) })
	}
	uids := make([]int, len(jobs))
	for i, j := range jobs {
		testutil.Eventually(t, time.Minute, "the step to start", func() bool {
			b, err := os.ReadFile(filepath.Join(j.job.Workspace, ".uid"))
			if err == nil && strings.HasSuffix(string(b), "\n") {
				uids[i], _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return true
			}
			return false
		})
	}
	t.Logf("the jobs run as uids %v", uids)
	if uids[0] == uids[1] || uids[0] < first || uids[1] < first || uids[0] >= first+8 || uids[1] >= first+8 {
		t.Fatalf("uids %v; want two different ones of the pool", uids)
	}
	as := func(uid int, args ...string) (string, error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(uid), "--clear-groups", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i, j := range jobs {
		for _, dir := range []string{j.job.Workspace, l.home(j.job)} {
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uids[i] || int(st.Gid) != uids[i] || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s is %d:%d %04o; want %d's alone, 0700", dir, st.Uid, st.Gid, fi.Mode().Perm(), uids[i])
			}
		}
		other := uids[1-i]
		for _, who := range []int{other, 65534} {
			if out, err := as(who, "ls", j.job.Workspace); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d lists job %d's workspace: %v %s", who, i, err, out)
			}
			if out, err := as(who, "cat", filepath.Join(j.job.Workspace, "mine")); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("uid %d reads job %d's file: %v %s", who, i, err, out)
			}
		}
		// The job's own uid can: what the others met was the permission.
		if out, err := as(uids[i], "cat", filepath.Join(j.job.Workspace, "mine")); err != nil || out != "secret\n" {
			t.Errorf("job %d's own uid cannot read its file: %v %s", i, err, out)
		}
	}
	for _, j := range jobs {
		if err := os.WriteFile(filepath.Join(j.job.Workspace, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for i, j := range jobs {
		if j.err != nil || len(j.res.Steps) != 1 || j.res.Steps[0].ExitCode != 0 {
			t.Errorf("job %d: %v %+v\n%s", i, j.err, j.res.Steps, j.log)
		}
	}
}

// A cache kept by a build that ran as one uid is handed, whole, to the uid
// of the next build that uses it; then that build can change everything in
// it.
func TestCacheIsHandedToTheNextBuildsUID(t *testing.T) {
	t.Parallel()
	needRoot(t, "steps run as other uids only when the daemon is root")
	const old, next = 2000000100, 2000000200
	l := &Local{Runner: newBwrap(), TempDir: t.TempDir(), IDs: NewIDPool(next, 1)}
	searchable(t, l.TempDir)
	job, log := localJob(t, `echo new >> /cache/deep/er/file && rm /cache/deep/gone && mkdir /cache/deep/more && stat -c %u /cache /cache/deep/er/file`)
	job.Cache = filepath.Join(filepath.Dir(job.Workspace), "cache")
	for _, d := range []string{"deep/er"} {
		if err := os.MkdirAll(filepath.Join(job.Cache, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"deep/er/file", "deep/gone"} {
		if err := os.WriteFile(filepath.Join(job.Cache, f), []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chownTree(job.Cache, old, old); err != nil {
		t.Fatal(err)
	}
	res, err := l.Run(t.Context(), job)
	if err != nil || len(res.Steps) != 1 || res.Steps[0].ExitCode != 0 {
		t.Fatalf("%v %+v\n%s", err, res.Steps, log)
	}
	if want := fmt.Sprintf("%d\n%d\n", next, next); log.String() != want {
		t.Errorf("the step saw owners %q, want %q", log, want)
	}
	fi, _ := os.Stat(job.Cache)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cache mode %04o, want 0700", fi.Mode().Perm())
	}
}

func TestIDPool(t *testing.T) {
	t.Parallel()
	p := NewIDPool(100, 3)
	a, relA, err := p.Lease(t.Context(), "", -1)
	if err != nil || a != 100 {
		t.Fatalf("first lease: %d, %v", a, err)
	}
	c1, relC1, _ := p.Lease(t.Context(), "/cache/x", 102)
	c2, relC2, _ := p.Lease(t.Context(), "/cache/x", -1)
	if c1 != 102 || c2 != 102 {
		t.Errorf("builds sharing a cache got %d and %d; want both the preferred 102", c1, c2)
	}
	b, relB, _ := p.Lease(t.Context(), "", 100)
	if b != 101 {
		t.Errorf("a build preferring a taken id got %d; want the free 101", b)
	}
	// All three are taken: the next lease waits for one.
	got := make(chan int, 1)
	go func() {
		id, _, err := p.Lease(context.Background(), "", -1)
		if err != nil {
			t.Error(err)
		}
		got <- id
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := p.Lease(ctx, "", -1); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "all 3 of 100-102 are in use") {
		t.Errorf("lease with none free: %v", err)
	}
	relC1()
	relC1() // a second call gives nothing back twice
	select {
	case id := <-got:
		t.Fatalf("lease got %d while 102 was still held by the second build of the cache", id)
	case <-time.After(50 * time.Millisecond):
	}
	relC2()
	if id := <-got; id != 102 {
		t.Errorf("the waiting lease got %d, want 102", id)
	}
	relA()
	relB()
}

func TestCheckIDRange(t *testing.T) {
	t.Parallel()
	etc := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbuilder:x:2000000005:100::/home/b:/bin/sh\n")
	write("group", "root:x:0:\nodd:x:2000000300:\n")
	write("subuid", "alice:100000:65536\nbig:2000000990:20\n")
	for _, tc := range []struct {
		first, count int
		want         string
	}{
		{2000000000, 4, ""},
		{2000000000, 8, `user "builder"`},
		{2000000290, 20, `group "odd"`},
		{2000000999, 10, `the subordinate ids 2000000990-2000001009 of "big"`},
		{65534, 1, `user "nobody"`},
	} {
		err := checkIDRange(etc, tc.first, tc.count)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d+%d: %v", tc.first, tc.count, err)
		case tc.want != "" && (!errors.Is(err, ErrIDsInUse) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d+%d: %v; want it to name %s", tc.first, tc.count, err, tc.want)
		}
	}
	// The default range is free on this machine, as on any Debian.
	if err := CheckIDRange(2000000000, 1024); err != nil {
		t.Errorf("the default range on this machine: %v", err)
	}
}

// The runners say up front what they cannot hold, in the words of
// executor.Limit*.
func TestUnenforced(t *testing.T) {
	t.Parallel()
	all := Spec{Limits: Limits{Procs: 1, FileSize: 1, Files: 1, Memory: 1, Tmp: 1, Workspace: 1}}
	names := func(u []string) []string {
		var n []string
		for _, s := range u {
			name, _, _ := strings.Cut(s, ":")
			n = append(n, name)
		}
		return n
	}
	if got := names(None{}.Unenforced(all)); !slices.Equal(got, []string{"processes", "memory", "/tmp", "network"}) {
		t.Errorf("None: %q", got)
	}
	want := []string{"memory"}
	if os.Geteuid() == 0 {
		want = []string{"processes", "memory"}
	}
	if got := names((&Bwrap{}).Unenforced(all)); !slices.Equal(got, want) {
		t.Errorf("Bwrap without a uid or cgroups: %q, want %q", got, want)
	}
	if got := (&Bwrap{Path: "/bin/true"}).Unenforced(all); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "/tmp: this bubblewrap cannot size") }) {
		t.Errorf("a bwrap without --size: %q", got)
	}
}

// BenchmarkDiskUsage walks a tree of 10,000 small files in 100 folders,
// the size of a modest node_modules: the cost of one measurement of the
// workspace limit.
func BenchmarkDiskUsage(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		sub := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(j)), []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	for b.Loop() {
		if _, n, err := diskUsage([]string{dir}); err != nil || n != 10101 {
			b.Fatalf("%d entries, %v", n, err)
		}
	}
}

// Steps that run as uids of the pool find their user in the sandbox's
// /etc: tools that look it up (ssh, id -un, a JVM's user.home) work.
func TestBuildUIDsHaveAUser(t *testing.T) {
	t.Parallel()
	needRoot(t, "steps run as uids of the pool only when the daemon is root")
	etc := searchableTemp(t, "etc")
	ids := NewIDPool(2000000300, 4)
	if _, err := PrepareEtcFor(etc, ids); err != nil {
		t.Fatal(err)
	}
	l := &Local{Runner: &Bwrap{EtcDir: etc}, TempDir: t.TempDir(), IDs: ids}
	searchable(t, l.TempDir)
	job, log := localJob(t, `echo "$(id -u) $(id -un) $(id -gn) $(getent passwd $(id -u) | cut -d: -f6)"; ssh -G example.invalid >/dev/null 2>&1 && echo ssh ok`)
	res, err := l.Run(t.Context(), job)
	if err != nil || len(res.Steps) != 1 || res.Steps[0].ExitCode != 0 {
		t.Fatalf("%v %+v\n%s", err, res.Steps, log)
	}
	if out := log.String(); out != "2000000300 build build /home/build\nssh ok\n" {
		t.Errorf("the step's user: %q", out)
	}
	// The host's accounts are still there.
	if b, err := os.ReadFile(filepath.Join(etc, "passwd")); err != nil || !strings.HasPrefix(string(b), "root:") || strings.Count(string(b), "\nbuild:") != 4 {
		t.Errorf("passwd of the sandbox: %v\n%s", err, b)
	}
}

// A daemon killed while a step ran leaves the step's cgroup, perhaps with
// a process blocked in it; the next start's Sweep kills what is in it and
// removes it, and leaves the cgroups of running processes alone.
func TestCgroupSweep(t *testing.T) {
	t.Parallel()
	cg, err := DetectCgroups()
	if err != nil {
		t.Fatalf("this host offers no memory cgroup (CI must): %v", err)
	}
	// A pid beyond pid_max: no process has it, now or later.
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	gone := filepath.Join(cg.parent, fmt.Sprintf("%s%d-%s", stepPrefix, pidMax+1, "0123456789ab"))
	mine, err := cg.create(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.remove()
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(gone) })
	// A process left in it, as bubblewrap's child blocked for ever.
	orphan := exec.Command("sleep", "600")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- orphan.Wait() }()
	t.Cleanup(func() { _ = orphan.Process.Kill() })
	if err := os.WriteFile(filepath.Join(gone, "cgroup.procs"), []byte(strconv.Itoa(orphan.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if n := cg.Sweep(); n < 1 {
		t.Errorf("Sweep removed %d cgroups", n)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("the cgroup of a dead process is still there: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("the process left in the cgroup of a dead daemon was not killed")
	}
	if _, err := os.Stat(mine.dir); err != nil {
		t.Errorf("Sweep removed a running process's cgroup: %v", err)
	}
}
