package web

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Live logs are Server-Sent Events. Each event carries one or more
// rendered lines (one "data:" field each, HTML as lineHTML makes it), and
// its id is the number of its last line, sent after the lines (an
// event's fields may come in any order; the id written last lets an event
// be streamed as its lines are rendered, and any suffix of it that starts
// at a line is an event too): a client that reconnects with
// Last-Event-ID: N (every EventSource does by itself) gets line N+1 on,
// with no gap and no line twice, and in the colours the lines before N
// left. A page that already shows lines 1..N asks for ?after=N. When the
// run ends, an "end" event carries its final state ({"state": "passed",
// "reason": ""}), and the stream closes; a client must not reconnect then
// (live.js closes its EventSource on "end").
//
// A stream reads the log file as it grows (BuildLogs.Follow), never a
// buffer shared with the build, and holds at most one line of it
// (maxShownLine) besides the connection's buffer: a 100 MB log costs a
// follower what a short one does.

// pingInterval is how often a quiet stream sends a comment, so that
// proxies and browsers keep an idle connection (a build waiting in the
// queue, a long silent step) open.
const pingInterval = 15 * time.Second

// Batching: the lines of one read of the log go out as few events, each
// at most this many lines and about this many bytes (what a browser
// holds before it hands an event over), then are flushed.
const (
	batchLines = 200
	batchBytes = 16 << 10
)

// liveRoutes registers the live logs and the raw downloads.
func (s *Server) liveRoutes() {
	s.streams, s.endStreams = context.WithCancel(context.Background())
	if s.pingEvery == 0 {
		s.pingEvery = pingInterval
	}
	if s.hubQueue == 0 {
		s.hubQueue = hubQueue
	}
	s.renders = make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, kind := range []string{"build", "deployment"} {
		base := "GET /" + kind + "s/{id}/log"
		s.mux.HandleFunc(base+"/events", s.logEvents(kind))
		s.mux.HandleFunc(base+".txt", s.rawLog(kind))
		s.mux.HandleFunc(base, s.logPage(kind))
	}
}

// logEvents answers GET /builds/{id}/log/events.
func (s *Server) logEvents(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		after, err := resumePoint(r)
		if err != nil {
			s.badRequest(w, r, err.Error())
			return
		}
		run, ok := s.findRun(w, r, kind)
		if !ok {
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: do not hold the stream back
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}

		// The stream ends with the request, or when the server stops: a
		// browser left open must not hold the daemon's stop.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()

		es := &eventStream{w: w, rc: http.NewResponseController(w)}
		// Reconnect after 2 s, not the browser's default 3-5.
		if err := es.send([]byte("retry: 2000\n\n")); err != nil {
			return
		}
		if run.Final {
			err = s.finishedEvents(ctx, es, run, after)
		} else {
			err = s.liveEvents(ctx, es, run, after)
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, errClientGone) {
			s.log.Warn("live log", "kind", kind, "id", run.ID, "err", err)
		}
	}
}

// finishedEvents sends the lines of a run that has ended, after the
// client's, then the end.
func (s *Server) finishedEvents(ctx context.Context, es *eventStream, run logRun, after int64) error {
	el := s.newEventLines(es, after, 0)
	if err := el.copy(ctx, run); err != nil {
		return err
	}
	return es.send(endEvent(run.State, run.Reason))
}

// liveEvents follows a run that goes on through its hub: the lines up to
// where the hub was when the client came (past the client's own) are
// read from the file by this request; the hub sends the rest, rendered
// once for all its followers, and the end. A follower the hub dropped for
// falling behind does the same again from its last line: a slow client
// costs its own reading of the file, never the hub's or the others' pace.
func (s *Server) liveEvents(ctx context.Context, es *eventStream, run logRun, after int64) error {
	last := after
	for {
		h, f := s.subscribe(run, last)
		dropped, err := s.follow(ctx, es, run, f, &last)
		h.unsubscribe(f)
		if err != nil || !dropped || ctx.Err() != nil || s.streams.Err() != nil {
			return err
		}
		s.log.Debug("live log: a follower fell behind; it reads from the file", "run", h.key, "after", last)
	}
}

// follow sends what the follower f needs, from the line after *last on,
// and keeps *last the last line sent. It returns when the run ends, the
// hub stops, or the hub dropped f (dropped true).
func (s *Server) follow(ctx context.Context, es *eventStream, run logRun, f *follower, last *int64) (dropped bool, err error) {
	if f.at > *last {
		el := s.newEventLines(es, *last, f.at)
		if err := el.copy(ctx, run); err != nil {
			return false, err
		}
		*last = f.at
	}
	for {
		select {
		case b, ok := <-f.ch:
			if !ok {
				return f.dropped, nil
			}
			if err := es.send(b.event(f.from)); err != nil {
				return false, err
			}
			if b.end != nil {
				return false, nil
			}
			if n := int64(len(b.offs)); n > 0 {
				*last = max(*last, b.first+n-1)
			}
		case <-ctx.Done():
			return false, nil
		}
	}
}

// endEvent is the event that ends a stream, with the run's final state.
func endEvent(state, reason string) []byte {
	end, _ := json.Marshal(struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
	}{state, reason})
	return append(append([]byte("event: end\ndata: "), end...), "\n\n"...)
}

// resumePoint is the last line the client has: Last-Event-ID (sent by an
// EventSource that reconnects) or ?after=N (a page showing lines 1..N),
// 0 for none.
func resumePoint(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	what := "Last-Event-ID"
	if v == "" {
		v, what = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || len(v) > 19 {
		return 0, errors.New(what + " must be a line number (0 or more)")
	}
	return n, nil
}

// errClientGone is a write to a client that left.
var errClientGone = errors.New("client gone")

// eventStream writes events, each flushed.
type eventStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error // the first failed write: the client is gone
}

func (es *eventStream) send(b []byte) error {
	return es.sendParts(b)
}

// sendParts writes the parts of one event, then flushes: an event built
// in pieces is never copied into one buffer.
func (es *eventStream) sendParts(parts ...[]byte) error {
	wrote := false
	for _, b := range parts {
		if len(b) > 0 {
			wrote = true
			if err := es.write(b); err != nil {
				return err
			}
		}
	}
	if !wrote {
		return es.err
	}
	return es.flush()
}

// write writes a piece of an event, without flushing.
func (es *eventStream) write(b []byte) error {
	if es.err != nil {
		return es.err
	}
	if _, err := es.w.Write(b); err != nil {
		es.err = errors.Join(errClientGone, err)
	}
	return es.err
}

// flush sends what was written.
func (es *eventStream) flush() error {
	if es.err != nil {
		return es.err
	}
	if err := es.rc.Flush(); err != nil {
		es.err = errors.Join(errClientGone, err)
	}
	return es.err
}

// eventLines turns a log, as Follow writes it, into events: it skips the
// lines up to after (keeping their colours), streams the rest rendered,
// each line written as it is rendered (the event's id goes last), one
// flush per write of the log, and stops after line until (0: at the
// log's end).
type eventLines struct {
	es    *eventStream
	after int64
	until int64
	split lineSplitter
	state colourState
	html  []byte // the line being rendered
	lines int    // lines of the open event
	bytes int    // and their size
	last  int64  // the open event's last line
	// renders bounds the lines rendered at once by every stream that
	// reads a log file (the Server's): a render holds the library's
	// screen of the line, and 200 followers that fell behind at once
	// must not hold 200 of them.
	renders chan struct{}
}

func (s *Server) newEventLines(es *eventStream, after, until int64) *eventLines {
	el := &eventLines{es: es, after: after, until: until, renders: s.renders}
	el.split.fn = el.line
	return el
}

// errUntil stops the copy of a log at the line asked for.
var errUntil = errors.New("reached the last line asked for")

// copy sends the log's lines after el.after, to its end or to el.until.
func (el *eventLines) copy(ctx context.Context, run logRun) error {
	err := run.follow(ctx, el, false)
	if err == nil {
		err = el.split.end()
	}
	if err != nil && !errors.Is(err, errUntil) {
		return err
	}
	return el.flush()
}

func (el *eventLines) Write(p []byte) (int, error) {
	n, err := el.split.Write(p)
	if err != nil {
		return n, err
	}
	return n, el.flush()
}

func (el *eventLines) line(n int64, line []byte, more int64) error {
	if el.until > 0 && n > el.until {
		return errUntil
	}
	if n <= el.after {
		skipLine(line, &el.state)
		return nil
	}
	el.renders <- struct{}{}
	el.html = append(lineHTML(append(el.html[:0], "data: "...), n, line, more, &el.state), '\n')
	<-el.renders
	if err := el.es.write(el.html); err != nil {
		return err
	}
	el.lines++
	el.bytes += len(el.html)
	el.last = n
	if cap(el.html) > 2*maxShownLine {
		el.html = nil // one long line: do not keep its buffer
	}
	if el.lines >= batchLines || el.bytes >= batchBytes {
		if err := el.flush(); err != nil {
			return err
		}
	}
	if el.until > 0 && n == el.until {
		return errUntil
	}
	return nil
}

// flush ends the open event with its id and sends it.
func (el *eventLines) flush() error {
	if el.lines == 0 {
		return nil
	}
	var id [32]byte
	el.lines, el.bytes = 0, 0
	return el.es.sendParts(appendEventEnd(id[:0], el.last))
}

// appendEventEnd appends the end of an event whose last line is last:
// its id, and the blank line that dispatches it.
func appendEventEnd(b []byte, last int64) []byte {
	return append(strconv.AppendInt(append(b, "id: "...), last, 10), '\n', '\n')
}

// Hubs. Each run that someone follows live has one hub, which follows its
// log (BuildLogs.Follow) and renders each new line once, whatever the
// number of followers; each follower's request sends the hub's events to
// its client. A follower that cannot keep up (its queue of hubQueue events
// is full) is dropped, and its request reads what it missed from the file
// before it follows the hub again: a slow client never holds the hub, the
// others or the build. A hub stops when its last follower leaves, or the
// run ends (then every follower gets the end event).

// hubQueue is how many events a follower may be behind its hub.
const hubQueue = 64

// hubs are the hubs of the runs being followed.
type hubs struct {
	mu sync.Mutex
	m  map[string]*hub
}

// hub follows one run's log for its followers.
type hub struct {
	s      *Server
	key    string
	run    logRun
	cancel context.CancelFunc

	// mu is held while a write of the log is read, rendered and sent, so
	// that a follower subscribes between two writes: it reads the lines
	// before from the file, and gets every line after from the hub.
	mu       sync.Mutex
	lines    int64 // lines read: sent, or skipped when no follower needed them
	subs     map[*follower]struct{}
	stopping bool // no follower left, or the run ended: subscribe makes a new hub
	split    lineSplitter
	state    colourState
	minFrom  int64  // the first line any follower needs from the hub, during a write
	pending  *batch // the event being built
}

// follower is one request following a hub.
type follower struct {
	ch   chan *batch // closed when the hub drops it or ends
	at   int64       // the hub's lines when it came: the request reads those from the file
	from int64       // the first line it needs from the hub
	// dropped: the hub closed ch because f fell behind (set before the
	// close, read after it).
	dropped bool
}

// batch is one event, rendered once for every follower.
type batch struct {
	first int64
	full  []byte // the event with all its lines: their data fields, then the id
	offs  []int  // where the field of line first+i starts in full
	ping  bool
	end   []byte // the end event
}

var pingEvent = []byte(": ping\n\n")

// event is the batch as a follower needing lines from on gets it.
func (b *batch) event(from int64) []byte {
	switch {
	case b.ping:
		return pingEvent
	case b.end != nil:
		return b.end
	case from <= b.first:
		return b.full
	}
	skip := from - b.first
	if skip >= int64(len(b.offs)) {
		return nil
	}
	// The id comes last: the event from any line on is a suffix.
	return b.full[b.offs[skip]:]
}

// subscribe adds a follower of run that has the lines up to after, to
// the run's hub, made and started if there is none.
func (s *Server) subscribe(run logRun, after int64) (*hub, *follower) {
	key := run.Kind + "/" + strconv.FormatInt(run.ID, 10)
	s.hubs.mu.Lock()
	defer s.hubs.mu.Unlock()
	h := s.hubs.m[key]
	if h != nil {
		h.mu.Lock()
		if h.stopping {
			h.mu.Unlock()
			h = nil
		}
	}
	if h == nil {
		ctx, cancel := context.WithCancel(s.streams)
		h = &hub{s: s, key: key, run: run, cancel: cancel, subs: map[*follower]struct{}{}}
		h.split.fn = h.line
		if s.hubs.m == nil {
			s.hubs.m = map[string]*hub{}
		}
		s.hubs.m[key] = h
		h.mu.Lock()
		go h.loop(ctx)
	}
	f := &follower{ch: make(chan *batch, s.hubQueue), at: h.lines, from: max(after, h.lines) + 1}
	h.subs[f] = struct{}{}
	h.mu.Unlock()
	return h, f
}

// unsubscribe removes a follower that leaves; the hub stops with its last.
func (h *hub) unsubscribe(f *follower) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, f)
	if len(h.subs) == 0 && !h.stopping {
		h.stopping = true
		h.cancel()
	}
}

// loop follows the log until the run ends or the hub stops.
func (h *hub) loop(ctx context.Context) {
	defer h.cancel()
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		t := time.NewTicker(h.s.pingEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h.mu.Lock()
				h.sendLocked(&batch{ping: true})
				h.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	err := h.run.follow(ctx, h, true)
	if err == nil {
		h.mu.Lock()
		h.minFrom = 0
		err = h.split.end()
		h.flushLocked()
		h.mu.Unlock()
	}
	var end *batch
	if err == nil {
		state, reason, serr := h.run.state(ctx)
		if serr == nil {
			end = &batch{end: endEvent(state, reason)}
		}
		err = serr
	}
	if err != nil && ctx.Err() == nil {
		h.s.log.Warn("follow a live log", "run", h.key, "err", err)
	}
	h.cancel()
	<-pinged
	h.finish(end)
}

// finish ends the hub: every follower gets end (when the run ended) and
// its channel closed; the next follower makes a new hub.
func (h *hub) finish(end *batch) {
	h.s.hubs.mu.Lock()
	defer h.s.hubs.mu.Unlock()
	if h.s.hubs.m[h.key] == h {
		delete(h.s.hubs.m, h.key)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopping = true
	for f := range h.subs {
		if end != nil {
			select {
			case f.ch <- end:
			default:
				// Too far behind to be told: it reads the rest from the
				// file, and learns the end from the next hub.
				f.dropped = true
			}
		}
		close(f.ch)
		delete(h.subs, f)
	}
}

// Write takes what the log's follow copies: the new lines, rendered for
// the followers that need them, sent as events.
func (h *hub) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.minFrom = math.MaxInt64
	for f := range h.subs {
		h.minFrom = min(h.minFrom, f.from)
	}
	n, err := h.split.Write(p)
	h.flushLocked()
	return n, err
}

func (h *hub) line(n int64, line []byte, more int64) error {
	if n < h.minFrom {
		skipLine(line, &h.state)
		h.lines = n
		return nil
	}
	if h.pending == nil {
		h.pending = &batch{first: n}
	}
	b := h.pending
	b.offs = append(b.offs, len(b.full))
	b.full = append(lineHTML(append(b.full, "data: "...), n, line, more, &h.state), '\n')
	if len(b.offs) >= batchLines || len(b.full) >= batchBytes {
		h.flushLocked()
	}
	return nil
}

// flushLocked sends the pending event.
func (h *hub) flushLocked() {
	b := h.pending
	if b == nil {
		return
	}
	h.pending = nil
	h.lines = b.first + int64(len(b.offs)) - 1
	b.full = appendEventEnd(b.full, h.lines)
	h.sendLocked(b)
}

// sendLocked queues b for every follower, and drops those whose queue is
// full.
func (h *hub) sendLocked(b *batch) {
	for f := range h.subs {
		select {
		case f.ch <- b:
		default:
			f.dropped = true
			close(f.ch)
			delete(h.subs, f)
		}
	}
}
