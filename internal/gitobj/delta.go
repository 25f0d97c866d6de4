package gitobj

import (
	"bytes"
	"errors"
	"fmt"
)

// applyDelta builds the object that delta makes of base. target is the
// size the delta's header gives its result, already checked against the
// cap: the result never grows past it, whatever the delta says.
func applyDelta(base, delta []byte, target int64) ([]byte, error) {
	r := bytes.NewReader(delta)
	src, err := readVarint(r)
	if err != nil {
		return nil, err
	}
	size, err := readVarint(r)
	if err != nil {
		return nil, err
	}
	if src != int64(len(base)) || size != target {
		return nil, errors.New("its header does not match")
	}
	delta = delta[len(delta)-r.Len():]
	out := make([]byte, 0, target)
	for len(delta) > 0 {
		cmd := delta[0]
		delta = delta[1:]
		switch {
		case cmd&0x80 != 0: // copy from the base
			var off, n int64
			for i := range 7 {
				if cmd&(1<<i) == 0 {
					continue
				}
				if len(delta) == 0 {
					return nil, errors.New("a copy that ends early")
				}
				if i < 4 {
					off |= int64(delta[0]) << (8 * i)
				} else {
					n |= int64(delta[0]) << (8 * (i - 4))
				}
				delta = delta[1:]
			}
			if n == 0 {
				n = 0x10000
			}
			if off+n > int64(len(base)) || n > target-int64(len(out)) {
				return nil, fmt.Errorf("a copy of %d bytes at %d out of bounds", n, off)
			}
			out = append(out, base[off:off+n]...)
		case cmd != 0: // insert the next cmd bytes
			n := int(cmd)
			if n > len(delta) || int64(n) > target-int64(len(out)) {
				return nil, fmt.Errorf("an insert of %d bytes out of bounds", n)
			}
			out = append(out, delta[:n]...)
			delta = delta[n:]
		default:
			return nil, errors.New("a reserved instruction")
		}
	}
	if int64(len(out)) != target {
		return nil, fmt.Errorf("it makes %d bytes, not %d", len(out), target)
	}
	return out, nil
}
