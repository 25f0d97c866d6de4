package gitserver

import (
	"container/list"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"slipway/configs"
)

// startups holds the connections that have not authenticated yet (OpenSSH
// calls them startups) and decides which new ones to let in. It is safe
// for concurrent use.
//
// A new connection is refused when its source already has
// PerSourceMaxStartups of them, or by random early drop (MaxStartups
// "start:rate:full", as sshd does it). Refusing is the last resort, though:
// when a connection would be refused and a startup of the same source (for
// the per-source cap) or of any source (for max_startups) has sent nothing
// at all yet, that silent one is closed instead and the new one let in.
// Every SSH client speaks first (RFC 4253 4.2: both sides send their
// version at once), so a connection that has said nothing is the least
// likely to be anyone's login, and a newcomer is never worse than it.
// This is what lets a user in while someone holds hundreds of idle TCP
// connections from the user's own address: the idle ones give way, oldest
// first, to the newcomers. No refusal rule could do this: a flood renewed
// as fast as it is refused takes every place that frees before a user's
// one attempt does. Within one source the newcomers take turns, at a
// bounded pace (see admit), so the flood replaces itself at that pace, and
// a user's connection comes in having spoken. A connection that has spoken
// keeps its place until it authenticates, closes, or handshake_timeout
// passes.
type startups struct {
	limits    configs.Startups
	perSource int
	v4Bits    int
	v6Bits    int
	// intN returns a number in [0, n); tests make random early drop
	// deterministic with it. Called with mu held.
	intN func(n int) int

	// giveWayEvery paces the silent startups of one source giving way;
	// newcomers wait at most maxWait for their turn, and at most
	// maxWaiting of them at once.
	giveWayEvery time.Duration
	maxWait      time.Duration
	maxWaiting   int
	closing      chan struct{} // closed by dropAll: waiting ends
	closeOnce    sync.Once

	// open mirrors n for readers that must not take mu (the metrics'
	// scrape).
	open atomic.Int64

	mu       sync.Mutex
	n        int // len(all)
	all      map[*startup]struct{}
	bySource map[netip.Prefix]*source
	waiting  int
	// silent holds the counted startups not yet known to have spoken,
	// oldest first. A startup that turns out to have spoken is removed
	// when a search for a silent one meets it.
	silent list.List
}

// source is one block of client addresses.
type source struct {
	n           int       // counted startups
	nextGiveWay time.Time // the next free turn to make a silent one give way
}

// startup is one connection that has not authenticated yet.
type startup struct {
	conn   net.Conn // the raw connection, closed to drop it
	source netip.Prefix
	addr   netip.Addr // for the log
	// spoke is set once anything was read from the connection.
	spoke atomic.Bool

	// Guarded by startups.mu.
	state startupState
	elem  *list.Element // in startups.silent, or nil
}

type startupState int

const (
	uncounted     startupState = iota // not let in (yet)
	starting                          // counted
	authenticated                     // left the count for a session slot
	dropped                           // closed by the server before authentication
)

// refusal says why a connection was not let in or was closed before it
// authenticated; the log counts them by this.
type refusal int

const (
	overPerSource refusal = iota // refused: its source is at per_source_max_startups
	overStartups                 // refused by max_startups (random early drop, or full)
	gaveWay                      // closed: silent, in favour of a new connection
	timedOut                     // closed: handshake_timeout passed
	failed                       // ended by the client or a protocol error
	numRefusals
)

// The pace of giving way: 200 a second per source, so that a line of 1,000
// newcomers from one address is served within 5 s. The silent ones being
// replaced are the flood's own (a user's connection speaks within a few
// milliseconds), and at this pace a user's connection is let in after at
// most 5 s and then stays the newest silent one for the time 64 more take
// (320 ms), far longer than any client takes to send its version.
const (
	giveWayEvery       = 5 * time.Millisecond
	maxGiveWayWait     = 5 * time.Second
	maxWaitingStartups = 4096
)

func newStartups(cfg configs.SSH) *startups {
	return &startups{
		limits:    cfg.MaxStartups,
		perSource: cfg.PerSourceMaxStartups,
		v4Bits:    cfg.PerSourceNetBlockSize.V4,
		v6Bits:    cfg.PerSourceNetBlockSize.V6,
		intN:      rand.IntN,
		all:       map[*startup]struct{}{},
		bySource:  map[netip.Prefix]*source{},

		giveWayEvery: giveWayEvery,
		maxWait:      maxGiveWayWait,
		maxWaiting:   maxWaitingStartups,
		closing:      make(chan struct{}),
	}
}

// shouldDrop is sshd's random early drop for a new connection when n
// startups are counted: never below start, always from full on, and in
// between with a probability rising linearly from rate% to 100%.
func (t *startups) shouldDrop(n int) bool {
	l := t.limits
	switch {
	case l.Full <= 0 || n < l.Start:
		return false
	case n >= l.Full || l.Rate >= 100:
		return true
	}
	p := (100-l.Rate)*(n-l.Start)/(l.Full-l.Start) + l.Rate
	return t.intN(100) < p
}

// newStartup returns the startup of a new connection, not counted yet.
func (t *startups) newStartup(c net.Conn) *startup {
	st := &startup{conn: c, state: uncounted}
	st.addr, st.source = t.sourceOf(c.RemoteAddr())
	return st
}

// admit counts st, or says why it is refused. It returns the silent
// startups that gave way to st, out of the count already, for the caller
// to close.
//
// When st's source is at its cap and one of its startups is silent, st
// may wait its turn first: the silent startups of a source give way at
// most once per giveWayEvery, to newcomers in the order they came (each
// takes the next turn when it arrives, and waits for it). So a flood of
// idle connections from one address replaces itself at that pace, not as
// fast as it can reconnect, and a user's connection that waited in line
// has sent its version meanwhile: it is let in speaking, never the silent
// one. A newcomer whose turn is further than maxWait away, or that would
// make more than maxWaiting wait, is refused at once.
func (t *startups) admit(st *startup) (ok bool, why refusal, gave []*startup) {
	turn := false // st waited for its turn to make a silent one give way
	for {
		t.mu.Lock()
		wait, ok, why, gave := t.admitLocked(st, turn)
		t.mu.Unlock()
		if wait <= 0 {
			return ok, why, gave
		}
		turn = true
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-t.closing:
			timer.Stop()
		}
		t.mu.Lock()
		t.waiting--
		t.mu.Unlock()
		select {
		case <-t.closing:
			return false, overPerSource, nil
		default:
		}
	}
}

// admitLocked is one attempt of admit: it counts st, refuses it, or
// returns how long st has to wait for its turn. Called with mu held.
func (t *startups) admitLocked(st *startup, turn bool) (wait time.Duration, ok bool, why refusal, gave []*startup) {
	var forSource, forAll *startup
	n := t.n
	src := t.bySource[st.source] // nil: none counted yet
	if t.perSource > 0 && src != nil && src.n >= t.perSource {
		if forSource = t.silentOne(&st.source, nil); forSource == nil {
			return 0, false, overPerSource, nil
		}
		if !turn {
			now, next := time.Now(), src.nextGiveWay
			if next.Before(now) {
				next = now
			}
			if wait := next.Sub(now); wait > 0 {
				if wait > t.maxWait || t.waiting >= t.maxWaiting {
					return 0, false, overPerSource, nil
				}
				src.nextGiveWay = next.Add(t.giveWayEvery)
				t.waiting++
				return wait, false, 0, nil
			}
			src.nextGiveWay = now.Add(t.giveWayEvery)
		}
		n--
	}
	if t.shouldDrop(n) {
		if forAll = t.silentOne(nil, forSource); forAll == nil {
			return 0, false, overStartups, nil
		}
	}
	for _, v := range []*startup{forSource, forAll} {
		if v != nil {
			t.removeLocked(v, dropped)
			gave = append(gave, v)
		}
	}
	if src == nil {
		src = &source{}
		t.bySource[st.source] = src
	}
	st.state = starting
	t.n++
	t.open.Store(int64(t.n))
	src.n++
	t.all[st] = struct{}{}
	st.elem = t.silent.PushBack(st)
	return 0, true, 0, gave
}

// silentOne returns the oldest counted startup (of source, when not nil)
// other than except that has sent nothing, or nil. Called with mu held.
func (t *startups) silentOne(source *netip.Prefix, except *startup) *startup {
	for e := t.silent.Front(); e != nil; {
		next := e.Next()
		st := e.Value.(*startup)
		if st != except && (source == nil || st.source == *source) {
			// Bytes waiting in the socket count as spoken: the
			// connection's goroutine may simply not have read them yet.
			if !st.spoke.Load() && !pendingInput(st.conn) {
				return st
			}
			t.silent.Remove(e)
			st.elem = nil
		}
		e = next
	}
	return nil
}

// removeLocked takes st out of the count with its new state; it reports
// whether st was still counted. Called with mu held.
func (t *startups) removeLocked(st *startup, to startupState) bool {
	if st.state != starting {
		return false
	}
	st.state = to
	t.n--
	t.open.Store(int64(t.n))
	delete(t.all, st)
	if src := t.bySource[st.source]; src != nil {
		// A source with none left is not at its cap: its pace of
		// giving way can start afresh.
		if src.n--; src.n <= 0 {
			delete(t.bySource, st.source)
		}
	}
	if st.elem != nil {
		t.silent.Remove(st.elem)
		st.elem = nil
	}
	return true
}

// authenticated moves st out of the count: it now holds a session slot.
// It reports false when st was dropped meanwhile (its connection is
// closed, and must not authenticate).
func (t *startups) authenticated(st *startup) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.removeLocked(st, authenticated)
}

// drop takes st out of the count, and reports whether it was still
// counted: neither dropped before, nor authenticated. The caller closes
// st's connection, unless it is closed already.
func (t *startups) drop(st *startup) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.removeLocked(st, dropped)
}

// dropAll closes every startup and refuses those waiting for their turn,
// for Shutdown.
func (t *startups) dropAll() {
	t.closeOnce.Do(func() { close(t.closing) })
	t.mu.Lock()
	var all []*startup
	for st := range t.all {
		t.removeLocked(st, dropped)
		all = append(all, st)
	}
	t.mu.Unlock()
	for _, st := range all {
		st.conn.Close()
	}
}

// sourceOf returns the address of a client and the block of addresses it
// is counted in. Addresses that are not IP (none in production) are all
// one source.
func (t *startups) sourceOf(a net.Addr) (netip.Addr, netip.Prefix) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, netip.Prefix{}
	}
	ip := tcp.AddrPort().Addr().Unmap()
	bits := t.v6Bits
	if ip.Is4() {
		bits = t.v4Bits
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return ip, netip.Prefix{}
	}
	return ip, p
}
