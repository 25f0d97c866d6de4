package gitserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"slipway/configs"
	"slipway/internal/testutil"
)

// rawClient is a TCP connection to the server that speaks no SSH beyond,
// maybe, its version line.
type rawClient struct {
	net.Conn
	admitted bool // the server sent its version: it let the connection in
}

// connect opens a TCP connection to ts from the local address from ("" for
// 127.0.0.1). When speak is set it sends an SSH version line at once, as
// every SSH client does. It returns once the server has either sent its
// own version line (the connection is let in) or closed the connection
// (refused).
func (ts *testServer) connect(t *testing.T, from string, speak bool) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatalf("connect from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	if speak {
		c.Write([]byte("SSH-2.0-flood\r\n"))
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	want := "SSH-2.0-Slipway\r\n"
	got := make([]byte, len(want))
	n, err := io.ReadFull(c, got)
	switch {
	case err == nil && string(got) == want:
		return &rawClient{Conn: c, admitted: true}
	case n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
		return &rawClient{Conn: c} // closed (EOF or reset) before a word
	}
	t.Fatalf("connect from %s: read %q, %v", from, got[:n], err)
	return nil
}

// closedByServer reports whether the server has closed c. It does not wait:
// the server closes the connections that give way before it answers the
// connection they gave way to, and a FIN on loopback arrives at once.
func (c *rawClient) closedByServer() bool {
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [512]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue // the server's key exchange init, after its version
		}
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
}

// count returns how many startups are counted, overall and from the
// source of addr.
func (t *startups) count(addr net.Addr) (all, fromSource int) {
	_, src := t.sourceOf(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.bySource[src]; s != nil {
		fromSource = s.n
	}
	return t.n, fromSource
}

// scriptedDraws makes random early drop deterministic: it answers intN
// with the numbers given, in order, and fails the test when asked for more.
type scriptedDraws struct {
	t     *testing.T
	mu    sync.Mutex
	next  []int
	drawn int
}

func (s *scriptedDraws) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n != 100 {
		s.t.Errorf("drawn from [0, %d), want [0, 100)", n)
	}
	if len(s.next) == 0 {
		s.t.Errorf("draw %d: no more numbers scripted", s.drawn+1)
		return 99
	}
	r := s.next[0]
	s.next = s.next[1:]
	s.drawn++
	return r
}

func TestRandomEarlyDropProbability(t *testing.T) {
	for _, tc := range []struct {
		spec string
		n    int
		r    int // the number drawn from [0, 100)
		drop bool
	}{
		// sshd's formula: below start never, from full always, and in
		// between rate% at start rising linearly to 100% at full.
		{"10:30:100", 0, 0, false},
		{"10:30:100", 9, 0, false},
		{"10:30:100", 10, 29, true},
		{"10:30:100", 10, 30, false},
		{"10:30:100", 55, 64, true}, // 30 + 70*45/90 = 65%
		{"10:30:100", 55, 65, false},
		{"10:30:100", 99, 98, true}, // 30 + 70*89/90 = 99%
		{"10:30:100", 99, 99, false},
		{"10:30:100", 100, 99, true},
		{"10:30:100", 5000, 99, true},
		{"128:30:512", 320, 64, true}, // the default: 30 + 70*192/384 = 65%
		{"128:30:512", 320, 65, false},
		{"5:100:10", 5, 99, true},
		{"5:100:10", 4, 0, false},
		{"7", 6, 0, false}, // one number is a plain cap
		{"7", 7, 99, true},
	} {
		var lim configs.Startups
		if err := lim.UnmarshalText([]byte(tc.spec)); err != nil {
			t.Fatal(err)
		}
		st := &startups{limits: lim, intN: func(int) int { return tc.r }}
		if got := st.shouldDrop(tc.n); got != tc.drop {
			t.Errorf("max_startups %q with %d startups, drawing %d: drop %v, want %v", tc.spec, tc.n, tc.r, got, tc.drop)
		}
	}
}

func TestMaxStartupsRandomEarlyDrop(t *testing.T) {
	draws := &scriptedDraws{t: t, next: []int{49, 50, 74, 75}}
	ts := startServer(t, serverOpt{
		sshTOML: "max_startups = \"2:50:4\"\nper_source_max_startups = 100",
		setup:   func(s *Server) { s.startups.intN = draws.intN },
	})
	// Clients that sent their version, then nothing: none of them gives
	// way, so random early drop refuses new ones.
	var got []bool
	for range 7 {
		got = append(got, ts.connect(t, "", true).admitted)
	}
	// 1, 2: below start. 3: 50% at 2 startups, drew 49: refused. 4: drew
	// 50: let in. 5: 75% at 3, drew 74: refused. 6: drew 75: let in.
	// 7: full (4), refused without a draw.
	want := []bool{true, true, false, true, false, true, false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("let in %v, want %v", got, want)
	}
	if draws.drawn != 4 {
		t.Errorf("%d draws, want 4", draws.drawn)
	}
}

func TestPerSourceMaxStartups(t *testing.T) {
	ts := startServer(t, serverOpt{sshTOML: "per_source_max_startups = 3"})
	var got []bool
	for range 5 {
		got = append(got, ts.connect(t, "127.0.0.2", true).admitted)
	}
	if fmt.Sprint(got) != "[true true true false false]" {
		t.Errorf("5 connections from 127.0.0.2 with per_source_max_startups = 3: let in %v", got)
	}
	// Another address is another source; and so is an authenticating user.
	if !ts.connect(t, "127.0.0.3", true).admitted {
		t.Error("127.0.0.3 refused because of 127.0.0.2")
	}
	if r := ts.ssh("alice", "", "whoami"); r.code != 0 {
		t.Errorf("whoami from 127.0.0.1: exit %d, %s", r.code, r.stderr)
	}

	// With /24 blocks, 127.0.0.2 and 127.0.0.3 are one source.
	ts = startServer(t, serverOpt{sshTOML: "per_source_max_startups = 3\nper_source_net_block_size = \"24:64\""})
	for i, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		if got, want := ts.connect(t, from, true).admitted, i < 3; got != want {
			t.Errorf("connection %d, from %s, in one /24: let in %v, want %v", i+1, from, got, want)
		}
	}
	all, fromSource := ts.srv.startups.count(&net.TCPAddr{IP: net.ParseIP("127.0.0.9")})
	if all != 3 || fromSource != 3 {
		t.Errorf("counted %d startups, %d of 127.0.0.0/24; want 3, 3", all, fromSource)
	}
}

func TestSilentConnectionsGiveWay(t *testing.T) {
	ts := startServer(t, serverOpt{sshTOML: "per_source_max_startups = 3"})
	// Three connections from 127.0.0.2 that say nothing fill its cap; a
	// fourth takes the place of the oldest, and so on.
	var silent []*rawClient
	for i := range 5 {
		c := ts.connect(t, "127.0.0.2", false)
		if !c.admitted {
			t.Fatalf("silent connection %d refused; a silent one should have given way", i+1)
		}
		silent = append(silent, c)
	}
	for i, c := range silent {
		if got, want := c.closedByServer(), i < 2; got != want {
			t.Errorf("silent connection %d closed: %v, want %v", i+1, got, want)
		}
	}
	// A connection that has spoken keeps its place: with one silent and
	// two speaking ones, a newcomer replaces the silent one, the next is
	// refused.
	spoke := []*rawClient{ts.connect(t, "127.0.0.3", true), ts.connect(t, "127.0.0.3", false), ts.connect(t, "127.0.0.3", true)}
	newcomer := ts.connect(t, "127.0.0.3", true)
	if !newcomer.admitted || !spoke[1].closedByServer() || spoke[0].closedByServer() || spoke[2].closedByServer() {
		t.Errorf("newcomer let in %v; silent one closed %v, speaking ones closed %v %v (want true, true, false, false)",
			newcomer.admitted, spoke[1].closedByServer(), spoke[0].closedByServer(), spoke[2].closedByServer())
	}
	if ts.connect(t, "127.0.0.3", true).admitted {
		t.Error("a fourth connection let in while three that spoke hold 127.0.0.3's places")
	}

	// A user connecting from an address flooded with silent connections
	// gets in (over max_startups too: here the global cap is 3).
	ts = startServer(t, serverOpt{sshTOML: "max_startups = \"3\""})
	for range 3 {
		ts.connect(t, "127.0.0.1", false)
	}
	if r := ts.ssh("bob", "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "bob\n") {
		t.Errorf("whoami with max_startups held by silent connections: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	ts.srv.connLog.flush()
	if !strings.Contains(ts.log.String(), "1 silent ones gave way to newer") {
		t.Errorf("the log does not say a silent connection gave way:\n%s", ts.log.String())
	}
}

func TestSilentConnectionsGiveWayInTurn(t *testing.T) {
	ts := startServer(t, serverOpt{
		sshTOML: "per_source_max_startups = 2",
		setup: func(s *Server) {
			s.startups.giveWayEvery = 300 * time.Millisecond
			s.startups.maxWait = 700 * time.Millisecond
		},
	})
	ts.connect(t, "127.0.0.2", false)
	ts.connect(t, "127.0.0.2", false)
	// Five newcomers from the same address, one after the other: two
	// silent, one that speaks, two silent. Their turns to make a silent
	// one give way are 0, 300, 600, 900 and 1200 ms away; the last two are
	// further than 700 ms and are refused at once.
	type outcome struct {
		admitted bool
		at       time.Duration
	}
	waiting := func() int {
		ts.srv.startups.mu.Lock()
		defer ts.srv.startups.mu.Unlock()
		return ts.srv.startups.waiting
	}
	speaks := []bool{false, false, true, false, false}
	got := make([]outcome, len(speaks))
	start := time.Now()
	var wg sync.WaitGroup
	for i, speak := range speaks {
		wg.Add(1)
		done := make(chan struct{})
		go func() {
			defer wg.Done()
			defer close(done)
			c := ts.connect(t, "127.0.0.2", speak)
			got[i] = outcome{c.admitted, time.Since(start)}
		}()
		// The next one comes once the server has placed this one: let
		// in or refused (done), or waiting in line.
		inLine := []int{0, 1, 2, 0, 0}[i]
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("newcomer %d to be placed", i+1), func() bool {
			select {
			case <-done:
				return true
			default:
				return inLine > 0 && waiting() == inLine
			}
		})
	}
	wg.Wait()
	for i, want := range []bool{true, true, true, false, false} {
		if got[i].admitted != want {
			t.Errorf("newcomer %d: let in %v after %v, want %v", i+1, got[i].admitted, got[i].at, want)
		}
	}
	for i, min := range []time.Duration{0, 300 * time.Millisecond, 600 * time.Millisecond} {
		if got[i].at < min {
			t.Errorf("newcomer %d let in after %v, before its turn at %v", i+1, got[i].at, min)
		}
	}
	for _, i := range []int{3, 4} {
		if got[i].at >= got[2].at {
			t.Errorf("newcomer %d refused after %v, not at once (the third was let in after %v)", i+1, got[i].at, got[2].at)
		}
	}
	if _, n := ts.srv.startups.count(&net.TCPAddr{IP: net.ParseIP("127.0.0.2")}); n != 2 {
		t.Errorf("127.0.0.2 holds %d startups, want its cap, 2", n)
	}
}

func TestAuthenticatedConnectionsLeaveStartups(t *testing.T) {
	ts := startServer(t, serverOpt{sshTOML: "max_startups = \"2\"\nmax_sessions = 3"})
	// Two authenticated connections held open: they hold session slots,
	// not startups.
	var held []*gossh.Client
	for _, u := range []string{"alice", "bob"} {
		c, err := ts.dial(u)
		if err != nil {
			t.Fatalf("dial %s: %v", u, err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// So two connections still authenticating fit (max_startups = 2),
	// and a third does not.
	p1, p2, p3 := ts.connect(t, "", true), ts.connect(t, "", true), ts.connect(t, "", true)
	if !p1.admitted || !p2.admitted || p3.admitted {
		t.Errorf("startups let in: %v %v %v, want true true false", p1.admitted, p2.admitted, p3.admitted)
	}
	// The held connections work, and the startups do not take their
	// place: the two authenticated ones still run commands.
	for i, c := range held {
		s, err := c.NewSession()
		if err != nil {
			t.Fatalf("session on held connection %d: %v", i, err)
		}
		out, err := s.Output("whoami")
		s.Close()
		if want := []string{"alice", "bob"}[i]; err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("whoami on the held connection of %s: %q, %v", want, out, err)
		}
	}
	// Once the startups are gone, carol authenticates and takes the third
	// session slot; a fourth authenticated connection is told the server
	// is at its limit.
	p1.Close()
	p2.Close()
	testutil.Eventually(t, 10*time.Second, "the closed startups to be forgotten", func() bool {
		all, _ := ts.srv.startups.count(p1.RemoteAddr())
		return all == 0
	})
	carol, err := ts.dial("carol")
	if err != nil {
		t.Fatalf("carol: %v", err)
	}
	defer carol.Close()
	r := ts.ssh("alice", "", "whoami")
	if r.code != 1 || !strings.Contains(r.stderr, "the server is at its limit of 3 connections (ssh.max_sessions)") {
		t.Errorf("fourth authenticated connection: exit %d, stderr %q", r.code, r.stderr)
	}
	testutil.Eventually(t, 10*time.Second, "the refused connection to be forgotten", func() bool {
		all, _ := ts.srv.startups.count(p1.RemoteAddr())
		return all == 0
	})
}

func TestHandshakeTimeoutCoversAuthentication(t *testing.T) {
	ts := startServer(t, serverOpt{sshTOML: `handshake_timeout = "500ms"`})
	// A client that completes the key exchange and then never signs: the
	// timeout is not the key exchange's only but the whole time before
	// authentication.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := &eofConn{Conn: c, eof: make(chan struct{})}
	start := time.Now()
	stuck, asked := make(chan struct{}), make(chan time.Duration, 1)
	dialed := make(chan error, 1)
	go func() {
		_, _, _, err := gossh.NewClientConn(conn, ts.addr, &gossh.ClientConfig{
			User: "git",
			Auth: []gossh.AuthMethod{gossh.PublicKeysCallback(func() ([]gossh.Signer, error) {
				asked <- time.Since(start)
				<-stuck
				return nil, errors.New("never")
			})},
			HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		})
		dialed <- err
	}()
	select {
	case <-conn.eof:
	case <-time.After(15 * time.Second):
		t.Fatal("a client stuck in authentication still connected after 15s")
	}
	took := time.Since(start)
	close(stuck)
	if err := <-dialed; err == nil {
		t.Error("a client that never authenticated got a connection")
	}
	select {
	case at := <-asked:
		if at >= took {
			t.Errorf("authentication began after %v, the server closed at %v", at, took)
		}
	default:
		t.Fatal("the key exchange did not complete: authentication never began")
	}
	if took < 450*time.Millisecond || took > 10*time.Second {
		t.Errorf("closed after %v, want about the handshake timeout (500ms)", took)
	}
	testutil.Eventually(t, 10*time.Second, "the timeout to be counted", func() bool {
		all, _ := ts.srv.startups.count(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")})
		return all == 0
	})
	ts.srv.connLog.flush()
	if log := ts.log.String(); !strings.Contains(log, "1 past handshake_timeout") {
		t.Errorf("no summary of the timeout in the log:\n%s", log)
	}
}

// eofConn closes eof when a read from the server finds the connection
// closed.
type eofConn struct {
	net.Conn
	eof  chan struct{}
	once sync.Once
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.eof) })
	}
	return n, err
}

// summaryRE matches the summary line of the connection log.
var summaryRE = regexp.MustCompile(`msg="ssh: (?:refused (\d+) connections \(([^)]*)\))?(?:; )?(?:(\d+) ended before authentication \(([^)]*)\))? in the last [^"]+"`)

func TestRefusalsLoggedAsOneLinePerInterval(t *testing.T) {
	ts := startServer(t, serverOpt{
		sshTOML: "max_startups = \"1\"",
		setup:   func(s *Server) { s.connLog.interval = 300 * time.Millisecond },
	})
	held := ts.connect(t, "", true)
	if !held.admitted {
		t.Fatal("first connection refused")
	}
	const tries = 300
	start := time.Now()
	refused := 0
	for range tries {
		if c := ts.connect(t, "", true); !c.admitted {
			refused++
			c.Close()
		}
	}
	took := time.Since(start)
	if refused != tries {
		t.Fatalf("%d of %d refused, want all", refused, tries)
	}
	// Every refusal is in a summary line, and there is no other line
	// about them.
	var lines, total int
	testutil.Eventually(t, 10*time.Second, "the refusals to be summed up", func() bool {
		lines, total = 0, 0
		for _, m := range summaryRE.FindAllStringSubmatch(ts.log.String(), -1) {
			lines++
			n, _ := strconv.Atoi(m[1])
			total += n
		}
		return total == tries
	})
	if max := int(took/(300*time.Millisecond)) + 2; lines > max {
		t.Errorf("%d summary lines for %d refusals in %v, want at most %d", lines, tries, took, max)
	}
	if n := strings.Count(ts.log.String(), "\n"); n > lines+5 {
		t.Errorf("%d log lines for %d refusals in %d summaries:\n%s", n, tries, lines, ts.log.String())
	}
	t.Logf("%d refusals in %v: %d summary lines, for example %s", tries, took, lines, summaryRE.FindString(ts.log.String()))
}

func TestConnLogSummary(t *testing.T) {
	var buf bytes.Buffer
	l := newConnLog(slog.New(slog.NewTextHandler(&buf, nil)))
	l.interval = time.Hour // flushed by hand
	a1, a2, a5 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.5")
	for range 19000 {
		l.note(overStartups, a5)
	}
	for range 700 {
		l.note(overPerSource, a5)
	}
	for range 118 {
		l.note(overPerSource, a2)
	}
	for range 300 {
		l.note(gaveWay, a1)
	}
	l.note(timedOut, a2)
	for i := range 8 {
		l.note(failed, a1)
		l.detail("ssh connection failed", "n", i)
	}
	l.flush()
	l.flush() // nothing new: no line
	got := buf.String()
	want := regexp.MustCompile(`(?m) level=WARN msg="ssh: refused 19818 connections \(19000 over max_startups, 818 over per_source_max_startups\); ` +
		`309 ended before authentication \(300 silent ones gave way to newer, 1 past handshake_timeout, 8 failed or closed by the client\) ` +
		`in the last \d+(\.\d+)?[mµn]?s" sources=3 top_source=127.0.0.5 top_source_count=19700$`)
	if !want.MatchString(got) {
		t.Errorf("log:\n%s\nwant a line matching:\n%s", got, want)
	}
	if n := strings.Count(got, "ssh connection failed"); n != connLogLines {
		t.Errorf("%d failures logged one by one, want %d", n, connLogLines)
	}
	if n := strings.Count(got, "\n"); n != connLogLines+1 {
		t.Errorf("%d lines, want %d:\n%s", n, connLogLines+1, got)
	}
}
