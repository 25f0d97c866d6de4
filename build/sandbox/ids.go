package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// IDPool hands out the host uids builds run as when the daemon is root, one
// per running build, from a range no account of the machine uses
// (CheckIDRange). A build's gid is the same number as its uid. Two builds
// that share a folder (the same ref's cache) share a uid, since the folder
// must be the one owner's: they could reach each other through it anyway.
// It is safe for concurrent use.
type IDPool struct {
	first, count int

	mu     sync.Mutex
	leases map[int]*lease // by uid
	free   chan struct{}  // closed and replaced when an id is given back
}

type lease struct {
	key  string // "" for a build that shares nothing
	refs int
}

// NewIDPool returns a pool of the count ids from first on.
func NewIDPool(first, count int) *IDPool {
	return &IDPool{first: first, count: count, leases: map[int]*lease{}, free: make(chan struct{})}
}

// Range returns the first id of the pool and how many it holds.
func (p *IDPool) Range() (first, count int) { return p.first, p.count }

// Lease returns an id for one build and the function that gives it back
// (call it once, when no process of the build is left). key names what
// the build shares with others ("" nothing): builds leasing the same
// non-empty key at once get the same id. prefer, if it is in the range and
// free, is taken first: the uid that already owns the build's cache, so
// that nothing in it needs a new owner. When every id is taken, Lease
// waits for one to be given back, or for ctx to end.
func (p *IDPool) Lease(ctx context.Context, key string, prefer int) (int, func(), error) {
	for {
		p.mu.Lock()
		id, ok := p.pick(key, prefer)
		if ok {
			l := p.leases[id]
			if l == nil {
				l = &lease{key: key}
				p.leases[id] = l
			}
			l.refs++
			p.mu.Unlock()
			var once sync.Once
			return id, func() { once.Do(func() { p.release(id) }) }, nil
		}
		wait := p.free
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("wait for a free build uid (all %d of %d-%d are in use): %w",
				p.count, p.first, p.first+p.count-1, context.Cause(ctx))
		}
	}
}

// pick chooses the id for key; p.mu is held.
func (p *IDPool) pick(key string, prefer int) (int, bool) {
	if key != "" {
		for id, l := range p.leases {
			if l.key == key {
				return id, true
			}
		}
	}
	if prefer >= p.first && prefer < p.first+p.count && p.leases[prefer] == nil {
		return prefer, true
	}
	for id := p.first; id < p.first+p.count; id++ {
		if p.leases[id] == nil {
			return id, true
		}
	}
	return 0, false
}

func (p *IDPool) release(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.leases[id]
	if l == nil {
		return
	}
	if l.refs--; l.refs > 0 {
		return
	}
	delete(p.leases, id)
	close(p.free)
	p.free = make(chan struct{})
}

// ErrIDsInUse is behind CheckIDRange's error when the range holds an id the
// machine already uses.
var ErrIDsInUse = errors.New("build id range overlaps ids in use")

// CheckIDRange says whether the ids first..first+count-1 are free for
// builds on this machine: no user or group of /etc/passwd and /etc/group
// has one, and no subordinate range of /etc/subuid or /etc/subgid (which
// rootless containers map) overlaps them. The error names the first
// collision and wraps ErrIDsInUse. (Running processes are not looked at:
// another Slipway daemon on the machine may be using the same default
// range, which shares ids between their builds but not their folders.)
func CheckIDRange(first, count int) error {
	return checkIDRange("/etc", first, count)
}

func checkIDRange(etc string, first, count int) error {
	last := first + count - 1
	in := func(id int) bool { return id >= first && id <= last }
	for _, f := range []struct{ file, what string }{{"passwd", "user"}, {"group", "group"}} {
		path := filepath.Join(etc, f.file)
		err := eachLine(path, func(fields []string) error {
			if len(fields) < 3 {
				return nil
			}
			if id, err := strconv.Atoi(fields[2]); err == nil && in(id) {
				return fmt.Errorf("%w: %s %q of %s has id %d", ErrIDsInUse, f.what, fields[0], path, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, f := range []string{"subuid", "subgid"} {
		path := filepath.Join(etc, f)
		err := eachLine(path, func(fields []string) error {
			if len(fields) < 3 {
				return nil
			}
			start, err1 := strconv.Atoi(fields[1])
			n, err2 := strconv.Atoi(fields[2])
			if err1 != nil || err2 != nil || n < 1 {
				return nil
			}
			if start <= last && start+n-1 >= first {
				return fmt.Errorf("%w: the subordinate ids %d-%d of %q in %s overlap it", ErrIDsInUse, start, start+n-1, fields[0], path)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachLine calls fn with the colon-separated fields of every line of an
// /etc database file; a file that does not exist has no lines.
func eachLine(path string, fn func(fields []string) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(strings.Split(line, ":")); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}
