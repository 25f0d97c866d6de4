package gitobj

import (
	"compress/zlib"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// Type is a git object's type.
type Type int8

// The object types, numbered as in pack files.
const (
	Commit Type = 1
	Tree   Type = 2
	Blob   Type = 3
	Tag    Type = 4
)

func (t Type) String() string {
	switch t {
	case Commit:
		return "commit"
	case Tree:
		return "tree"
	case Blob:
		return "blob"
	case Tag:
		return "tag"
	}
	return fmt.Sprintf("type %d", int(t))
}

// MaxDepth is the longest chain of deltas Read follows: git's own default
// pack.depth. A deeper chain is left to git.
const MaxDepth = 50

// ErrNotInProcess reports an object this package does not read within its
// bounds, or does not find where it looks (a repository with alternates, a
// pack written after the repository was opened and removed before a second
// look, SHA-256): git can read it.
var ErrNotInProcess = errors.New("not read in-process")

// TooLargeError reports an object larger than the per-object cap. It is
// returned before any of the object's content is inflated.
type TooLargeError struct {
	ID    string
	Size  int64
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("object %s is %d bytes; the limit is %d", e.ID, e.Size, e.Limit)
}

// Pool bounds the memory of the in-process object reads of a process: at
// most atOnce reads hold object data at a time, each at most three buffers
// of the per-object cap. It is safe for concurrent use; the Repos it opens
// are not.
type Pool struct {
	max   int64
	slots chan struct{}
}

// NewPool returns a Pool whose reads hold objects of at most maxObject
// bytes, atOnce of them at a time.
func NewPool(maxObject int64, atOnce int) *Pool {
	if maxObject <= 0 || atOnce <= 0 {
		panic("gitobj.NewPool: maxObject and atOnce must be positive")
	}
	return &Pool{max: maxObject, slots: make(chan struct{}, atOnce)}
}

// MaxObject is the per-object cap.
func (p *Pool) MaxObject() int64 { return p.max }

// Bound is the most object data the Pool's reads hold at once: for each
// read, a delta's base, the delta and the object it makes.
func (p *Pool) Bound() int64 { return int64(cap(p.slots)) * 3 * p.max }

// Open returns a reader of the objects of the repository at gitDir (its
// objects folder is gitDir/objects). Nothing is read yet. Close it.
func (p *Pool) Open(gitDir string) *Repo {
	return &Repo{pool: p, objects: filepath.Join(gitDir, "objects")}
}

// Repo reads the objects of one repository. It keeps its pack files open
// until Close. A Repo is used by one goroutine at a time.
type Repo struct {
	pool    *Pool
	objects string
	packs   []*pack
	scanned bool // packs lists objects/pack as it was at some point
	z       io.ReadCloser
}

// Close closes the files the Repo opened.
func (r *Repo) Close() error {
	var errs []error
	for _, p := range r.packs {
		errs = append(errs, p.close())
	}
	r.packs = nil
	if r.z != nil {
		errs = append(errs, r.z.Close())
	}
	return errors.Join(errs...)
}

// hash is a SHA-1 object name.
type hash [20]byte

func parseHash(id string) (hash, error) {
	var h hash
	if len(id) != 40 {
		return h, fmt.Errorf("object %q: %w (only SHA-1 names are)", id, ErrNotInProcess)
	}
	if _, err := hex.Decode(h[:], []byte(id)); err != nil {
		return h, fmt.Errorf("object %q: not an object name", id)
	}
	return h, nil
}

func (h hash) String() string { return hex.EncodeToString(h[:]) }

// Size returns the size of object id from its header, without inflating
// its content: the first bytes of a loose object, or a pack entry's header
// and, for a delta, the delta's first bytes.
func (r *Repo) Size(id string) (int64, error) {
	h, err := parseHash(id)
	if err != nil {
		return 0, err
	}
	loc, err := r.locate(h)
	if err != nil {
		return 0, err
	}
	if loc.pack == nil {
		_, size, err := r.looseHeader(loc.loose, nil)
		return size, err
	}
	e, err := loc.pack.entryAt(loc.offset)
	if err != nil {
		return 0, err
	}
	if !e.delta() {
		return e.size, nil
	}
	_, target, err := r.deltaSizes(loc.pack, e)
	return target, err
}

// Read rebuilds object id and calls fn with its type and content, which
// fn must not keep: the read's share of the Pool is held while fn runs.
// Before anything is inflated, the object's size is checked against the
// per-object cap (a [*TooLargeError] if over), and so are the delta data
// and the bases it is built from, at most [MaxDepth] deltas deep
// ([ErrNotInProcess] if not). Waiting for the Pool ends with ctx.
func (r *Repo) Read(ctx context.Context, id string, fn func(t Type, data []byte) error) error {
	h, err := parseHash(id)
	if err != nil {
		return err
	}
	loc, err := r.locate(h)
	if err != nil {
		return err
	}
	max := r.pool.max
	// The chain from the object down to its base, headers only.
	var chain []link
	for depth := 0; ; depth++ {
		if loc.pack == nil {
			t, size, err := r.looseHeader(loc.loose, nil)
			if err != nil {
				return err
			}
			if err := r.fits(h, depth, size, "delta base"); err != nil {
				return err
			}
			return r.rebuild(ctx, chain, base{t: t, size: size, loose: loc.loose}, fn)
		}
		e, err := loc.pack.entryAt(loc.offset)
		if err != nil {
			return err
		}
		if !e.delta() {
			if err := r.fits(h, depth, e.size, "delta base"); err != nil {
				return err
			}
			return r.rebuild(ctx, chain, base{t: Type(e.typ), size: e.size, pack: loc.pack, entry: e}, fn)
		}
		if depth == MaxDepth {
			return fmt.Errorf("object %s: a chain of more than %d deltas: %w", h, MaxDepth, ErrNotInProcess)
		}
		src, target, err := r.deltaSizes(loc.pack, e)
		if err != nil {
			return err
		}
		if err := r.fits(h, depth, target, "delta result"); err != nil {
			return err
		}
		if e.size > max {
			return fmt.Errorf("object %s: a delta of %d bytes (the limit is %d): %w", h, e.size, max, ErrNotInProcess)
		}
		chain = append(chain, link{pack: loc.pack, entry: e, src: src, target: target})
		if e.typ == typeOfsDelta {
			loc = location{pack: loc.pack, offset: e.baseOffset}
		} else if loc, err = r.locate(e.baseID); err != nil {
			return err
		}
	}
}

// fits checks size against the cap: the object's own size at depth 0, a
// step of its rebuilding (what) below.
func (r *Repo) fits(h hash, depth int, size int64, what string) error {
	if size <= r.pool.max {
		return nil
	}
	if depth == 0 {
		return &TooLargeError{ID: h.String(), Size: size, Limit: r.pool.max}
	}
	return fmt.Errorf("object %s: a %s of %d bytes (the limit is %d): %w", h, what, size, r.pool.max, ErrNotInProcess)
}

// link is one delta of a chain.
type link struct {
	pack        *pack
	entry       entry
	src, target int64 // the sizes its header gives its base and its result
}

// base is the object at the bottom of a chain.
type base struct {
	t     Type
	size  int64
	loose string // a loose object's file, or
	pack  *pack  // a pack entry
	entry entry
}

// rebuild inflates b and applies chain to it, from the bottom, holding a
// share of the Pool.
func (r *Repo) rebuild(ctx context.Context, chain []link, b base, fn func(Type, []byte) error) error {
	if b.t < Commit || b.t > Tag {
		return fmt.Errorf("object of unknown type %d", b.t)
	}
	select {
	case r.pool.slots <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-r.pool.slots }()
	var data []byte
	var err error
	if b.pack == nil {
		data = make([]byte, b.size)
		_, _, err = r.looseHeader(b.loose, data)
	} else {
		data, err = r.inflate(b.pack, b.entry)
	}
	if err != nil {
		return err
	}
	for i := len(chain) - 1; i >= 0; i-- {
		l := chain[i]
		if int64(len(data)) != l.src {
			return fmt.Errorf("pack %s: a delta at %d wants a base of %d bytes, its base has %d", l.pack.name, l.entry.offset, l.src, len(data))
		}
		delta, err := r.inflate(l.pack, l.entry)
		if err != nil {
			return err
		}
		if data, err = applyDelta(data, delta, l.target); err != nil {
			return fmt.Errorf("pack %s: the delta at %d: %w", l.pack.name, l.entry.offset, err)
		}
	}
	return fn(b.t, data)
}

// zlibReader returns the Repo's zlib reader, reset to read from src.
func (r *Repo) zlibReader(src io.Reader) (io.Reader, error) {
	if r.z == nil {
		z, err := zlib.NewReader(src)
		if err != nil {
			return nil, err
		}
		r.z = z
		return z, nil
	}
	if err := r.z.(zlib.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	return r.z, nil
}
