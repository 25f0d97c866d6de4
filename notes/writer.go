package notes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"slipway/internal/gitrev"
)

// ErrNoRepo is returned (wrapped) by Writer.Add when the repository is not
// there any more: the caller skips its notes.
var ErrNoRepo = errors.New("no such repository")

// ErrNoCommit is returned (wrapped) by Writer.Add when the repository
// does not have the commit (the build of a push that was refused, whose
// objects git threw away): a note on it would name nothing.
var ErrNoCommit = errors.New("no such commit in the repository")

// maxSwaps bounds the compare-and-swap attempts of one Add: each lost race
// means another writer's note landed, so running out takes that many
// writers of the same repository at once.
const maxSwaps = 100

// Writer appends lines to notes under refs/notes/slipway of bare
// repositories. It is safe for concurrent use; writes to one repository
// are serialized in the Writer, and the compare-and-swap of the notes ref
// keeps writers in other processes (another Writer, a second daemon by
// mistake) from losing each other's lines.
type Writer struct {
	mu    sync.Mutex
	repos map[string]*repoLock
}

type repoLock struct {
	mu    sync.Mutex
	users int
}

// NewWriter returns a Writer.
func NewWriter() *Writer { return &Writer{repos: map[string]*repoLock{}} }

// lock serializes the writes to gitDir in this Writer.
func (w *Writer) lock(gitDir string) (unlock func()) {
	w.mu.Lock()
	l := w.repos[gitDir]
	if l == nil {
		l = &repoLock{}
		w.repos[gitDir] = l
	}
	l.users++
	w.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		w.mu.Lock()
		if l.users--; l.users == 0 {
			delete(w.repos, gitDir)
		}
		w.mu.Unlock()
	}
}

// Add appends l to the note of commit in the bare repository gitDir,
// unless the note already holds l's result (same kind, id and state); it
// reports whether it wrote. git's hooks do not run. An error wraps
// ErrNoRepo when gitDir is not a repository any more.
func (w *Writer) Add(ctx context.Context, gitDir, commit string, l Line) (bool, error) {
	if !isHex(commit) {
		return false, fmt.Errorf("note on %q: not a commit id", commit)
	}
	if _, err := os.Stat(filepath.Join(gitDir, "HEAD")); errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, ErrNoRepo)
	}
	unlock := w.lock(gitDir)
	defer unlock()
	s, err := newScratch(gitDir, len(commit))
	if err != nil {
		return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, err)
	}
	defer s.remove()
	old, found, err := s.look(ctx, commit)
	if err != nil {
		return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, err)
	}
	if !found {
		return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, ErrNoCommit)
	}
	if err := removeStaleLock(gitDir); err != nil {
		return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, err)
	}
	for range maxSwaps {
		note, err := s.show(ctx, old, commit)
		if err != nil {
			return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, err)
		}
		if has(note, l) {
			return false, nil
		}
		next, err := s.add(ctx, commit, note+l.String()+"\n")
		if err != nil {
			return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, err)
		}
		swapErr := s.swap(ctx, commit, next, old)
		if swapErr == nil {
			return true, nil
		}
		// Lost the race when the ref moved meanwhile: start again from
		// its new value. Anything else is an error.
		now, _, err := s.look(ctx, commit)
		if err != nil || now == old {
			return false, fmt.Errorf("note on %.7s in %s: %w", commit, gitDir, swapErr)
		}
		old = now
	}
	return false, fmt.Errorf("note on %.7s in %s: the notes ref kept moving (%d attempts)", commit, gitDir, maxSwaps)
}

// scratch is where a note is made before it is swapped in: a repository
// of its own (its refs are nobody's business, and no client sees them)
// whose objects are the real repository's, so that the notes commit it
// makes is there for the swap.
type scratch struct {
	dir, gitDir string
}

func newScratch(gitDir string, idLen int) (*scratch, error) {
	dir, err := os.MkdirTemp("", "slipway-notes-*")
	if err != nil {
		return nil, fmt.Errorf("make a scratch repository: %w", err)
	}
	s := &scratch{dir: dir, gitDir: gitDir}
	config := "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"
	if idLen == 64 {
		config = "[core]\n\trepositoryformatversion = 1\n\tbare = true\n[extensions]\n\tobjectformat = sha256\n"
	}
	err = errors.Join(
		os.MkdirAll(filepath.Join(dir, "refs", "notes"), 0o700),
		os.WriteFile(filepath.Join(dir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o600),
		os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o600),
	)
	if err != nil {
		s.remove()
		return nil, fmt.Errorf("make a scratch repository: %w", err)
	}
	return s, nil
}

func (s *scratch) remove() { _ = os.RemoveAll(s.dir) }

// git runs git on the real repository (scratch false) or on the scratch
// one, with hooks off and nothing of the daemon's environment, and
// returns its output.
func (s *scratch) git(ctx context.Context, inScratch bool, stdin string, args ...string) (string, error) {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "LC_ALL=C",
		"GIT_AUTHOR_NAME=Slipway", "GIT_AUTHOR_EMAIL=slipway@localhost",
		"GIT_COMMITTER_NAME=Slipway", "GIT_COMMITTER_EMAIL=slipway@localhost"}
	if inScratch {
		env = append(env, "GIT_DIR="+s.dir, "GIT_OBJECT_DIRECTORY="+filepath.Join(s.gitDir, "objects"))
	} else {
		env = append(env, "GIT_DIR="+s.gitDir)
	}
	// The repositories name the daemon's hooks (the reference-transaction
	// one records every ref move as a push): none may run for a note.
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "core.hooksPath=/dev/null"}, args...)...)
	cmd.Env = env
	cmd.Dir = s.dir
	// SIGTERM, not SIGKILL: git then removes its lock files, and a
	// stale refs/notes/slipway.lock would stop every later note.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &gitError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

type gitError struct {
	args   []string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}
func (e *gitError) Unwrap() error { return e.err }

// look returns, in one git run, where the notes ref of the real
// repository is ("" when there is none yet) and whether it has commit.
func (s *scratch) look(ctx context.Context, commit string) (notes string, found bool, err error) {
	out, err := s.git(ctx, false, gitrev.NotesRef+"\n"+commit+"\n", "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return "", false, err
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		return "", false, fmt.Errorf("git cat-file printed %q", out)
	}
	if id, typ, _ := strings.Cut(lines[0], " "); typ == "commit" && isHex(id) {
		notes = id
	} else if !strings.HasSuffix(lines[0], " missing") {
		return "", false, fmt.Errorf("%s is %q, not a notes commit", gitrev.NotesRef, lines[0])
	}
	_, typ, _ := strings.Cut(lines[1], " ")
	return notes, typ == "commit", nil
}

// show sets the scratch notes ref to old and returns the note of commit
// there, "" when there is none.
func (s *scratch) show(ctx context.Context, old, commit string) (string, error) {
	ref := filepath.Join(s.dir, filepath.FromSlash(gitrev.NotesRef))
	if old == "" {
		if err := os.Remove(ref); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", nil
	}
	if err := os.WriteFile(ref, []byte(old+"\n"), 0o600); err != nil {
		return "", err
	}
	out, err := s.git(ctx, true, "", "notes", "--ref", gitrev.NotesRef, "show", commit)
	var ge *gitError
	if errors.As(err, &ge) && strings.Contains(ge.stderr, "no note found") {
		return "", nil
	}
	return out, err
}

// add makes the notes commit that gives commit the note text on top of
// the scratch notes ref, and returns its id.
func (s *scratch) add(ctx context.Context, commit, text string) (string, error) {
	if _, err := s.git(ctx, true, text, "notes", "--ref", gitrev.NotesRef, "add", "-f", "-F", "-", commit); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(gitrev.NotesRef)))
	if err != nil {
		return "", fmt.Errorf("read the new notes commit: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !isHex(id) {
		return "", fmt.Errorf("read the new notes commit: %q", id)
	}
	return id, nil
}

// swap moves the real notes ref from old ("" for none) to next, or fails
// if it is not at old any more.
func (s *scratch) swap(ctx context.Context, commit, next, old string) error {
	if old == "" {
		old = strings.Repeat("0", len(next))
	}
	_, err := s.git(ctx, false, "", "update-ref", "-m", "slipway: note on "+commit, gitrev.NotesRef, next, old)
	return err
}

// staleLock is the age from which a lock of the notes ref is a dead
// writer's: git holds it for the milliseconds of one update, and the
// daemon, its only writer, holds the repository's lock in this Writer
// meanwhile.
const staleLock = 30 * time.Second

// removeStaleLock removes refs/notes/slipway.lock when a daemon killed in
// the middle of a swap left it (git removes it itself on any other end):
// otherwise every later note of the repository would fail on it.
func removeStaleLock(gitDir string) error {
	lock := filepath.Join(gitDir, filepath.FromSlash(gitrev.NotesRef)+".lock")
	fi, err := os.Lstat(lock)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if time.Since(fi.ModTime()) < staleLock {
		return nil // a live writer's, or too young to tell: the swap says
	}
	if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale lock of the notes ref: %w", err)
	}
	return nil
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
