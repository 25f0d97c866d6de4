package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Live logs are Server-Sent Events. Each event carries one or more
// rendered lines (one "data:" field each, HTML as lineHTML makes it), and
// its id is the number of its last line: a client that reconnects with
// Last-Event-ID: N (every EventSource does by itself) gets line N+1 on,
// with no gap and no line twice, and in the colours the lines before N
// left. A page that already shows lines 1..N asks for ?after=N. When the
// run ends, an "end" event carries its final state ({"state": "passed",
// "reason": ""}), and the stream closes; a client must not reconnect then
// (live.js closes its EventSource on "end").
//
// A stream reads the log file as it grows (BuildLogs.Follow), never a
// buffer shared with the build, and holds at most one line of it
// (maxShownLine) and one batch of events: a 100 MB log costs a follower
// what a short one does.

// pingInterval is how often a quiet stream sends a comment, so that
// proxies and browsers keep an idle connection (a build waiting in the
// queue, a long silent step) open.
const pingInterval = 15 * time.Second

// Batching: the lines of one read of the log go out as few events, each
// at most this many lines and about this many bytes, then are flushed.
const (
	batchLines = 200
	batchBytes = 32 << 10
)

// liveRoutes registers the live logs and the raw downloads.
func (s *Server) liveRoutes() {
	s.streams, s.endStreams = context.WithCancel(context.Background())
	if s.pingEvery == 0 {
		s.pingEvery = pingInterval
	}
	for _, kind := range []string{"build", "deployment"} {
		base := "GET /" + kind + "s/{id}/log"
		s.mux.HandleFunc(base+"/events", s.logEvents(kind))
		s.mux.HandleFunc(base+".txt", s.rawLog(kind))
		s.mux.HandleFunc(base, s.logPage(kind))
	}
	s.mux.HandleFunc("GET /{path...}", s.repoPaths)
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

		// The stream ends with the request, or when the server stops: a
		// browser left open must not hold the daemon's stop.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()

		es := &eventStream{w: w, rc: http.NewResponseController(w)}
		es.send([]byte("retry: 2000\n\n")) // reconnect after 2 s, not the browser's default 3-5
		pinging := es.ping(ctx, s.pingEvery)
		defer pinging()

		lw := &eventLines{es: es, after: after}
		lw.split.fn = lw.line
		err = run.follow(ctx, lw, true)
		if err == nil {
			err = lw.split.end()
		}
		if err == nil {
			err = lw.flush()
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, errClientGone) {
				s.log.Warn("live log", "kind", kind, "id", run.ID, "err", err)
			}
			return
		}
		state, reason, err := run.state(ctx)
		if err != nil {
			s.log.Warn("live log: read the final state", "kind", kind, "id", run.ID, "err", err)
			return
		}
		end, _ := json.Marshal(struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		}{state, reason})
		es.send(append(append([]byte("event: end\ndata: "), end...), "\n\n"...))
	}
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

// eventStream writes events, from the handler and from its ping, one at a
// time, each flushed.
type eventStream struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error // the first failed write: the client is gone
}

func (es *eventStream) send(b []byte) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.err != nil {
		return es.err
	}
	if _, err := es.w.Write(b); err != nil {
		es.err = errors.Join(errClientGone, err)
		return es.err
	}
	if err := es.rc.Flush(); err != nil {
		es.err = errors.Join(errClientGone, err)
	}
	return es.err
}

// ping sends a comment every interval until ctx ends or the returned func
// is called, which waits for the pinging to stop.
func (es *eventStream) ping(ctx context.Context, every time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if es.send([]byte(": ping\n\n")) != nil {
					return
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// eventLines turns a log, as Follow writes it, into events: it skips the
// lines up to after (keeping their colours), and sends the rest rendered,
// in batches, one flush per write of the log.
type eventLines struct {
	es    *eventStream
	after int64
	split lineSplitter
	state colourState
	html  []byte // the line being rendered
	batch []byte // data fields of the event being built
	lines int    // lines in batch
	last  int64  // the last line in batch
}

func (el *eventLines) Write(p []byte) (int, error) {
	n, err := el.split.Write(p)
	if err != nil {
		return n, err
	}
	return n, el.flush()
}

func (el *eventLines) line(n int64, line []byte, more int64) error {
	if n <= el.after {
		skipLine(line, &el.state)
		return nil
	}
	el.html = lineHTML(el.html[:0], n, line, more, &el.state)
	el.batch = append(el.batch, "data: "...)
	el.batch = append(el.batch, el.html...)
	el.batch = append(el.batch, '\n')
	el.lines++
	el.last = n
	if el.lines >= batchLines || len(el.batch) >= batchBytes {
		return el.flush()
	}
	return nil
}

// flush sends the batch as one event.
func (el *eventLines) flush() error {
	if el.lines == 0 {
		return nil
	}
	ev := strconv.AppendInt(append(make([]byte, 0, len(el.batch)+32), "id: "...), el.last, 10)
	ev = append(ev, '\n')
	ev = append(ev, el.batch...)
	ev = append(ev, '\n')
	el.batch, el.lines = el.batch[:0], 0
	if cap(el.batch) > 2*batchBytes {
		el.batch = nil // a batch of long lines: do not keep its buffer
	}
	return el.es.send(ev)
}
