package deploy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"slipway/internal/shell"
	"strings"
	"syscall"
	"testing"
	"time"

	"slipway/internal/sshdtest"
)

// BenchmarkRedeploy50MB redeploys a 50 MB artifact set of 500 files with 1%
// of the files changed, over a real sshd on loopback, with Ship and with the
// same rsync --link-dest plus ln -s / mv -T done by hand, alternating, and
// reports the medians and their ratio. Every round rewrites the modification
// time of every file, as a fresh build would. Run it alone:
//
//	go test -run '^$' -bench Redeploy -benchtime 1x ./deploy/
func BenchmarkRedeploy50MB(b *testing.B) {
	const files, size, rounds = 500, 100 * 1024, 7
	srv := sshdtest.New(b)
	base := b.TempDir()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	writeFile := func(i int) {
		buf := make([]byte, size)
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("lib%03d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for i := range files {
		writeFile(i)
	}
	target := func(name string) Target {
		return Target{User: srv.User, Host: srv.Host, Port: srv.Port, Path: filepath.Join(base, name),
			KeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile}
	}
	shipT, handT := target("ship"), target("hand")
	s := &Shipper{}
	if err := os.MkdirAll(handT.Path+"/releases", 0o755); err != nil {
		b.Fatal(err)
	}

	// The hand-made deployment: the same rsync flags Ship uses, then the
	// switch, each over its own plain ssh connection.
	sshOpts := s.sshOptions(handT)
	quoted := make([]string, 0, len(sshOpts)+1)
	for _, a := range append([]string{"ssh"}, sshOpts...) {
		quoted = append(quoted, shell.Quote(a))
	}
	byHand := func(id, prev string) {
		args := []string{"-rlpgoD", "--checksum", "--delete", "-e", strings.Join(quoted, " ")}
		if prev != "" {
			args = append(args, "--link-dest="+handT.Path+"/releases/"+prev)
		}
		args = append(args, src+"/", handT.Host+":"+handT.Path+"/releases/"+id+"/")
		if out, err := exec.Command("rsync", args...).CombinedOutput(); err != nil {
			b.Fatalf("rsync by hand: %v\n%s", err, out)
		}
		sw := fmt.Sprintf("cd %s && ln -sfn releases/%s current.tmp-%s && mv -T current.tmp-%s current", handT.Path, id, id, id)
		if out, err := exec.Command("ssh", append(sshOpts, handT.Host, sw)...).CombinedOutput(); err != nil {
			b.Fatalf("switch by hand: %v\n%s", err, out)
		}
	}
	shipOnce := func(id string) {
		if _, err := s.Ship(b.Context(), Request{Target: shipT, Source: src, Release: id}); err != nil {
			b.Fatalf("ship %s: %v", id, err)
		}
	}
	shipOnce("r0")
	byHand("r0", "")

	var shipTimes, handTimes []time.Duration
	b.ResetTimer()
	for r := 1; r <= rounds; r++ {
		for k := range files / 100 { // 1% changed
			writeFile((r*37 + k*101) % files)
		}
		now := time.Now()
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			if err := os.Chtimes(filepath.Join(src, e.Name()), now, now); err != nil {
				b.Fatal(err)
			}
		}
		id, prev := fmt.Sprintf("r%d", r), fmt.Sprintf("r%d", r-1)
		timeIt := func(f func()) time.Duration { st := time.Now(); f(); return time.Since(st) }
		// Alternate who goes first so cache warmth favours neither.
		if r%2 == 0 {
			shipTimes = append(shipTimes, timeIt(func() { shipOnce(id) }))
			handTimes = append(handTimes, timeIt(func() { byHand(id, prev) }))
		} else {
			handTimes = append(handTimes, timeIt(func() { byHand(id, prev) }))
			shipTimes = append(shipTimes, timeIt(func() { shipOnce(id) }))
		}
	}
	b.StopTimer()

	// Both must have produced the same thing: hard links for unchanged files.
	last := fmt.Sprintf("r%d", rounds)
	ino := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	for _, tg := range []Target{shipT, handT} {
		linked := 0
		now, before := filepath.Join(tg.Path, "releases", last), filepath.Join(tg.Path, "releases", fmt.Sprintf("r%d", rounds-1))
		for i := range files {
			name := fmt.Sprintf("lib%03d.bin", i)
			if ino(filepath.Join(now, name)) == ino(filepath.Join(before, name)) {
				linked++
			}
		}
		if linked != files-files/100 {
			b.Fatalf("%s: %d of %d files hard-linked to the previous release, want %d", tg.Path, linked, files, files-files/100)
		}
	}

	med := func(d []time.Duration) time.Duration { d = slices.Clone(d); slices.Sort(d); return d[len(d)/2] }
	ms, mh := med(shipTimes), med(handTimes)
	b.ReportMetric(float64(ms.Milliseconds()), "ship-ms")
	b.ReportMetric(float64(mh.Milliseconds()), "hand-ms")
	b.ReportMetric(float64(ms)/float64(mh), "ratio")
	b.Logf("redeploy 50 MB / 500 files / 1%% changed, median of %d: Ship %v, by hand %v, ratio %.2fx\nship: %v\nhand: %v",
		rounds, ms.Round(time.Millisecond), mh.Round(time.Millisecond), float64(ms)/float64(mh), shipTimes, handTimes)
}
