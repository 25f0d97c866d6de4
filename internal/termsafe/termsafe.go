package termsafe

import (
	"encoding/binary"
	"io"
	"unicode/utf8"
)

// MaxHeld is the most a Filter holds between writes, and the longest SGR
// sequence it passes (ESC [ params m): long enough for a true-colour
// foreground and background in one sequence, short enough that a step
// cannot make the filter buffer.
const MaxHeld = 64

// reset is the SGR sequence that ends a line's colours.
const reset = "\x1b[0m"

// Filter renders a stream safe for a terminal. Feed it with Append, end
// the stream with End. The zero Filter is ready; it is not safe for
// concurrent use.
type Filter struct {
	held     [MaxHeld]byte // the start of a sequence the next bytes complete
	n        int
	coloured bool // an SGR other than a reset passed since the last newline
}

// Append appends the safe rendering of p to dst and returns it. Bytes that
// start a sequence p does not complete (an SGR, a UTF-8 character, a CR
// that may precede LF) are held, at most MaxHeld of them, until the next
// Append or End shows how it ends; so the result never depends on how the
// stream was split.
func (f *Filter) Append(dst, p []byte) []byte {
	// Complete what is held one byte at a time: it is short, and this
	// keeps the held part bounded whatever p holds.
	for f.n > 0 && len(p) > 0 {
		f.held[f.n] = p[0]
		f.n++
		p = p[1:]
		var rest int
		dst, rest = f.scan(dst, f.held[:f.n], false)
		copy(f.held[:], f.held[f.n-rest:f.n])
		f.n = rest
	}
	if len(p) == 0 {
		return dst
	}
	dst, rest := f.scan(dst, p, false)
	f.n = copy(f.held[:], p[len(p)-rest:])
	return dst
}

// End appends what the stream leaves held, escaped, since it can no longer
// complete, and ends a colour left on; the Filter can then start a new
// stream.
func (f *Filter) End(dst []byte) []byte {
	dst, _ = f.scan(dst, f.held[:f.n], true)
	f.n = 0
	if f.coloured {
		dst = append(dst, reset...)
		f.coloured = false
	}
	return dst
}

// plain are the bytes that pass as they are: printable ASCII and tab.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	t['\t'] = true
	return t
}()

const esc = 0x1b

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// printable8 says whether all eight bytes of x are printable ASCII (0x20
// to 0x7e): none is below 0x20 (the borrow of x - 0x20 in each byte,
// where the byte had no high bit) and none is 0x7f or above (a high bit in
// x or in x + 1).
func printable8(x uint64) bool {
	return (x-0x20*ones)&^x&highs == 0 && ((x+ones)|x)&highs == 0
}

// scan appends the rendering of p to dst. Unless final, an incomplete
// sequence at the end of p is left: scan returns how many bytes of p's end
// it did not consume (always fewer than MaxHeld).
func (f *Filter) scan(dst, p []byte, final bool) ([]byte, int) {
	i := 0
	for i < len(p) {
		start := i
		// Most output is printable ASCII: skip it eight bytes at a time.
		for i+8 <= len(p) && printable8(binary.LittleEndian.Uint64(p[i:])) {
			i += 8
		}
		for i < len(p) && plain[p[i]] {
			i++
		}
		dst = append(dst, p[start:i]...)
		if i == len(p) {
			break
		}
		switch c := p[i]; {
		case c == '\n':
			if f.coloured {
				dst = append(dst, reset...)
				f.coloured = false
			}
			dst = append(dst, '\n')
			i++
		case c == '\r':
			switch {
			case i+1 < len(p) && p[i+1] == '\n':
				i++ // CRLF is a plain line end
			case i+1 == len(p) && !final:
				return dst, 1
			default:
				dst = append(dst, `\r`...)
				i++
			}
		case c == esc:
			n, st := sgr(p[i:])
			switch {
			case st == sgrMore && !final:
				return dst, len(p) - i
			case st == sgrOK:
				dst = append(dst, p[i:i+n]...)
				f.coloured = !isReset(p[i+2 : i+n-1])
				i += n
			default:
				dst = appendByte(dst, c)
				i++
			}
		case c < utf8.RuneSelf:
			dst = appendByte(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(p[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				if !final && !utf8.FullRune(p[i:]) {
					return dst, len(p) - i
				}
				dst = appendByte(dst, c)
			case escaped(r):
				dst = appendRune(dst, r)
			default:
				dst = append(dst, p[i:i+size]...)
			}
			i += size
		}
	}
	return dst, 0
}

type sgrState int

const (
	sgrNo   sgrState = iota // not an SGR sequence that passes
	sgrOK                   // an SGR sequence that passes
	sgrMore                 // could still become one: more bytes needed
)

// sgr says whether b, which starts with ESC, starts an SGR sequence that
// passes, and its length.
func sgr(b []byte) (int, sgrState) {
	if len(b) < 2 {
		return 0, sgrMore
	}
	if b[1] != '[' {
		return 0, sgrNo
	}
	for j := 2; j < len(b); j++ {
		switch c := b[j]; {
		case c == 'm':
			if allowed(b[2:j]) {
				return j + 1, sgrOK
			}
			return 0, sgrNo
		case c >= '0' && c <= '9' || c == ';' || c == ':':
			if j+2 > MaxHeld { // with its 'm' it would be too long
				return 0, sgrNo
			}
		default:
			// A private marker, an intermediate byte or another final
			// byte: some other control sequence.
			return 0, sgrNo
		}
	}
	return 0, sgrMore
}

// plainSGR are the SGR parameters that pass on their own (see the package
// documentation); 38, 48, 58 and 4 are handled with their arguments.
var plainSGR = func() (t [108]bool) {
	for _, v := range []int{0, 1, 2, 3, 4, 7, 9, 39, 49, 53, 55, 59} {
		t[v] = true
	}
	for _, r := range [][2]int{{21, 29}, {30, 37}, {40, 47}, {90, 97}, {100, 107}} {
		for v := r[0]; v <= r[1]; v++ {
			t[v] = true
		}
	}
	return t
}()

// allowed says whether every parameter of an SGR sequence passes.
func allowed(params []byte) bool {
	selector := false // the previous parameter was 38, 48 or 58 without colons
	args := 0         // colour numbers still to come for 38;5;N or 38;2;R;G;B
	for {
		field, rest, more := cut(params, ';')
		main, _, colon := cut(field, ':')
		v := number(main)
		switch {
		case v < 0:
			return false
		case selector:
			selector = false
			switch {
			case colon:
				return false
			case v == 5:
				args = 1
			case v == 2:
				args = 3
			default:
				return false
			}
		case args > 0:
			if colon {
				return false
			}
			args--
		case v == 38 || v == 48 || v == 58:
			// With colons the arguments are in this parameter.
			selector = !colon
		case colon && v != 4: // 4:N is an underline style
			return false
		case v >= len(plainSGR) || !plainSGR[v]:
			return false
		}
		if !more {
			return !selector && args == 0
		}
		params = rest
	}
}

// number parses an SGR parameter: empty is 0; -1 when it is not one to
// three digits (nothing allowed is longer, and a long run of zeros could
// hide an 8).
func number(b []byte) int {
	if len(b) > 3 {
		return -1
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		v = v*10 + int(c-'0')
	}
	return v
}

// isReset says whether an SGR sequence's parameters only reset.
func isReset(params []byte) bool {
	for _, c := range params {
		if c != '0' && c != ';' {
			return false
		}
	}
	return true
}

func cut(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// escaped says whether a valid character must be shown as an escape: C1
// controls, the bidirectional controls (which reorder what follows them on
// screen), the deprecated format controls next to them, and the line and
// paragraph separators.
func escaped(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f,
		r == 0x061c, r == 0x200e, r == 0x200f,
		r >= 0x202a && r <= 0x202e,
		r >= 0x2066 && r <= 0x206f,
		r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

const hex = "0123456789abcdef"

// appendByte appends the escape of a control or a byte that is not UTF-8.
func appendByte(dst []byte, c byte) []byte {
	if c == '\r' {
		return append(dst, `\r`...)
	}
	return append(dst, '\\', 'x', hex[c>>4], hex[c&15])
}

// appendRune appends "\uNNNN".
func appendRune(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
}

// Line returns s made safe for one line of a terminal: like a Filter's
// rendering, but tabs, newlines and every escape sequence, SGR included,
// are escaped too ("\t", "\n", "\x1b[31m"), so s stays one line and one
// cell of a table, whatever it holds. It returns s itself when nothing
// needs escaping.
func Line(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || escaped(r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
			i++
		case c == '\t':
			b = append(b, `\t`...)
			i++
		case c == '\n':
			b = append(b, `\n`...)
			i++
		case c < utf8.RuneSelf:
			b = appendByte(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b = appendByte(b, c)
			case escaped(r):
				b = appendRune(b, r)
			default:
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return string(b)
}

// chunk bounds the rendering a Writer builds for one write to its writer:
// an escape is at most six bytes, so about six times this. It is larger
// than the log store's reads (32 KiB), because each write to an SSH channel
// costs: `log -f` of a 10 MiB log took 1.9 times as long as the stored
// bytes with 16 KiB, 1.2 times with this.
const chunk = 64 << 10

// Writer renders what is written to it safe (see Filter) and writes that
// to the writer it wraps, once per write (per 64 KiB of a long one). Close
// ends the stream. A Writer is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	f   Filter
	buf []byte
}

// NewWriter returns a Writer that writes the safe rendering of its input
// to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write renders p and writes the rendering; it returns len(p) when the
// writes succeed, else how much of p was rendered before the first that
// failed, and its error.
func (w *Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		w.buf = w.f.Append(w.buf[:0], p[:k])
		if len(w.buf) > 0 {
			if _, err := w.w.Write(w.buf); err != nil {
				return n, err
			}
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close writes what the stream left held, escaped, and ends a colour left
// on. It does not close the wrapped writer. The Writer may be used again
// for a new stream.
func (w *Writer) Close() error {
	w.buf = w.f.End(w.buf[:0])
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	return err
}
