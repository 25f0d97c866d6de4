package gitobj

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// location is where an object is: a pack entry, or a loose object's file.
type location struct {
	pack   *pack
	offset int64
	loose  string
}

// locate finds object h: loose first (what a small push leaves), then in
// the packs; when neither has it, in the packs written since the last look
// (a `git gc` may have packed it meanwhile).
func (r *Repo) locate(h hash) (location, error) {
	hexID := h.String()
	loose := filepath.Join(r.objects, hexID[:2], hexID[2:])
	if _, err := os.Lstat(loose); err == nil {
		return location{loose: loose}, nil
	}
	for rescanned := false; ; rescanned = true {
		if !r.scanned || rescanned {
			if err := r.scanPacks(); err != nil {
				return location{}, err
			}
		}
		for _, p := range r.packs {
			off, ok, err := p.find(h)
			if err != nil {
				return location{}, err
			}
			if ok {
				return location{pack: p, offset: off}, nil
			}
		}
		if rescanned {
			return location{}, fmt.Errorf("object %s: not in %s: %w", h, r.objects, ErrNotInProcess)
		}
	}
}

// scanPacks adds the packs of objects/pack not open yet.
func (r *Repo) scanPacks() error {
	r.scanned = true
	names, err := filepath.Glob(filepath.Join(r.objects, "pack", "pack-*.idx"))
	if err != nil {
		return err
	}
	for _, idx := range names {
		name := strings.TrimSuffix(idx, ".idx")
		if slices.ContainsFunc(r.packs, func(p *pack) bool { return p.name == name }) {
			continue
		}
		p, err := openPack(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a repack since the listing
		}
		if err != nil {
			return err
		}
		r.packs = append(r.packs, p)
	}
	return nil
}

// pack is a pack file and its version 2 index, read with ReadAt: a lookup
// reads a few entries of the index, never all of it.
type pack struct {
	name      string // path without .idx / .pack
	idx, data *os.File
	dataSize  int64
	fanout    [256]uint32
	count     int64
}

const (
	idxHeader   = 8
	idxFanout   = idxHeader + 256*4
	packTrailer = 20 // the pack's checksum
)

func openPack(name string) (p *pack, err error) {
	p = &pack{name: name}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.idx, err = os.Open(name + ".idx"); err != nil {
		return nil, err
	}
	if p.data, err = os.Open(name + ".pack"); err != nil {
		return nil, err
	}
	st, err := p.data.Stat()
	if err != nil {
		return nil, err
	}
	p.dataSize = st.Size()
	var head [idxFanout]byte
	if _, err := p.idx.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("index %s.idx: %w", name, err)
	}
	if !bytes.Equal(head[:4], []byte{0xff, 't', 'O', 'c'}) || binary.BigEndian.Uint32(head[4:8]) != 2 {
		return nil, fmt.Errorf("index %s.idx: not a version 2 index: %w", name, ErrNotInProcess)
	}
	for i := range p.fanout {
		p.fanout[i] = binary.BigEndian.Uint32(head[idxHeader+4*i:])
	}
	p.count = int64(p.fanout[255])
	return p, nil
}

func (p *pack) close() error {
	var errs []error
	if p.idx != nil {
		errs = append(errs, p.idx.Close())
	}
	if p.data != nil {
		errs = append(errs, p.data.Close())
	}
	return errors.Join(errs...)
}

// find returns the offset of h in the pack: a binary search among the
// names whose first byte is h's, as the fan-out table says.
func (p *pack) find(h hash) (int64, bool, error) {
	lo := int64(0)
	if h[0] > 0 {
		lo = int64(p.fanout[h[0]-1])
	}
	hi := int64(p.fanout[h[0]])
	var name hash
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := p.idx.ReadAt(name[:], idxFanout+mid*20); err != nil {
			return 0, false, fmt.Errorf("index %s.idx: %w", p.name, err)
		}
		switch c := bytes.Compare(h[:], name[:]); {
		case c == 0:
			off, err := p.offset(mid)
			return off, err == nil, err
		case c < 0:
			hi = mid
		default:
			lo = mid + 1
		}
	}
	return 0, false, nil
}

// offset reads the pack offset of the i-th object of the index.
func (p *pack) offset(i int64) (int64, error) {
	var b [8]byte
	small := idxFanout + p.count*(20+4) + i*4
	if _, err := p.idx.ReadAt(b[:4], small); err != nil {
		return 0, fmt.Errorf("index %s.idx: %w", p.name, err)
	}
	off := int64(binary.BigEndian.Uint32(b[:4]))
	if off&0x80000000 != 0 {
		large := idxFanout + p.count*(20+4+4) + (off&0x7fffffff)*8
		if _, err := p.idx.ReadAt(b[:], large); err != nil {
			return 0, fmt.Errorf("index %s.idx: %w", p.name, err)
		}
		off = int64(binary.BigEndian.Uint64(b[:]))
	}
	if off < 12 || off >= p.dataSize-packTrailer {
		return 0, fmt.Errorf("index %s.idx: offset %d is outside the pack", p.name, off)
	}
	return off, nil
}

// Pack entry types besides the object types.
const (
	typeOfsDelta = 6
	typeRefDelta = 7
)

// entry is a pack entry's header.
type entry struct {
	offset     int64 // of the entry
	typ        byte
	size       int64 // inflated size of its data: the object, or the delta
	data       int64 // offset of its zlib data
	baseOffset int64 // an offset delta's base
	baseID     hash  // a reference delta's base
}

func (e entry) delta() bool { return e.typ == typeOfsDelta || e.typ == typeRefDelta }

// entryAt reads the header of the entry at off.
func (p *pack) entryAt(off int64) (entry, error) {
	var b [64]byte
	n, err := p.data.ReadAt(b[:], off)
	if n == 0 && err != nil {
		return entry{}, fmt.Errorf("pack %s: entry at %d: %w", p.name, off, err)
	}
	bad := func(what string) (entry, error) {
		return entry{}, fmt.Errorf("pack %s: entry at %d: %s", p.name, off, what)
	}
	buf := b[:n]
	e := entry{offset: off, typ: buf[0] >> 4 & 7}
	e.size = int64(buf[0] & 15)
	i, shift := 1, 4
	for c := buf[0]; c&0x80 != 0; i++ {
		if i >= len(buf) || shift > 56 {
			return bad("a size that does not end")
		}
		c = buf[i]
		e.size |= int64(c&0x7f) << shift
		shift += 7
	}
	switch e.typ {
	case 1, 2, 3, 4:
	case typeOfsDelta:
		if i >= len(buf) {
			return bad("no base offset")
		}
		c := buf[i]
		rel := int64(c & 0x7f)
		for i++; c&0x80 != 0; i++ {
			if i >= len(buf) || rel > 1<<55 {
				return bad("a base offset that does not end")
			}
			c = buf[i]
			rel = (rel+1)<<7 | int64(c&0x7f)
		}
		if rel <= 0 || rel > off {
			return bad("a base outside the pack")
		}
		e.baseOffset = off - rel
	case typeRefDelta:
		if i+20 > len(buf) {
			return bad("no base name")
		}
		copy(e.baseID[:], buf[i:i+20])
		i += 20
	default:
		return bad(fmt.Sprintf("unknown type %d", e.typ))
	}
	if e.size < 0 {
		return bad("a negative size")
	}
	e.data = off + int64(i)
	return e, nil
}

// stream returns a reader of the inflated data of e.
func (r *Repo) stream(p *pack, e entry) (io.Reader, error) {
	src := bufio.NewReaderSize(io.NewSectionReader(p.data, e.data, p.dataSize-packTrailer-e.data), 4096)
	z, err := r.zlibReader(src)
	if err != nil {
		return nil, fmt.Errorf("pack %s: entry at %d: %w", p.name, e.offset, err)
	}
	return z, nil
}

// inflate returns the data of e whole; its size was checked.
func (r *Repo) inflate(p *pack, e entry) ([]byte, error) {
	z, err := r.stream(p, e)
	if err != nil {
		return nil, err
	}
	data := make([]byte, e.size)
	if _, err := io.ReadFull(z, data); err != nil {
		return nil, fmt.Errorf("pack %s: entry at %d: %w", p.name, e.offset, err)
	}
	return data, nil
}

// deltaSizes reads the two sizes at the start of delta e: its base's and
// its result's. Only those bytes are inflated.
func (r *Repo) deltaSizes(p *pack, e entry) (src, target int64, err error) {
	z, err := r.stream(p, e)
	if err != nil {
		return 0, 0, err
	}
	br := byteReader{r: z}
	if src, err = readVarint(&br); err == nil {
		target, err = readVarint(&br)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("pack %s: the delta at %d: %w", p.name, e.offset, err)
	}
	return src, target, nil
}

// byteReader reads a stream byte by byte, so nothing past what is asked
// for is inflated.
type byteReader struct {
	r io.Reader
	b [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	_, err := io.ReadFull(b.r, b.b[:])
	return b.b[0], err
}

// readVarint reads a delta header's size: seven bits a byte, least
// significant first.
func readVarint(r io.ByteReader) (int64, error) {
	var v int64
	for shift := 0; ; shift += 7 {
		if shift > 56 {
			return 0, errors.New("a size that does not end")
		}
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
}
