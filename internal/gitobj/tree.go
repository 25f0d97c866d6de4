package gitobj

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// CommitTree returns the name of the tree of a commit object's content.
func CommitTree(commit []byte) (string, error) {
	line, _, _ := bytes.Cut(commit, []byte{'\n'})
	id, ok := bytes.CutPrefix(line, []byte("tree "))
	if !ok || len(id) != 40 {
		return "", fmt.Errorf("a commit without a tree line: %q", line)
	}
	if _, err := hex.DecodeString(string(id)); err != nil {
		return "", fmt.Errorf("a commit with a bad tree line: %q", line)
	}
	return string(id), nil
}

// TreeEntry is one entry of a tree object.
type TreeEntry struct {
	Mode uint32 // as git writes it: 0o100644, 0o100755, 0o120000, 0o40000, 0o160000
	Name []byte // valid until the next entry
	ID   string
}

// ParseTree calls fn with each entry of a tree object's content, in order,
// and stops at fn's first error.
func ParseTree(tree []byte, fn func(TreeEntry) error) error {
	for len(tree) > 0 {
		sp := bytes.IndexByte(tree, ' ')
		nul := bytes.IndexByte(tree, 0)
		if sp <= 0 || nul <= sp+1 || nul+21 > len(tree) {
			return errors.New("a malformed tree entry")
		}
		mode, err := strconv.ParseUint(string(tree[:sp]), 8, 32)
		if err != nil {
			return fmt.Errorf("a tree entry with mode %q", tree[:sp])
		}
		e := TreeEntry{Mode: uint32(mode), Name: tree[sp+1 : nul], ID: hex.EncodeToString(tree[nul+1 : nul+21])}
		if err := fn(e); err != nil {
			return err
		}
		tree = tree[nul+21:]
	}
	return nil
}
