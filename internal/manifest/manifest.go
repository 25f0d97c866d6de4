// Package manifest describes an artifact set by its content: one line per
// folder, file and symbolic link (path, mode, size, SHA-256; a link by its
// target), in a canonical text whose SHA-256 is the set's digest,
// "sha256:<hex>".
//
// The build service writes the manifest into a passed build's kept
// artifacts as FileName and records the digest with the build; the deploy
// service checks the kept artifacts against it before shipping them, so a
// release carries the digest of exactly the bytes the build produced, and
// two deployments with one digest shipped the same bytes. The manifest file
// travels with the release, so a target can be checked against it by hand.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FileName is the manifest's name at the root of an artifact folder. It is
// not part of the set it describes.
const FileName = ".slipway-manifest"

// header is the first line of every manifest: the format's version.
const header = "slipway-manifest 1"

// Prefix starts every digest.
const Prefix = "sha256:"

// ErrMismatch is matched (errors.Is) when a folder's content differs from
// its manifest or a manifest from its digest.
var ErrMismatch = errors.New("artifacts do not match their manifest")

// entry is one line of a manifest.
type entry struct {
	path string
	line string
}

// Compute returns the canonical manifest text of the folder dir: every
// folder, regular file and symbolic link below it except FileName at its
// root, sorted by path. A line is
//
//	d <mode> - - "<path>"
//	f <mode> <size> <sha256> "<path>"
//	l - <len> - "<path>" "<target>"
//
// with Go-quoted paths (any byte is unambiguous) and modes in octal with
// the setuid, setgid and sticky bits. Anything else (a socket, a device) is
// an error: it cannot be shipped faithfully.
func Compute(dir string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	defer root.Close()
	var es []entry
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || p == FileName {
			return nil
		}
		fi, err := root.Lstat(p)
		if err != nil {
			return err
		}
		var line string
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			target, err := root.Readlink(p)
			if err != nil {
				return err
			}
			line = fmt.Sprintf("l - %d - %s %s", len(target), strconv.Quote(p), strconv.Quote(target))
		case m.IsDir():
			line = fmt.Sprintf("d %04o - - %s", unixMode(m), strconv.Quote(p))
		case m.IsRegular():
			sum, n, err := hashFile(root, p)
			if err != nil {
				return err
			}
			line = fmt.Sprintf("f %04o %d %s %s", unixMode(m), n, sum, strconv.Quote(p))
		default:
			return fmt.Errorf("%q is neither a file, a folder nor a symbolic link", p)
		}
		es = append(es, entry{path: p, line: line})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for _, e := range es {
		b.WriteString(e.line + "\n")
	}
	return b.Bytes(), nil
}

func hashFile(root *os.Root, p string) (string, int64, error) {
	f, err := root.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Digest is the digest of a manifest text: "sha256:" and 64 hex digits.
func Digest(text []byte) string {
	sum := sha256.Sum256(text)
	return Prefix + hex.EncodeToString(sum[:])
}

// Short is the form people read in listings: "sha256:" and the first 8 hex
// digits. An empty digest is "-".
func Short(digest string) string {
	if digest == "" {
		return "-"
	}
	if len(digest) > len(Prefix)+8 {
		return digest[:len(Prefix)+8]
	}
	return digest
}

// Valid reports whether d is a digest as Digest writes it.
func Valid(d string) bool {
	hexPart, ok := strings.CutPrefix(d, Prefix)
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// Write computes dir's manifest, writes it to dir/FileName (replacing any)
// and returns its digest.
func Write(dir string) (string, error) {
	text, err := Compute(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, FileName)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		return "", fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("write manifest: %w", err)
	}
	return Digest(text), nil
}

// Check verifies that dir holds exactly the artifact set of digest want:
// its manifest file has that digest and its content matches the manifest.
// A difference is an error matching ErrMismatch that names the first path
// that differs.
func Check(dir, want string) error {
	kept, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	if got := Digest(kept); got != want {
		return fmt.Errorf("%w: the manifest's digest is %s, not the recorded %s", ErrMismatch, Short(got), Short(want))
	}
	now, err := Compute(dir)
	if err != nil {
		return err
	}
	if bytes.Equal(now, kept) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMismatch, firstDifference(kept, now))
}

// firstDifference names, in words, the first path (in manifest order)
// whose line differs between two manifests.
func firstDifference(want, got []byte) string {
	w, g := lines(want), lines(got)
	gl := map[string]string{}
	for _, e := range g {
		gl[e.path] = e.line
	}
	wl := map[string]bool{}
	for _, e := range w {
		wl[e.path] = true
		l, ok := gl[e.path]
		switch {
		case !ok:
			return fmt.Sprintf("%s is missing", e.path)
		case l != e.line:
			return fmt.Sprintf("%s differs", e.path)
		}
	}
	for _, e := range g {
		if !wl[e.path] {
			return fmt.Sprintf("%s is not in the manifest", e.path)
		}
	}
	return "the manifest text differs"
}

// lines splits a manifest into its entries, in order.
func lines(text []byte) []entry {
	var out []entry
	for _, l := range strings.Split(string(text), "\n") {
		fields := strings.SplitN(l, " ", 5)
		if len(fields) < 5 {
			continue
		}
		q, err := strconv.QuotedPrefix(fields[4])
		if err != nil {
			continue
		}
		p, err := strconv.Unquote(q)
		if err != nil {
			continue
		}
		out = append(out, entry{path: p, line: l})
	}
	return out
}
