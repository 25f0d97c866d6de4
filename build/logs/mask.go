package logs

import (
	"bytes"
	"slices"
	"strings"
)

// mask is what a secret is replaced with.
const mask = "***"

// minLinePart is the shortest line of a multi-line secret that is masked on
// its own. Shorter lines ("}" of a JSON key file, "" between PEM blocks)
// carry nothing secret and masking them would garble ordinary output.
const minLinePart = 4

// masker replaces secret values in a stream. It holds back the end of the
// data seen so far while that end could be the start of a secret, so the
// result does not depend on how the stream was split into writes.
type masker struct {
	secrets [][]byte // longest first, so the longest match at a position wins
	masks   [][]byte // what each secret becomes
	first   [256]bool
	pending []byte
}

// secretSet expands the configured secret values into the strings to mask:
// each value, the value without surrounding blanks (secret files usually end
// in a newline that the program does not print), and for multi-line values
// each line long enough to matter.
func secretSet(values []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		add(v)
		add(strings.TrimSpace(v))
		if strings.ContainsAny(v, "\r\n") {
			for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if line = strings.TrimSpace(line); len(line) >= minLinePart {
					add(line)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return out
}

// maskFor returns what secret s is replaced with: "***", or for a multi-line
// value "***" per line with the line breaks kept, so that the lines around
// it keep their own lines and timestamps.
func maskFor(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return mask
	}
	var b strings.Builder
	inText := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n':
			b.WriteByte(c)
			inText = false
		default:
			if !inText {
				b.WriteString(mask)
				inText = true
			}
		}
	}
	return b.String()
}

func newMasker(values []string) *masker {
	m := &masker{}
	for _, s := range secretSet(values) {
		m.secrets = append(m.secrets, []byte(s))
		m.masks = append(m.masks, []byte(maskFor(s)))
		m.first[s[0]] = true
	}
	return m
}

// write appends to dst the masked form of everything it can decide about
// the pending bytes followed by p, and keeps the undecided rest pending.
func (m *masker) write(dst, p []byte) []byte {
	if len(m.secrets) == 0 {
		return append(dst, p...)
	}
	buf := p
	if len(m.pending) > 0 {
		buf = append(m.pending, p...)
	}
	dst, rest := m.scan(dst, buf, false)
	m.pending = append(m.pending[:0], rest...) // copy handles the overlap
	return dst
}

// flush appends the pending bytes, masked; nothing more is coming that
// could complete a secret.
func (m *masker) flush(dst []byte) []byte {
	dst, _ = m.scan(dst, m.pending, true)
	m.pending = m.pending[:0]
	return dst
}

// scan masks buf into dst. Unless final, it stops at the first position
// where the rest of buf is a proper prefix of a secret and returns that
// rest: only more data can tell whether it is one. The decision at each
// position looks at no more than the longest secret's length, which is why
// streaming and masking the whole at once agree.
func (m *masker) scan(dst, buf []byte, final bool) ([]byte, []byte) {
	start := 0
	for i := 0; i < len(buf); i++ {
		if !m.first[buf[i]] {
			continue
		}
		rest := buf[i:]
		if !final && m.couldStart(rest) {
			return append(dst, buf[start:i]...), rest
		}
		for j, s := range m.secrets {
			if bytes.HasPrefix(rest, s) {
				dst = append(dst, buf[start:i]...)
				dst = append(dst, m.masks[j]...)
				i += len(s) - 1
				start = i + 1
				break
			}
		}
	}
	return append(dst, buf[start:]...), nil
}

// couldStart reports whether rest is shorter than some secret and the start
// of it.
func (m *masker) couldStart(rest []byte) bool {
	for _, s := range m.secrets {
		if len(s) <= len(rest) {
			return false // sorted longest first: no longer secret follows
		}
		if bytes.HasPrefix(s, rest) {
			return true
		}
	}
	return false
}
