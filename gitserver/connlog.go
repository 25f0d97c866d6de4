package gitserver

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// connLog reports the connections refused, or closed before they
// authenticated, as one summary line per interval however many there were:
// a flood of connections must not become a flood of log lines (sshd's own
// one line per dropped connection wrote 19,818 lines in 25 s here). The
// first few connections of an interval that time out or fail are also
// logged one by one, with their error, since those are what someone
// looking into one failed login wants; refusals never are. It is safe for
// concurrent use.
type connLog struct {
	log      *slog.Logger
	count    func(refusal) // the metrics' count of each; never nil
	interval time.Duration
	lines    int // connections logged one by one per interval

	mu      sync.Mutex
	timer   *time.Timer // flushes the interval; nil while nothing is counted
	start   time.Time
	counts  [numRefusals]int
	sources map[netip.Addr]int
	untold  int // connections of sources past maxLogSources
	told    int // lines logged one by one this interval
}

const (
	connLogInterval = 10 * time.Second
	connLogLines    = 5
	// maxLogSources bounds the memory the summary of a flood from many
	// addresses may take.
	maxLogSources = 4096
)

func newConnLog(log *slog.Logger) *connLog {
	return &connLog{log: log, count: func(refusal) {}, interval: connLogInterval, lines: connLogLines, sources: map[netip.Addr]int{}}
}

// note counts one connection refused or closed before authentication.
func (l *connLog) note(why refusal, from netip.Addr) {
	l.count(why)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.openLocked()
	l.counts[why]++
	if _, ok := l.sources[from]; ok || len(l.sources) < maxLogSources {
		l.sources[from]++
	} else {
		l.untold++
	}
}

// detail logs one connection's line at Info when this interval's budget
// of such lines allows; the summary counts it either way.
func (l *connLog) detail(msg string, args ...any) {
	l.mu.Lock()
	l.openLocked()
	ok := l.told < l.lines
	if ok {
		l.told++
	}
	l.mu.Unlock()
	if ok {
		l.log.Info(msg, args...)
	}
}

// openLocked starts an interval unless one is running. Called with mu held.
func (l *connLog) openLocked() {
	if l.timer == nil {
		l.start = time.Now()
		l.timer = time.AfterFunc(l.interval, l.flush)
	}
}

// flush writes the summary of the interval, if anything was counted, and
// starts afresh.
func (l *connLog) flush() {
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	counts, sources, untold, start := l.counts, l.sources, l.untold, l.start
	l.counts, l.sources, l.untold, l.told = [numRefusals]int{}, map[netip.Addr]int{}, 0, 0
	l.mu.Unlock()

	msg, level := summary(counts, time.Since(start))
	if msg == "" {
		return
	}
	var top netip.Addr
	for a, n := range sources {
		if n > sources[top] || n == sources[top] && a.Less(top) {
			top = a
		}
	}
	nSources := fmt.Sprint(len(sources))
	if untold > 0 {
		nSources = fmt.Sprintf("more than %d", len(sources))
	}
	l.log.Log(nil, level, msg, "sources", nSources, "top_source", top.String(), "top_source_count", sources[top])
}

// summary is the sentence of one interval; level is Warn when the server
// refused connections or closed silent ones to make room, Info when
// clients only failed or timed out.
func summary(c [numRefusals]int, took time.Duration) (string, slog.Level) {
	level := slog.LevelInfo
	if c[overStartups]+c[overPerSource]+c[gaveWay] > 0 {
		level = slog.LevelWarn
	}
	var parts []string
	if p := phrase("refused %d connections", counted{c[overStartups], "over max_startups"},
		counted{c[overPerSource], "over per_source_max_startups"}); p != "" {
		parts = append(parts, p)
	}
	if p := phrase("%d ended before authentication", counted{c[gaveWay], "silent ones gave way to newer"},
		counted{c[timedOut], "past handshake_timeout"}, counted{c[failed], "failed or closed by the client"}); p != "" {
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "", level
	}
	if took >= time.Second {
		took = took.Round(time.Second)
	} else {
		took = took.Round(time.Millisecond)
	}
	return fmt.Sprintf("ssh: %s in the last %v", strings.Join(parts, "; "), took), level
}

type counted struct {
	n    int
	what string
}

// phrase is head, with the total of items, followed by the items that are
// not zero; "" when all are.
func phrase(head string, items ...counted) string {
	total := 0
	var ds []string
	for _, it := range items {
		total += it.n
		if it.n > 0 {
			ds = append(ds, fmt.Sprintf("%d %s", it.n, it.what))
		}
	}
	if total == 0 {
		return ""
	}
	return fmt.Sprintf(head, total) + " (" + strings.Join(ds, ", ") + ")"
}
