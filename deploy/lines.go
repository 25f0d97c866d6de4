package deploy

import "bytes"

// lines cuts a stream into lines for a writer that handles one line at a
// time: emit gets each whole line with its newline, and a line that grows
// past max without ending in pieces of it without one. emit must not keep
// the slice. The caller serialises write and flush.
type lines struct {
	max  int
	part []byte // a line not ended yet
	emit func(line []byte)
}

func (l *lines) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.part = append(l.part, p...)
			if len(l.part) > l.max {
				l.flush()
			}
			return
		}
		l.part = append(l.part, p[:i+1]...)
		p = p[i+1:]
		l.flush()
	}
}

// flush hands on what is held, a line not ended yet included.
func (l *lines) flush() {
	if len(l.part) == 0 {
		return
	}
	l.emit(l.part)
	l.part = l.part[:0]
}
