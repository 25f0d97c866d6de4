package testutil

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// PackEntry is one entry of a pack that WritePack writes.
type PackEntry struct {
	// Type is a pack entry type: 1 commit, 2 tree, 3 blob, 4 tag, or 6, a
	// delta (Data, made with Delta) on the entry Base of the same pack.
	Type byte
	Data io.Reader
	Size int64 // of Data
	Base int
}

// WritePack writes a pack of entries and has `git index-pack --stdin` put
// it into the repository at gitDir, as a push of 100 objects or more
// leaves it: with whatever deltas the pusher chose, such as a small file
// stored as a delta against a huge one, which git itself never makes.
func WritePack(t testing.TB, gitDir string, entries []PackEntry) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "pack")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha1.New()
	w := bufio.NewWriter(io.MultiWriter(f, h))
	var head [12]byte
	copy(head[:], "PACK")
	binary.BigEndian.PutUint32(head[4:], 2)
	binary.BigEndian.PutUint32(head[8:], uint32(len(entries)))
	w.Write(head[:])
	offsets := make([]int64, len(entries))
	pos := int64(12)
	for i, e := range entries {
		offsets[i] = pos
		var hdr []byte
		c := e.Type<<4 | byte(e.Size&15)
		for s := e.Size >> 4; s > 0; s >>= 7 {
			hdr = append(hdr, c|0x80)
			c = byte(s & 0x7f)
		}
		hdr = append(hdr, c)
		if e.Type == 6 {
			rel := pos - offsets[e.Base]
			ofs := []byte{byte(rel & 0x7f)}
			for rel >>= 7; rel > 0; rel >>= 7 {
				rel--
				ofs = append([]byte{byte(0x80 | rel&0x7f)}, ofs...)
			}
			hdr = append(hdr, ofs...)
		}
		var z bytes.Buffer
		// BestSpeed: deflating 64 MiB in a -race test binary takes seconds
		// at the default level.
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
		if n, err := io.Copy(zw, e.Data); err != nil || n != e.Size {
			t.Fatalf("pack entry %d: %d bytes, %v", i, n, err)
		}
		zw.Close()
		w.Write(hdr)
		w.Write(z.Bytes())
		pos += int64(len(hdr) + z.Len())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Write(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "--git-dir="+gitDir, "index-pack", "--stdin")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git index-pack: %v\n%s", err, out)
	}
}

// DeltaOp is one instruction of a delta: an insert of literal bytes, or
// (Insert nil) a copy of Size bytes at Off of the base.
type DeltaOp struct {
	Insert    []byte // at most 127 bytes
	Off, Size int64
}

// Delta encodes a delta that makes an object of target bytes from a base
// of src bytes.
func Delta(src, target int64, ops ...DeltaOp) []byte {
	varint := func(b []byte, v int64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	d := varint(varint(nil, src), target)
	for _, op := range ops {
		if op.Insert != nil {
			d = append(d, byte(len(op.Insert)))
			d = append(d, op.Insert...)
			continue
		}
		cmd, args := byte(0x80), []byte{}
		for i := range 4 {
			if b := byte(op.Off >> (8 * i)); b != 0 {
				cmd |= 1 << i
				args = append(args, b)
			}
		}
		for i := range 3 {
			if b := byte(op.Size >> (8 * i)); b != 0 {
				cmd |= 0x10 << i
				args = append(args, b)
			}
		}
		d = append(append(d, cmd), args...)
	}
	return d
}

// Zeros streams n zero bytes: a 1 GiB blob of them deflates to 1 MB.
func Zeros(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ObjectID is the SHA-1 name git gives an object of type typ ("blob") and
// content.
func ObjectID(typ string, content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", typ, len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// HashObject writes size bytes of r as a loose blob into the repository
// at gitDir with `git hash-object -w --stdin` and returns its name.
func HashObject(t testing.TB, gitDir string, r io.Reader) string {
	t.Helper()
	cmd := exec.Command("git", "--git-dir="+gitDir, "hash-object", "-w", "--stdin")
	cmd.Stdin = r
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git hash-object: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// WriteDeltaOnZeros writes, into the repository at gitDir, a pack of a blob
// of base zero bytes and an object made of delta (see Delta) on that blob:
// a small file stored against a huge base, as a hostile pusher may send it.
func WriteDeltaOnZeros(t testing.TB, gitDir string, base int64, delta []byte) {
	t.Helper()
	WritePack(t, gitDir, []PackEntry{
		{Type: 3, Data: Zeros(base), Size: base},
		{Type: 6, Data: bytes.NewReader(delta), Size: int64(len(delta)), Base: 0},
	})
}
