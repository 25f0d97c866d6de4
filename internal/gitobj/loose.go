package gitobj

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// looseHeader reads the header of the loose object in file ("blob 12\0",
// deflated) and, when into is not nil, its content into into, which has
// exactly the size the header gives (the caller learnt it from an earlier
// call). Only the header is inflated when into is nil.
func (r *Repo) looseHeader(file string, into []byte) (Type, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("loose object %s: %w", file, err)
	}
	defer f.Close()
	z, err := r.zlibReader(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return 0, 0, fmt.Errorf("loose object %s: %w", file, err)
	}
	// "commit 18446744073709551615\0" is the longest header there is.
	var head []byte
	br := byteReader{r: z}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, 0, fmt.Errorf("loose object %s: header: %w", file, err)
		}
		if c == 0 {
			break
		}
		if head = append(head, c); len(head) > 32 {
			return 0, 0, fmt.Errorf("loose object %s: bad header %q", file, head)
		}
	}
	name, num, ok := bytes.Cut(head, []byte{' '})
	size, err := strconv.ParseInt(string(num), 10, 64)
	if !ok || err != nil || size < 0 {
		return 0, 0, fmt.Errorf("loose object %s: bad header %q", file, head)
	}
	var t Type
	switch string(name) {
	case "commit":
		t = Commit
	case "tree":
		t = Tree
	case "blob":
		t = Blob
	case "tag":
		t = Tag
	default:
		return 0, 0, fmt.Errorf("loose object %s: bad header %q", file, head)
	}
	if into != nil {
		if int64(len(into)) != size {
			return 0, 0, fmt.Errorf("loose object %s: it changed while being read", file)
		}
		if _, err := io.ReadFull(z, into); err != nil {
			return 0, 0, fmt.Errorf("loose object %s: %w", file, err)
		}
	}
	return t, size, nil
}
