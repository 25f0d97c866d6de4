package logs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"slipway/internal/termsafe"
)

// OutputMark follows the stamp of every line of output in a log, and never
// a line of Slipway's own ("[00:01.234] │ make: *** [all] Error 1" beside
// "[00:01.300] == step 1 exited 2"). Output cannot start a line itself (the
// Writer stamps every line), so shown through a termsafe filter, which
// makes carriage returns and cursor movement visible, a line without the
// mark is always Slipway's.
const OutputMark = "│ "

// Writer is the writing end of one log. It is safe for concurrent use, so
// the same Writer can take a step's stdout and stderr.
type Writer struct {
	live    *live
	release func()
	metrics Metrics
	kind    string // of the log, for metrics

	mu          sync.Mutex
	f           *os.File
	start       time.Time
	masker      *masker
	max         int64 // cap on what Write stores; <= 0: none
	stored      int64 // bytes Write has stored, stamps included
	cut         bool
	discarded   int64
	atLineStart bool
	scratch     []byte // masked output, reused
	out         []byte // stamped output, reused
	err         error  // first failure, reported by Close
	lost        int64  // bytes that could not be written since the last write that could
	lostErr     error  // why they could not
	closed      bool
}

// Write stores p: masked, stamped and capped. While the Writer is open it
// always returns len(p), nil, so the step writing into it neither sees an
// error nor gets killed by a broken pipe when the log is full or the disk
// fails; such failures are reported by Close, and the log names the gap
// (its size and the reason) as soon as it can be written again. After Close it returns
// [os.ErrClosed].
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	if w.cut {
		w.discarded += int64(len(p))
		return len(p), nil
	}
	w.scratch = w.masker.write(w.scratch[:0], p)
	w.emit(w.scratch, true)
	return len(p), nil
}

// Printf writes a line of Slipway's own, such as "== step 2/3: go test".
// A trailing newline is added if missing; the line carries no
// [OutputMark]; control characters and newlines in it are escaped
// (termsafe.Line), so it stays one line whatever it quotes; secrets are
// masked; the size cap
// does not apply, so the outcome of a build is told even after its output
// was cut. If the output so far ends in the middle of a line, the line is
// ended first. Bytes that Write is holding back (a possible secret's start)
// stay held, and appear after this line.
func (w *Writer) Printf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.line(fmt.Sprintf(format, args...))
}

func (w *Writer) line(text string) {
	var b []byte
	if !w.atLineStart {
		b = append(b, '\n')
	}
	masked, _ := w.masker.scan(nil, []byte(strings.TrimSuffix(text, "\n")), true)
	// One line, safe as it is: it may quote what the pusher controls (a
	// step's command, a file name in an error), which must neither add a
	// line that looks like Slipway's nor move the cursor.
	b = append(b, termsafe.Line(string(masked))...)
	b = append(b, '\n')
	w.emit(b, false)
}

// Flush stores the bytes Write is holding back because they could be the
// start of a secret. Call it when the output of a step has ended, before
// writing the next line, so that its last bytes are not held across steps.
func (w *Writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.cut {
		return
	}
	w.scratch = w.masker.flush(w.scratch[:0])
	w.emit(w.scratch, true)
}

// Close stores what is held back, says how much output the cap discarded,
// and marks the log finished, which ends every Follow of it. It returns the
// first error met while storing the log. Closing twice is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	if w.cut {
		w.discarded += int64(len(w.masker.pending))
	} else {
		w.scratch = w.masker.flush(w.scratch[:0])
		w.emit(w.scratch, true)
	}
	if w.cut {
		w.line(fmt.Sprintf("== log truncated at %s; %d more bytes discarded", size(w.max), w.discarded))
		w.metrics.LogDiscarded(w.kind, w.discarded)
	}
	if w.lost > 0 {
		w.store(nil) // the notice of the gap, if it can be written now
	}
	w.closed = true
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("close log: %w", err)
	}
	w.live.notify(true)
	w.release()
	return w.err
}

// emit stamps the start of each line of p and stores it with one write, so
// followers see whole chunks. Output (what steps print, as opposed to
// Slipway's own lines) gets the OutputMark after each stamp, and is
// capped: emit stops at the cap, records how much it dropped, and notes
// the cut in the log.
func (w *Writer) emit(p []byte, output bool) {
	capped := output
	if len(p) == 0 {
		return
	}
	b := w.out[:0]
	var stamp []byte
	for len(p) > 0 {
		if w.atLineStart {
			if stamp == nil {
				stamp = w.stamp()
			}
			mark := 0
			if output {
				mark = len(OutputMark)
			}
			if capped && w.full(len(b), len(stamp)+mark) {
				break
			}
			b = append(b, stamp...)
			if output {
				b = append(b, OutputMark...)
			}
			w.atLineStart = false
		}
		n := bytes.IndexByte(p, '\n') + 1
		if n == 0 {
			n = len(p)
		}
		if capped && w.full(len(b), n) {
			n = int(w.max - w.stored - int64(len(b)))
			b = append(b, p[:n]...)
			p = p[n:]
			break
		}
		b = append(b, p[:n]...)
		w.atLineStart = p[n-1] == '\n'
		p = p[n:]
	}
	if capped {
		w.stored += int64(len(b))
	}
	if len(p) > 0 {
		// Only a cap stops the loop early.
		w.cut = true
		w.discarded += int64(len(p))
		if !w.atLineStart {
			b = append(b, '\n')
			w.atLineStart = true
		}
		if stamp == nil {
			stamp = w.stamp()
		}
		b = append(b, stamp...)
		b = fmt.Appendf(b, "== output cut: the log reached its %s cap; the rest is discarded\n", size(w.max))
	}
	w.out = b
	w.store(b)
	w.live.notify(false)
}

// store writes b to the file. Bytes the file refused (a full disk) are
// counted, and the first write that goes through again starts with a line
// saying how much is missing and why: the log has a gap, never a silent one.
func (w *Writer) store(b []byte) {
	if w.lost > 0 {
		notice := fmt.Appendf(w.stamp(), "== %s of output lost: the log could not be written (%v)\n", size(w.lost), w.lostErr)
		n, err := w.f.Write(notice)
		w.metrics.LogWritten(w.kind, n)
		if err != nil {
			w.fail(len(b), err)
			return
		}
		w.lost, w.lostErr = 0, nil
	}
	n, err := w.f.Write(b)
	w.metrics.LogWritten(w.kind, n)
	if err != nil {
		w.fail(len(b)-n, err)
	}
}

func (w *Writer) fail(lost int, err error) {
	if w.err == nil {
		w.err = fmt.Errorf("write log: %w", err)
	}
	w.lost += int64(lost)
	w.lostErr = err
}

// full reports whether n more bytes, after the pending bytes of this emit,
// would pass the cap.
func (w *Writer) full(pending, n int) bool {
	return w.max > 0 && w.stored+int64(pending)+int64(n) > w.max
}

// stamp returns "[mm:ss.mmm] " for the time elapsed since the log opened.
func (w *Writer) stamp() []byte {
	ms := time.Since(w.start).Milliseconds()
	b := make([]byte, 0, 16)
	b = append(b, '[')
	b = pad(b, ms/60000, 2)
	b = append(b, ':')
	b = pad(b, ms/1000%60, 2)
	b = append(b, '.')
	b = pad(b, ms%1000, 3)
	return append(b, "] "...)
}

func pad(b []byte, n int64, width int) []byte {
	s := strconv.FormatInt(n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// size writes a byte count the way people set it: "10 MiB", "64 KiB".
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
