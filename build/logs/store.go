package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

var (
	// ErrNotFound reports a log id with no log.
	ErrNotFound = errors.New("no such log")
	// ErrExists reports a Create for an id that already has a log.
	ErrExists = errors.New("log already exists")
	// ErrBusy reports an operation that needs the log to be closed.
	ErrBusy = errors.New("log is still being written")
)

// Store keeps logs as files named <id>.log in one folder. It is safe for
// concurrent use. A log is "live" from Create (or Append) until its Writer
// is closed; a log the Store did not open itself, such as one left by a
// daemon that died, counts as finished.
type Store struct {
	dir     string
	metrics Metrics // never nil

	mu   sync.Mutex
	live map[string]*live
}

// NewStore returns a Store for dir, which is created on first use.
func NewStore(dir string) *Store { return NewStoreWith(dir, Options{}) }

// NewStoreWith returns a Store for dir with o.
func NewStoreWith(dir string, o Options) *Store {
	m := o.Metrics
	if m == nil {
		m = noMetrics{}
	}
	return &Store{dir: dir, metrics: m, live: map[string]*live{}}
}

// Create starts a new log and returns its Writer. What Write stores,
// timestamps included, is capped at maxBytes (<= 0: no cap); lines written
// with Printf and the notes about the cut come on top, so a log stays within
// maxBytes plus a few hundred bytes. The values in secrets are masked. It
// fails with [ErrExists] if the id has a log.
func (s *Store) Create(id string, maxBytes int64, secrets []string) (*Writer, error) {
	return s.open(id, maxBytes, secrets, false)
}

// Append reopens a finished log to add to it, for a build that runs again
// after the daemon died under it, so that one log tells the whole story.
// maxBytes caps what this Writer adds. It fails with [ErrNotFound] if there
// is no log and with [ErrBusy] if the log is live.
func (s *Store) Append(id string, maxBytes int64, secrets []string) (*Writer, error) {
	return s.open(id, maxBytes, secrets, true)
}

// CreateOrAppend is Create, or Append when the id has a log already: for
// a run that may be its log's first attempt or a later one (the earlier
// attempts' log continued), and for lines written outside of a run
// (recovery, a stop). It fails with [ErrBusy] if the log is live.
func (s *Store) CreateOrAppend(id string, maxBytes int64, secrets []string) (*Writer, error) {
	w, err := s.Create(id, maxBytes, secrets)
	if errors.Is(err, ErrExists) {
		w, err = s.Append(id, maxBytes, secrets)
	}
	return w, err
}

// AppendLine adds one line of Slipway's own (Writer.Printf) to the log id,
// created if there is none, and closes it again.
func (s *Store) AppendLine(id string, maxBytes int64, line string) error {
	w, err := s.CreateOrAppend(id, maxBytes, nil)
	if err != nil {
		return err
	}
	w.Printf("%s", line)
	return w.Close()
}

func (s *Store) open(id string, maxBytes int64, secrets []string, appending bool) (*Writer, error) {
	w, err := s.register(id, maxBytes, secrets, appending)
	if err != nil {
		return nil, err
	}
	verb := "opened"
	if appending {
		verb = "continued"
	}
	w.Printf("== log %s at %s; times are elapsed since then", verb, w.start.UTC().Format("2006-01-02 15:04:05 MST"))
	return w, nil
}

// register opens the file and marks the log live in one step, so that a
// follower arriving at any moment either waits for the writer or finds no
// log at all.
func (s *Store) register(id string, maxBytes int64, secrets []string, appending bool) (*Writer, error) {
	path, err := s.path(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[id] != nil {
		return nil, fmt.Errorf("open log %q: %w", id, ErrBusy)
	}
	// An appended log is opened for reading too: its last byte says
	// whether a daemon that died left half a line.
	flags := os.O_RDWR | os.O_APPEND
	if !appending {
		// Logs may hold what a build printed; only the daemon reads them.
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("create log folder %q: %w", s.dir, err)
		}
		flags = os.O_WRONLY | os.O_APPEND | os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("create log %q: %w", id, ErrExists)
	case errors.Is(err, fs.ErrNotExist) && appending:
		return nil, fmt.Errorf("append to log %q: %w", id, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open log %q: %w", id, err)
	}
	w := &Writer{
		f:           f,
		start:       time.Now(),
		masker:      newMasker(secrets),
		max:         maxBytes,
		atLineStart: true,
		live:        &live{changed: make(chan struct{})},
		release:     func() { s.release(id) },
		metrics:     s.metrics,
		kind:        kindOf(id),
	}
	if appending {
		// A daemon that died may have left half a line.
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("append to log %q: %w", id, err)
		}
		if st.Size() > 0 {
			last := make([]byte, 1)
			if _, err := f.ReadAt(last, st.Size()-1); err != nil {
				f.Close()
				return nil, fmt.Errorf("append to log %q: read its end: %w", id, err)
			}
			w.atLineStart = last[0] == '\n'
		}
	}
	s.live[id] = w.live
	return w, nil
}

func (s *Store) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, id)
}

// Follow copies the log id, from byte offset from, to w. With follow false,
// or when the log is finished, it returns once it has copied what is stored.
// With follow true and a live log, it keeps copying until the writer is
// closed or ctx is done (then it returns ctx's cause). It fails with
// [ErrNotFound] if there is no log. The writer never waits for followers.
func (s *Store) Follow(ctx context.Context, id string, from int64, w io.Writer, follow bool) error {
	path, err := s.path(id)
	if err != nil {
		return err
	}
	if from < 0 {
		return fmt.Errorf("follow log %q: negative offset %d", id, from)
	}
	// Opening under the lock pairs the file with the right liveness: a log
	// that is not live now will not be written again through this Store.
	s.mu.Lock()
	l := s.live[id]
	f, err := os.Open(path)
	s.mu.Unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("follow log %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("follow log %q: %w", id, err)
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return fmt.Errorf("follow log %q: %w", id, err)
	}
	buf := make([]byte, 8<<10) // per follower: a web page's or an SSH session's
	for {
		// Take the change signal before reading, so that a write landing
		// after the read reached end of file still wakes us.
		changed, done := (<-chan struct{})(nil), true
		if l != nil && follow {
			changed, done = l.wait()
		}
		if err := copyAvailable(ctx, f, w, buf); err != nil {
			return fmt.Errorf("follow log %q: %w", id, err)
		}
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// copyAvailable copies f to w up to the current end of file.
func copyAvailable(ctx context.Context, f *os.File, w io.Writer, buf []byte) error {
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Remove deletes the log id. A live log cannot be removed ([ErrBusy]).
// Followers that already opened it keep reading their copy.
func (s *Store) Remove(id string) error {
	path, err := s.path(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[id] != nil {
		return fmt.Errorf("remove log %q: %w", id, ErrBusy)
	}
	if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove log %q: %w", id, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("remove log %q: %w", id, err)
	}
	return nil
}

// path returns the file of log id. Ids become file names, so they are
// limited to letters, digits, '.', '_' and '-', not starting with '.', and
// 128 bytes.
func (s *Store) path(id string) (string, error) {
	ok := id != "" && len(id) <= 128 && id[0] != '.'
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if !ok {
		return "", fmt.Errorf("invalid log id %q", id)
	}
	return filepath.Join(s.dir, id+".log"), nil
}

// live is the change signal of a log being written.
type live struct {
	mu      sync.Mutex
	changed chan struct{} // closed on the next change, then replaced
	watched bool          // someone holds changed; skip the close otherwise
	done    bool
}

func (l *live) wait() (<-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watched = true
	return l.changed, l.done
}

func (l *live) notify(done bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || (!l.watched && !done) {
		return
	}
	l.done = done
	close(l.changed)
	l.changed = make(chan struct{})
	l.watched = false
}

// IDs lists the ids of the logs in the folder, live or not, in no
// particular order: the daemon's start compares them with its records to
// remove the logs of records that are gone.
func (s *Store) IDs() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	var ids []string
	for _, d := range des {
		if id, ok := strings.CutSuffix(d.Name(), ".log"); ok && d.Type().IsRegular() {
			if _, err := s.path(id); err == nil {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
