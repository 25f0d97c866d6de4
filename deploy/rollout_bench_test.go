package deploy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// BenchmarkRollout checks issue 16's targets for environments of many
// hosts: a 50 MB release of 500 files with 1% of them changed, redeployed
// to five hosts, takes at most 1.5 times as long as the same redeployment
// to one host, and its switch phase (no activate: from the last host
// prepared to the last host live) takes at most 200 ms. Each round
// redeploys the same change to one host and to five (the order alternates,
// so that cache warmth favours neither); the medians are reported, and a
// missed target fails the benchmark. Every host is its own real sshd on
// loopback, so on a small machine the hosts' work competes with the
// deployer's for the same cores: the CPU each rollout cost (this process
// and every child: ssh, rsync and the hosts' sshd with what they run) is
// reported beside its wall time, and so is the load average, since wall
// times taken on a machine busy with other work mean little. Run it alone:
//
//	go test -run '^$' -bench Rollout -benchtime 1x ./deploy/
func BenchmarkRollout(b *testing.B) {
	const (
		files, size, rounds, hosts = 500, 100 * 1024, 7, 5
		maxRatio                   = 1.5
		maxSwitch                  = 200 * time.Millisecond
	)
	src := filepath.Join(b.TempDir(), "src")
	change := release50MB(b, src, files, size)

	var srvs []*sshdtest.Server
	target := func() Target {
		srv := sshdtest.New(b)
		srvs = append(srvs, srv)
		return Target{User: srv.User, Host: srv.Host, Port: srv.Port, Path: filepath.Join(b.TempDir(), "app"),
			KeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile}
	}
	one := []Target{target()}
	five := make([]Target, hosts)
	for i := range five {
		five[i] = target()
	}
	s := &Shipper{}

	// roll redeploys release id to ts and returns its wall time, its switch
	// phase, and the CPU it cost here and in every child, counted once
	// every host's sshd has exited (a child's time is counted when it is
	// waited for).
	type rollTimes struct{ wall, sw, cpu time.Duration }
	roll := func(ts []Target, id string) rollTimes {
		var mu sync.Mutex
		var lastPrepared, lastLive time.Time
		live := 0
		report := func(h HostOutcome) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			switch h.State {
			case record.HostPrepared:
				lastPrepared = now
			case record.HostLive:
				lastLive = now
				live++
			}
		}
		var log bytes.Buffer
		reqs := requests(ts, src, id, "")
		for i := range reqs {
			reqs[i].Log = &log // Roll writes through one syncWriter
		}
		cpu0 := cpuTime(b)
		start := time.Now()
		res := s.Roll(b.Context(), reqs, Rollout{}, report)
		wall := time.Since(start)
		if res.State != record.DeploySucceeded || live != len(ts) {
			b.Fatalf("rollout of %s to %d hosts: %s: %s (%d live)\nlog:\n%s", id, len(ts), res.State, res.Reason, live, log.String())
		}
		waitNoSessions(b, srvs)
		return rollTimes{wall: wall, sw: lastLive.Sub(lastPrepared), cpu: cpuTime(b) - cpu0}
	}

	// The first release is a full transfer everywhere; it is not measured.
	roll(one, "r0")
	roll(five, "r0")

	var ones, fives []rollTimes
	load0 := loadAvg()
	b.ResetTimer()
	for r := 1; r <= rounds; r++ {
		change(r)
		id := fmt.Sprintf("r%d", r)
		if r%2 == 0 {
			ones = append(ones, roll(one, id))
			fives = append(fives, roll(five, id))
		} else {
			fives = append(fives, roll(five, id))
			ones = append(ones, roll(one, id))
		}
	}
	b.StopTimer()

	// Every host must be on the last release, built with hard links for the
	// unchanged files: a fast rollout that copied everything would not count.
	last, before := fmt.Sprintf("r%d", rounds), fmt.Sprintf("r%d", rounds-1)
	for i, tg := range append(slices.Clone(one), five...) {
		if l, err := os.Readlink(filepath.Join(root(tg), "current")); err != nil || l != "releases/"+last {
			b.Fatalf("host %d: current -> %q (%v), want releases/%s", i, l, err, last)
		}
		linked := 0
		for f := range files {
			name := fmt.Sprintf("lib%03d.bin", f)
			if sameFile(b, filepath.Join(root(tg), "releases", last, name), filepath.Join(root(tg), "releases", before, name)) {
				linked++
			}
		}
		if want := files - files/100; linked != want {
			b.Fatalf("host %d: %d of %d files hard-linked to the previous release, want %d", i, linked, files, want)
		}
	}

	med := func(rs []rollTimes, f func(rollTimes) time.Duration) time.Duration {
		d := make([]time.Duration, len(rs))
		for i, r := range rs {
			d[i] = f(r)
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	wall := func(r rollTimes) time.Duration { return r.wall }
	sw := func(r rollTimes) time.Duration { return r.sw }
	cpu := func(r rollTimes) time.Duration { return r.cpu }
	w1, w5, sw5 := med(ones, wall), med(fives, wall), med(fives, sw)
	c1, c5 := med(ones, cpu), med(fives, cpu)
	ratio := float64(w5) / float64(w1)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(w1), "1host-ms")
	b.ReportMetric(ms(w5), "5hosts-ms")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(ms(sw5), "switch5-ms")
	b.ReportMetric(ms(c1), "cpu1host-ms")
	b.ReportMetric(ms(c5), "cpu5hosts-ms")
	list := func(rs []rollTimes, f func(rollTimes) time.Duration) []time.Duration {
		d := make([]time.Duration, len(rs))
		for i, r := range rs {
			d[i] = f(r).Round(time.Millisecond)
		}
		return d
	}
	b.Logf("rollout of 50 MB / 500 files / 1%% changed, median of %d rounds on %d CPUs (load average %s before, %s after):\n"+
		"  one host %v, five hosts %v: ratio %.2fx (target <= %.1fx)\n"+
		"  switch phase: five hosts %v (target <= %v), one host %v\n"+
		"  CPU (this process and every child, the hosts' sshd included): one host %v (%.1f cores busy), five hosts %v (%.1f cores busy, %.1fx one host's)\n"+
		"  one host:   wall %v cpu %v switch %v\n  five hosts: wall %v cpu %v switch %v",
		rounds, runtime.NumCPU(), load0, loadAvg(),
		w1.Round(time.Millisecond), w5.Round(time.Millisecond), ratio, maxRatio,
		sw5.Round(time.Millisecond), maxSwitch, med(ones, sw).Round(time.Millisecond),
		c1.Round(time.Millisecond), float64(c1)/float64(w1), c5.Round(time.Millisecond), float64(c5)/float64(w5), float64(c5)/float64(c1),
		list(ones, wall), list(ones, cpu), list(ones, sw), list(fives, wall), list(fives, cpu), list(fives, sw))
	if ratio > maxRatio {
		b.Errorf("five hosts took %.2fx the time of one (%v against %v), target at most %.1fx", ratio, w5.Round(time.Millisecond), w1.Round(time.Millisecond), maxRatio)
	}
	if sw5 > maxSwitch {
		b.Errorf("switch phase of five hosts took %v, target at most %v", sw5.Round(time.Millisecond), maxSwitch)
	}
}

// release50MB writes a build output into dir, files random files of size
// bytes each, and returns a function that makes build r of it: 1% of the
// files get new content and every file a new modification time, as a fresh
// build would.
func release50MB(b *testing.B, dir string, files, size int) func(r int) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	write := func(i int) {
		buf := make([]byte, size)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("lib%03d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := range files {
		write(i)
	}
	return func(r int) {
		for k := range files / 100 {
			write((r*37 + k*101) % files)
		}
		now := time.Now()
		for i := range files {
			if err := os.Chtimes(filepath.Join(dir, fmt.Sprintf("lib%03d.bin", i)), now, now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// loadAvg is the system's 1-minute load average: wall times mean little on
// a machine busy with other work, and the hosts compete for its cores.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// cpuTime is the user and system time of this process and of its children
// waited for so far.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// waitNoSessions waits until no server has an sshd running: the last
// connections close when Roll returns, but the sshd serving each exits a
// moment later.
func waitNoSessions(b *testing.B, srvs []*sshdtest.Server) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, srv := range srvs {
		for srv.Sessions() > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("sshd on %s still serving %d sessions 10s after the rollout", srv.Addr(), srv.Sessions())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func sameFile(b *testing.B, p, q string) bool {
	b.Helper()
	fp, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	fq, err := os.Stat(q)
	if err != nil {
		b.Fatal(err)
	}
	return os.SameFile(fp, fq)
}
