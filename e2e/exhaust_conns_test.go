package e2e

import (
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ecFlood holds connections to a daemon that never authenticate, each
// renewed as soon as the daemon closes it, from one local address, until
// stop. With speak, each sends an SSH version line and then nothing;
// without, nothing at all.
type ecFlood struct {
	from     string
	speak    bool
	connects atomic.Int64 // connections made
	admitted atomic.Int64 // of which the daemon sent its version (let in)
	open     atomic.Int64 // let in and not yet closed by the daemon
	maxOpen  atomic.Int64 // the most open at once
	errs     atomic.Int64 // dials that failed
	wg       sync.WaitGroup
}

func ecStartFlood(addr, from string, speak bool, n int, stop <-chan struct{}) *ecFlood {
	f := &ecFlood{from: from, speak: speak}
	for range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					f.errs.Add(1)
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				f.connects.Add(1)
				f.hold(c, stop)
			}
		}()
	}
	return f
}

// hold keeps c until the daemon closes it or stop, counting whether the
// daemon let it in.
func (f *ecFlood) hold(c net.Conn, stop <-chan struct{}) {
	closed := make(chan struct{})
	defer close(closed)
	go func() {
		select {
		case <-stop:
		case <-closed:
		}
		c.Close()
	}()
	if f.speak {
		c.Write([]byte("SSH-2.0-flood\r\n"))
	}
	banner := make([]byte, len("SSH-2.0-Slipway\r\n"))
	if _, err := io.ReadFull(c, banner); err != nil {
		return // refused
	}
	f.admitted.Add(1)
	n := f.open.Add(1)
	for m := f.maxOpen.Load(); n > m && !f.maxOpen.CompareAndSwap(m, n); m = f.maxOpen.Load() {
	}
	io.Copy(io.Discard, c) // until the daemon (or stop) closes it
	f.open.Add(-1)
}

// ecSummaryRE matches the daemon's summary of refused connections.
var ecSummaryRE = regexp.MustCompile(`.*msg="ssh: refused (\d+) connections \(([^)]*)\).*`)

// TestIdleConnectionsCannotLockUsersOut holds 300 idle TCP connections to
// the daemon from the user's own address (127.0.0.1), renewed as the daemon
// closes them, and 3 x 80 connections that send an SSH version line and
// stop from three other addresses, for 30 s. Before startups had a budget
// of their own, 256 of them locked every user out and the daemon wrote a
// line per refused connection. Meanwhile a user runs `whoami` every 3 s.
func TestIdleConnectionsCannotLockUsersOut(t *testing.T) {
	// Not parallel: the flood takes both cores, and other tests' deadlines
	// are not made for that.
	const (
		hold       = 30 * time.Second
		tries      = 10
		idle       = 300
		perSpeaker = 80 // more than a source may hold
		perSource  = 64 // the default per_source_max_startups
	)
	alice := newUser(t, "alice")
	d := startDaemon(t, configFor("", []*user{alice}))
	if _, stderr, code := d.ssh(alice, "whoami"); code != 0 {
		t.Fatalf("whoami before the flood: exit %d: %s", code, stderr)
	}

	stop := make(chan struct{})
	start := time.Now()
	floods := []*ecFlood{ecStartFlood(d.addr, "127.0.0.1", false, idle, stop)}
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		floods = append(floods, ecStartFlood(d.addr, from, true, perSpeaker, stop))
	}
	stopped := false
	stopFlood := func() {
		if !stopped {
			stopped = true
			close(stop)
			for _, f := range floods {
				f.wg.Wait()
			}
		}
	}
	defer stopFlood()

	// A try every hold/tries, the first once the flood is under way.
	ok := 0
	var took []string
	for i := range tries {
		at := start.Add(hold * time.Duration(i+1) / time.Duration(tries+1))
		time.Sleep(time.Until(at))
		t0 := time.Now()
		stdout, stderr, code := d.ssh(alice, "whoami")
		took = append(took, time.Since(t0).Round(10*time.Millisecond).String())
		if code == 0 && strings.HasPrefix(stdout, "alice") {
			ok++
		} else {
			t.Logf("try %d: exit %d: %s%s", i+1, code, stdout, stderr)
		}
	}
	time.Sleep(time.Until(start.Add(hold)))
	elapsed := time.Since(start)
	stopFlood()

	for _, f := range floods {
		kind := "idle"
		if f.speak {
			kind = "version line, then nothing"
		}
		t.Logf("flood from %s (%s): %d connections in %v (%.0f/s), %d let in, at most %d open at once as seen from here, %d dials failed",
			f.from, kind, f.connects.Load(), elapsed.Round(time.Second), float64(f.connects.Load())/elapsed.Seconds(),
			f.admitted.Load(), f.maxOpen.Load(), f.errs.Load())
	}
	t.Logf("whoami: %d of %d succeeded, taking %s", ok, tries, strings.Join(took, " "))
	if ok < tries-1 {
		t.Errorf("whoami succeeded %d times of %d during the flood, want at least %d", ok, tries, tries-1)
	}
	// The idle connections were let in, and gave way to one another (and
	// to the user): far more were let in than a source may hold at once.
	// (How many the daemon holds at once the gitserver tests measure; seen
	// from here, a connection's end arrives a little after its
	// successor's welcome.)
	if f := floods[0]; f.admitted.Load() <= 10*perSource {
		t.Errorf("idle flood: %d connections let in, want many more than %d: the idle ones did not give way", f.admitted.Load(), perSource)
	}
	// The speaking ones kept their places until handshake_timeout, and
	// most of their connections were refused.
	for _, f := range floods[1:] {
		if f.admitted.Load()*2 > f.connects.Load() {
			t.Errorf("flood from %s: %d of %d connections let in; want most refused", f.from, f.admitted.Load(), f.connects.Load())
		}
	}

	// The refusals are in a few summary lines, not one line each. The
	// daemon writes the last interval's as it stops.
	d.stop()
	var summaries []string
	refused := 0
	for _, m := range ecSummaryRE.FindAllStringSubmatch(d.logs.String(), -1) {
		summaries = append(summaries, m[0])
		n, _ := strconv.Atoi(m[1])
		refused += n
	}
	var speakersRefused int64
	for _, f := range floods[1:] {
		speakersRefused += f.connects.Load() - f.admitted.Load()
	}
	t.Logf("daemon log: %d lines; %d summary lines count %d refusals (the speaking floods saw %d):\n%s",
		strings.Count(d.logs.String(), "\n"), len(summaries), refused, speakersRefused, strings.Join(summaries, "\n"))
	if max := int(hold/connLogIntervalE2E) + 2; len(summaries) > max {
		t.Errorf("%d summary lines about refusals in %v, want at most %d", len(summaries), hold, max)
	}
	if int64(refused) < speakersRefused*9/10 {
		t.Errorf("the summaries count %d refusals, the floods saw at least %d", refused, speakersRefused)
	}
	if !strings.Contains(d.logs.String(), "over per_source_max_startups") || !strings.Contains(d.logs.String(), "silent ones gave way to newer") {
		t.Errorf("the summaries do not say why connections were refused or closed:\n%s", strings.Join(summaries, "\n"))
	}
	// Connections the daemon closed are not logged one by one either:
	// at most a few lines per interval besides the summary.
	perConn := strings.Count(d.logs.String(), "ssh connection failed") + strings.Count(d.logs.String(), "ssh handshake timed out") +
		strings.Count(d.logs.String(), "connection refused")
	if max := 5 * (int(hold/connLogIntervalE2E) + 3); perConn > max {
		t.Errorf("%d lines about single connections, want at most %d", perConn, max)
	}
}

// connLogIntervalE2E is the daemon's summary interval (gitserver's
// connLogInterval).
const connLogIntervalE2E = 10 * time.Second
