package transfer

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
)

// Transfer is the endpoint build Pods reach Slipway at: a Pod's fetch
// container downloads the build's source from it, and its last container
// uploads the artifacts to it. Every build gets a token of its own (32
// random bytes), valid for that build only and only while its Run lasts:
// the source can be fetched once and the artifacts given once, and the
// token is forgotten when Run returns, so a token that leaks from a Pod
// (it lives in the build's Secret) opens nothing afterwards. Only the
// token's SHA-256 is kept.
//
// Routes, each with "Authorization: Bearer <token>":
//
//	GET /source       the workspace as a gzip'd tar stream
//	PUT /artifacts    the artifacts as a tar stream, or, with the header
//	                  X-Slipway-Error, why there are none
type Transfer struct {
	// Log, if set, hears about refused requests.
	Log *slog.Logger

	mu   sync.Mutex
	jobs map[[sha256.Size]byte]*Job
}

// Job is one build's side of the transfer, from Open to Close.
type Job struct {
	// Token is the build's bearer token, for its Pod.
	Token string

	workspace string // the host folder the source is read from
	dir       string // where artifacts are unpacked; "" when none are wanted
	max       int64  // cap on the artifacts' bytes; 0: none

	mu      sync.Mutex
	fetched bool
	given   bool
	done    chan struct{} // closed once the artifacts (or their error) arrived
	report  Report
}

// Done is closed once the Pod's upload (its artifacts, or why there are
// none) arrived.
func (j *Job) Done() <-chan struct{} { return j.done }

// Report is what the upload said; read it once Done is closed.
func (j *Job) Report() Report { return j.report }

// Report is what a Pod's upload said.
type Report struct {
	// Err is the build's own fault, as the Pod's CopyArtifacts said it;
	// Size, with it, the artifacts' whole size when they were too large.
	Err  string
	Size int64
	// Failed is the transfer's own failure (a broken stream, a hostile
	// archive): the executor's error, not the build's.
	Failed error
}

// Headers of an upload that carries no artifacts.
const (
	headerError = "X-Slipway-Error"
	headerSize  = "X-Slipway-Artifacts-Size"
)

// Open opens the transfer of one build: its source is read from the
// folder workspace; its artifacts, if dir is not empty, are unpacked into
// dir, max bytes at most (0: no cap).
func (t *Transfer) Open(workspace, dir string, max int64) (*Job, error) {
	j := &Job{workspace: workspace, dir: dir, max: max}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, fmt.Errorf("make a transfer token: %w", err)
	}
	j.Token = base64.RawURLEncoding.EncodeToString(token)
	j.done = make(chan struct{})
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.jobs == nil {
		t.jobs = map[[sha256.Size]byte]*Job{}
	}
	t.jobs[sha256.Sum256([]byte(j.Token))] = j
	return j, nil
}

// Close forgets a build's token: from now on it opens nothing.
func (t *Transfer) Close(j *Job) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.jobs, sha256.Sum256([]byte(j.Token)))
}

// Valid reports how many builds' tokens are valid now.
func (t *Transfer) Valid() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.jobs)
}

func (t *Transfer) lookup(r *http.Request) *Job {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.jobs[sha256.Sum256([]byte(token))]
}

// ServeHTTP implements http.Handler.
func (t *Transfer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j := t.lookup(r)
	if j == nil {
		t.refuse(w, r, http.StatusUnauthorized, "no such build token (it ends with its build)")
		return
	}
	switch {
	case r.URL.Path == "/source" && r.Method == http.MethodGet:
		t.source(w, r, j)
	case r.URL.Path == "/artifacts" && r.Method == http.MethodPut:
		t.artifacts(w, r, j)
	default:
		t.refuse(w, r, http.StatusNotFound, "no such route")
	}
}

func (t *Transfer) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	if t.Log != nil {
		t.Log.Warn("build transfer refused", "method", r.Method, "path", r.URL.Path, "from", r.RemoteAddr, "why", why)
	}
	http.Error(w, why, code)
}

// once marks one use of a job's token; false when it was used already.
func (j *Job) once(used *bool) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if *used {
		return false
	}
	*used = true
	return true
}

func (t *Transfer) source(w http.ResponseWriter, r *http.Request, j *Job) {
	if !j.once(&j.fetched) {
		t.refuse(w, r, http.StatusGone, "the source was fetched already")
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	zw := gzip.NewWriter(w)
	if err := writeTree(zw, j.workspace); err != nil {
		// The status is sent; the Pod sees a broken archive and fails.
		if t.Log != nil {
			t.Log.Error("send build source", "err", err)
		}
		return
	}
	zw.Close()
}

func (t *Transfer) artifacts(w http.ResponseWriter, r *http.Request, j *Job) {
	if !j.once(&j.given) {
		t.refuse(w, r, http.StatusGone, "the artifacts were given already")
		return
	}
	var rep Report
	switch msg := r.Header.Get(headerError); {
	case msg != "":
		rep.Err = msg
		rep.Size, _ = strconv.ParseInt(r.Header.Get(headerSize), 10, 64)
	case j.dir == "":
		// None were asked for: the upload only says the Pod is done.
	default:
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			rep.Failed = err
			break
		}
		// The Pod checked the cap already; this bounds what an upload can
		// put on this host whatever it claims (headers of the archive
		// count too).
		limit := int64(-1)
		if j.max > 0 {
			limit = j.max + j.max/8 + 1<<20
		}
		rep.Failed = readTree(r.Body, j.dir, limit)
	}
	j.report = rep
	close(j.done)
	if rep.Failed != nil {
		t.refuse(w, r, http.StatusBadRequest, rep.Failed.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeTree writes the folder dir to w as a tar stream: folders, regular
// files and symbolic links (as links), read through an os.Root of dir.
func writeTree(w io.Writer, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = root.Readlink(p); err != nil {
				return err
			}
		} else if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // sockets, pipes and devices stay behind
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = p
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, h.Size)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// errTooLarge is readTree's error when the stream passes its limit.
var errTooLarge = errors.New("the archive is over its limit")

// readTree unpacks the tar stream r into dir through an os.Root of it, so
// that no name and no link in the archive can write outside dir: a name
// that leaves it is refused, and links are made as links, never followed.
// limit, if not negative, caps the bytes read.
func readTree(r io.Reader, dir string, limit int64) error {
	if limit >= 0 {
		r = &capped{r: r, left: limit}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		name := path.Clean(h.Name)
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("the archive names %q, outside its folder", h.Name)
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, mode|0o700); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o400)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("unpack %q: %w", name, err)
			}
		default:
			return fmt.Errorf("the archive holds %q of a kind not kept (%c)", h.Name, h.Typeflag)
		}
	}
}

// capped reads at most left bytes of r, then fails with errTooLarge.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
