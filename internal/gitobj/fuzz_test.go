package gitobj

import (
	"bytes"
	"testing"

	"slipway/internal/testutil"
)

// FuzzApplyDelta: whatever a pushed delta holds, applying it never panics
// and never makes more than the size its header was checked for.
func FuzzApplyDelta(f *testing.F) {
	base := []byte("the base of the delta\n")
	f.Add(base, testutil.Delta(int64(len(base)), 6, testutil.DeltaOp{Insert: []byte("hello\n")}), int64(6))
	f.Add(base, testutil.Delta(int64(len(base)), 8, testutil.DeltaOp{Off: 4, Size: 4}, testutil.DeltaOp{Insert: []byte("base")}), int64(8))
	f.Add(base, []byte{22, 0x80, 0x90}, int64(0x10000))
	f.Add([]byte{}, []byte{0, 5, 0x91, 0xff, 0xff}, int64(5))
	f.Fuzz(func(t *testing.T, base, delta []byte, target int64) {
		if target < 0 || target > 1<<20 {
			return
		}
		out, err := applyDelta(base, delta, target)
		if err == nil && int64(len(out)) != target {
			t.Errorf("made %d bytes, want %d", len(out), target)
		}
		if int64(cap(out)) > target {
			t.Errorf("allocated %d bytes for a result of %d", cap(out), target)
		}
	})
}

// FuzzParseTree: a pushed tree of any content is parsed without a panic,
// into entries whose names hold no NUL and are never empty.
func FuzzParseTree(f *testing.F) {
	f.Add([]byte("100644 README\x00" + string(bytes.Repeat([]byte{1}, 20)) + "40000 dir\x00" + string(bytes.Repeat([]byte{2}, 20))))
	f.Add([]byte("100644 a"))
	f.Add([]byte(" \x00"))
	f.Fuzz(func(t *testing.T, tree []byte) {
		_ = ParseTree(tree, func(e TreeEntry) error {
			if len(e.Name) == 0 || bytes.IndexByte(e.Name, 0) >= 0 || len(e.ID) != 40 {
				t.Errorf("entry %q %s", e.Name, e.ID)
			}
			return nil
		})
		_, _ = CommitTree(tree)
	})
}
